"""The search space of ``edgesr tune``: data (YAML), validated like a recipe.

A space names recipe keys, in the dotted form ``--set`` takes, and what each may be::

    schema: 1
    params:
      train.lr: {low: 5.0e-4, high: 5.0e-3, log: true}   # float range (a bound is a float)
      data.batch_size: [16, 32]                          # choices
      model.params.num_feat: {low: 16, high: 96, step: 16}   # int range (both bounds ints)
      model.params.act: [relu, tanh]

Every key must be a recipe field (``train.*``, ``data.*``) or an architecture knob
(``model.params.*`` of the recipe's arch); every bound and choice must load as that field, so a
typo, an empty range or a wrong type fails before any trial runs, naming the valid keys.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError
from edgesr.recipe import Recipe, read_yaml_file

SPACE_SCHEMA = 1
RANGE_KEYS = ("low", "high", "log", "step")
# Recipe sections a space may search; the rest (compress, gan, names) is not a trial's choice.
SEARCHABLE_SECTIONS = ("model.params", "data", "train")
# Bookkeeping of a trial's run, set by the tune pipeline itself.
RESERVED = frozenset({"train.val_every", "train.ckpt_every", "train.keep_checkpoints"})


@dataclass(frozen=True)
class Param:
    """One searched key: a range (``low``..``high``, int or float) or ``choices``."""

    key: str
    kind: str  # "int", "float" or "choice"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def grid_values(self) -> list[Any]:
        """Every value, for the grid sampler: choices, or an int range's steps."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int" and not self.log:
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        raise ConfigError(
            f"the grid sampler needs a finite set for {self.key}: give it choices (e.g. "
            f"[{self.low}, {self.high}]) or an int range without log; or use --sampler tpe."
        )

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.kind == "int" and self.step:
            return (value - self.low) % self.step == 0
        return True


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    source: str = ""

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SPACE_SCHEMA, "params": {p.key: p.to_dict() for p in self.params}}

    def fingerprint(self) -> str:
        """What a resumed study must have been started with."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """This trial's value for every key (Optuna's ``trial.suggest_*``)."""
        out: dict[str, Any] = {}
        for p in self.params:
            if p.kind == "choice":
                out[p.key] = trial.suggest_categorical(p.key, list(p.choices))
            elif p.kind == "int":
                step = int(p.step or 1)
                out[p.key] = trial.suggest_int(p.key, int(p.low), int(p.high), step=step, log=p.log)
            else:
                out[p.key] = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)
        return out

    def grid(self) -> dict[str, list[Any]]:
        return {p.key: p.grid_values() for p in self.params}

    def recipe_values(self, recipe: Recipe) -> dict[str, Any]:
        """The recipe's own value of every key that lies in the space (the baseline trial)."""
        out = {}
        for p in self.params:
            value = recipe_value(recipe, p.key)
            if p.contains(value):
                out[p.key] = value
        return out


def overrides_for(values: Mapping[str, Any]) -> list[str]:
    """``--set`` strings for a trial's values (JSON is valid YAML, so types survive)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def recipe_value(recipe: Recipe, key: str) -> Any:
    node: Any = recipe.to_dict()
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None and key.startswith("model.params."):
        from edgesr.archs import arch_params

        node = arch_params(recipe.model.arch).get(key.rsplit(".", 1)[1])
    return node


def default_space_path(recipe: Recipe) -> Path:
    """``recipes/spaces/<recipe name>.yaml`` (also installed with the recipes)."""
    from edgesr.recipe import _packaged_dir

    return _packaged_dir() / "spaces" / f"{recipe.name}.yaml"


def load_space(path: str | Path | None, recipe: Recipe) -> SearchSpace:
    """The space in ``path``, or the recipe's default space when ``path`` is None."""
    if path is None:
        default = default_space_path(recipe)
        if not default.is_file():
            raise ConfigError(
                f"recipe '{recipe.name}' ships no default search space ({default}); pass "
                "--space SPACE.yaml (see recipes/spaces/ for examples)."
            )
        path = default
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space {path} does not exist; pass an existing YAML file.")
    return parse_space(read_yaml_file(path), recipe, origin=str(path))


def parse_space(raw: Any, recipe: Recipe, *, origin: str = "search space") -> SearchSpace:
    """Validate a parsed space against ``recipe``; ConfigError naming the key and the fix."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: a search space is a mapping with 'schema' and 'params'.")
    unknown = sorted(set(raw) - {"schema", "params"})
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {', '.join(unknown)}; valid: schema, params.")
    if raw.get("schema") != SPACE_SCHEMA:
        raise ConfigError(f"{origin}: add 'schema: {SPACE_SCHEMA}' at the top.")
    params = raw.get("params")
    if not isinstance(params, Mapping) or not params:
        raise ConfigError(f"{origin}: 'params' must map recipe keys to ranges or choices.")
    out = tuple(_parse_param(str(k), v, recipe, origin) for k, v in params.items())
    return SearchSpace(out, source=origin)


def searchable_keys(recipe: Recipe) -> list[str]:
    """Every key a space may name for ``recipe``."""
    from edgesr.archs import arch_params

    plain = recipe.to_dict()
    keys = [f"{s}.{k}" for s in ("data", "train") for k in plain[s] if f"{s}.{k}" not in RESERVED]
    keys += [
        f"model.params.{k}"
        for k in arch_params(recipe.model.arch)
        if k not in ("scale", "num_channels")
    ]
    return [k for k in keys if k != "data.camera"]


def _parse_param(key: str, spec: Any, recipe: Recipe, origin: str) -> Param:
    where = f"{origin}: params.{key}"
    valid = searchable_keys(recipe)
    if key not in valid:
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"{where}: not a searchable recipe key for arch '{recipe.model.arch}'{hint}; "
            f"valid keys: {', '.join(valid)}."
        )
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        if not spec:
            raise ConfigError(f"{where}: empty choices; list at least one value.")
        param = Param(key, "choice", choices=tuple(spec))
        values: list[Any] = list(spec)
    elif isinstance(spec, Mapping):
        if "choices" in spec:
            return (
                _parse_param(key, spec["choices"], recipe, origin)
                if set(spec) == {"choices"}
                else _fail(where, "give either 'choices' or low/high, not both")
            )
        bad = sorted(set(spec) - set(RANGE_KEYS))
        if bad:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(bad)}; valid: {', '.join(RANGE_KEYS)}, choices."
            )
        param = _parse_range(key, spec, where)
        values = [param.low, param.high]
        if param.kind == "int":
            values = [int(v) for v in values]
    else:
        raise ConfigError(
            f"{where}: must be a list of choices or a range {{low: ..., high: ...}}, got {spec!r}."
        )
    _check_types(key, values, recipe, where)
    return param


def _fail(where: str, message: str) -> Param:
    raise ConfigError(f"{where}: {message}.")


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where}: '{name}' must be a number, got {value!r}.")
    try:
        return float(value)  # YAML 1.1 reads 1e-3 as a string
    except ValueError:
        raise ConfigError(f"{where}: '{name}' must be a number, got {value!r}.") from None


def _parse_range(key: str, spec: Mapping[str, Any], where: str) -> Param:
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: a range needs both 'low' and 'high'.")
    low, high = _number(spec["low"], "low", where), _number(spec["high"], "high", where)
    is_int = all(
        isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("low", "high")
    )
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: 'log' must be true or false, got {log!r}.")
    step = None if spec.get("step") is None else _number(spec["step"], "step", where)
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ConfigError(
            f"{where}: empty range (low {spec['low']!r} must be below high {spec['high']!r}); "
            "use a list of one value to fix a key."
        )
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {spec['low']!r}.")
    if step is not None and (step <= 0 or log):
        raise ConfigError(f"{where}: 'step' must be positive and cannot combine with log.")
    if step is not None and is_int and not float(step).is_integer():
        raise ConfigError(f"{where}: an int range needs an integer 'step', got {spec['step']!r}.")
    return Param(key, "int" if is_int else "float", low=low, high=high, log=log, step=step)


def _check_types(key: str, values: list[Any], recipe: Recipe, where: str) -> None:
    """Each value must load as the recipe field (or build the arch): a wrong type fails now."""
    if key.startswith("model.params."):
        from edgesr.archs import arch_params

        name = key.rsplit(".", 1)[1]
        default = arch_params(recipe.model.arch)[name]
        for v in values:
            int_for_float = isinstance(default, float) and isinstance(v, int)
            if default is not None and type(v) is not type(default) and not int_for_float:
                raise ConfigError(
                    f"{where}: {v!r} is a {type(v).__name__}; '{name}' of arch "
                    f"'{recipe.model.arch}' takes a {type(default).__name__} like its default "
                    f"{default!r}."
                )
    for v in values:
        try:
            candidate = recipe.replace([f"{key}={json.dumps(v)}"])
            if key.startswith("model.params."):
                from edgesr.modelio import build_from_recipe

                build_from_recipe(candidate)
        except ConfigError as exc:
            raise ConfigError(f"{where}: value {v!r} does not load: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: value {v!r} does not build the net: {exc}") from None
