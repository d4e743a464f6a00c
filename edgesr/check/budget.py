"""Budgets: what a model must meet on a device, and the check of measurements against one.

A budget is a YAML file (shipped ones in ``edgesr/check/budgets/``) loaded once into frozen
dataclasses, as strictly as recipes: an unknown key fails with the valid names, every limit
carries its unit (``latency_p99: 33.3 ms``, ``power: 5 W``, ``energy_per_frame: 150 mJ``,
``model_size: 2 MiB``, ``psnr_y: 30.5 dB``) and a wrong unit fails naming the accepted ones.

Latency and power only count when measured under the budget's conditions: the backend it
names, its thread count, and its frame size (an output frame such as ``1080p`` maps to the LR
input through the model's scale). A limit without such a measurement is *missing*, never
guessed. ``edgesr check`` exits 0 when every line passes, ``BudgetFailed.exit_code`` (10) when
one fails and ``MeasurementMissing.exit_code`` (11) when one is unmeasured and not allowed to be.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgesr.errors import ConfigError, DataError, EdgesrError, ModelError
from edgesr.recipe import read_yaml_file

BUDGET_SCHEMA = 1
CHECK_SCHEMA = "edgesr.check/1"
BUDGET_DIR = Path(__file__).resolve().parent / "budgets"
KNOWN_BACKENDS = ("torch", "onnxruntime", "c", "tensorrt")


class BudgetFailed(EdgesrError):
    """At least one budget line fails."""

    exit_code = 10


class MeasurementMissing(EdgesrError):
    """A budget line has no measurement (and was not allowed to go unmeasured)."""

    exit_code = 11


# --------------------------------------------------------------------------------------------
# Units and limits

# Multipliers into the canonical unit (the first one listed).
UNITS: dict[str, dict[str, float]] = {
    "time": {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3},
    "power": {"W": 1.0, "mW": 1e-3},
    "energy": {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6},
    "psnr": {"dB": 1.0},
    "ratio": {"": 1.0},
    "size": {
        "B": 1.0,
        "kB": 1e3,
        "KB": 1e3,
        "KiB": 1024.0,
        "MB": 1e6,
        "MiB": 2.0**20,
        "GB": 1e9,
        "GiB": 2.0**30,
    },
    "rate": {"fps": 1.0},
}


@dataclass(frozen=True)
class LimitDef:
    """What a limit key means: its quantity, whether it is a maximum or a minimum, its group."""

    key: str
    quantity: str
    bound: Literal["max", "min"]
    group: Literal["latency", "power", "quality", "size"]
    label: str


LIMITS: dict[str, LimitDef] = {
    d.key: d
    for d in (
        LimitDef("latency_p50", "time", "max", "latency", "latency p50"),
        LimitDef("latency_p90", "time", "max", "latency", "latency p90"),
        LimitDef("latency_p99", "time", "max", "latency", "latency p99"),
        LimitDef("latency_mean", "time", "max", "latency", "latency mean"),
        LimitDef("throughput", "rate", "min", "latency", "throughput"),
        LimitDef("power", "power", "max", "power", "mean power"),
        LimitDef("energy_per_frame", "energy", "max", "power", "energy per frame"),
        LimitDef("psnr_y", "psnr", "min", "quality", "PSNR-Y"),
        LimitDef("psnr_gain", "psnr", "min", "quality", "PSNR-Y gain over bicubic"),
        LimitDef("ssim_y", "ratio", "min", "quality", "SSIM-Y"),
        LimitDef("model_size", "size", "max", "size", "model file size"),
    )
}
GROUPS = ("latency", "power", "quality", "size")

# The profile fields each latency/power limit reads.
_LATENCY_FIELD = {
    "latency_p50": "p50_ms",
    "latency_p90": "p90_ms",
    "latency_p99": "p99_ms",
    "latency_mean": "mean_ms",
    "throughput": "throughput_fps",
}
_POWER_FIELD = {"power": "mean_w", "energy_per_frame": "energy_per_frame_j"}

NAMED_FRAMES = {
    "720p": (720, 1280),
    "1080p": (1080, 1920),
    "1440p": (1440, 2560),
    "2160p": (2160, 3840),
    "4k": (2160, 3840),
}

_QUANTITY_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([^\d\s]*)\s*$")


def format_value(value: float | None, quantity: str) -> str:
    """A canonical-unit value for people: ms, W, mJ, dB, KiB/MiB, fps."""
    if value is None:
        return "—"
    if quantity == "time":
        return f"{value:.2f} ms"
    if quantity == "power":
        return f"{value:.2f} W"
    if quantity == "energy":
        return f"{value * 1000:.1f} mJ"
    if quantity == "psnr":
        return f"{value:.2f} dB"
    if quantity == "ratio":
        return f"{value:.4f}"
    if quantity == "rate":
        return f"{value:.1f} fps"
    if quantity == "size":
        if abs(value) >= 2**20:
            return f"{value / 2**20:.2f} MiB"
        return f"{value / 1024:.1f} KiB"
    return f"{value:g}"


def _fail(origin: str, where: str, message: str) -> ConfigError:
    return ConfigError(f"{origin}: '{where}' {message}")


def parse_quantity(value: Any, quantity: str, *, where: str, origin: str) -> float:
    """``'33.3 ms'`` -> 33.3 (canonical unit); a missing or wrong unit is a ConfigError."""
    units = UNITS[quantity]
    accepted = ", ".join(u for u in units if u) or "none (a bare number)"
    example = {
        "time": "33.3 ms",
        "power": "5 W",
        "energy": "150 mJ",
        "psnr": "30.5 dB",
        "ratio": "0.85",
        "size": "2 MiB",
        "rate": "30 fps",
    }[quantity]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _fail(origin, where, f"must be a quantity like '{example}', got {value!r}.")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        m = _QUANTITY_RE.match(value)
        if not m:
            raise _fail(
                origin, where, f"must be a number with a unit, like '{example}', got {value!r}."
            )
        number, unit = float(m.group(1)), m.group(2)
    if unit not in units:
        if unit == "":
            raise _fail(
                origin,
                where,
                f"needs a unit: write it like '{example}' (accepted units: {accepted}).",
            )
        raise _fail(
            origin,
            where,
            f"has unit '{unit}', which is not accepted here; accepted units: {accepted}.",
        )
    if not math.isfinite(number) or number <= 0:
        raise _fail(origin, where, f"must be a positive limit, got {value!r}.")
    canonical = number * units[unit]
    if quantity == "ratio" and canonical > 1:
        raise _fail(origin, where, f"is a ratio in (0, 1], got {value!r}.")
    return canonical


def parse_frame_size(value: Any, *, where: str, origin: str) -> tuple[int, int]:
    """``1080p`` or ``HEIGHTxWIDTH`` (e.g. ``1080x1920``; height first, like ``--size``)."""
    if isinstance(value, str) and value.lower() in NAMED_FRAMES:
        return NAMED_FRAMES[value.lower()]
    if isinstance(value, (list, tuple)) and len(value) == 2:
        parts: Sequence[Any] = value
    elif isinstance(value, str):
        parts = re.split(r"[xX]", value.strip())
    else:
        parts = ()
    try:
        h, w = (int(p) for p in parts)
    except (TypeError, ValueError):
        h = w = 0
    if h < 1 or w < 1:
        names = ", ".join(NAMED_FRAMES)
        raise _fail(
            origin,
            where,
            f"must be HEIGHTxWIDTH (e.g. 1080x1920) or one of {names}; got {value!r}.",
        )
    return h, w


# --------------------------------------------------------------------------------------------
# The budget


@dataclass(frozen=True)
class Limit:
    key: str
    value: float  # in the canonical unit of its quantity
    text: str  # as written in the budget

    @property
    def spec(self) -> LimitDef:
        return LIMITS[self.key]

    def describe(self) -> str:
        return f"{'<=' if self.spec.bound == 'max' else '>='} {self.text}"


@dataclass(frozen=True)
class FrameSpec:
    """The frame the latency limits are for: an output (HR) frame, or an input (LR) one."""

    output: tuple[int, int] | None = None
    input: tuple[int, int] | None = None

    def lr_size(self, scale: int | None) -> tuple[int, int] | None:
        """The LR frame to measure at; None when an output frame meets an unknown scale."""
        if self.input is not None:
            return self.input
        assert self.output is not None
        if not scale:
            return None
        h, w = self.output
        if h % scale or w % scale:
            raise ConfigError(
                f"the budget's output frame {h}x{w} is not a multiple of the model's x{scale}; "
                "give the budget an input frame instead (frame: {input: HxW})."
            )
        return h // scale, w // scale

    def describe(self) -> str:
        if self.input is not None:
            return f"LR {self.input[0]}x{self.input[1]}"
        assert self.output is not None
        return f"output {self.output[0]}x{self.output[1]}"


@dataclass(frozen=True)
class Budget:
    name: str
    limits: tuple[Limit, ...]
    description: str = ""
    device: str = ""
    # Conditions a latency/power measurement must have been taken under (None: any).
    scale: int | None = None
    backend: str | None = None
    threads: int | None = None
    frame: FrameSpec | None = None
    # Where PSNR/SSIM must be measured ("embedded", a folder or a benchmark name; None: any).
    eval_data: str | None = None
    source: str = field(default="", compare=False)

    def limit(self, key: str) -> Limit | None:
        return next((lim for lim in self.limits if lim.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        frame = None
        if self.frame is not None:
            frame = {
                k: list(v)
                for k, v in (("output", self.frame.output), ("input", self.frame.input))
                if v
            }
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "device": self.device,
            "scale": self.scale,
            "backend": self.backend,
            "threads": self.threads,
            "frame": frame,
            "eval_data": self.eval_data,
            "limits": {lim.key: lim.text for lim in self.limits},
        }


TOP_KEYS = (
    "schema",
    "name",
    "description",
    "device",
    "scale",
    "backend",
    "threads",
    "frame",
    "eval_data",
    "limits",
)


def _check_keys(raw: Mapping[str, Any], valid: Iterable[str], *, where: str, origin: str) -> None:
    valid = list(valid)
    for key in raw:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean '{where + close[0]}'?)" if close else ""
            scope = f" under '{where.rstrip('.')}'" if where else ""
            raise ConfigError(
                f"{origin}: unknown key '{where}{key}'{hint}; valid keys{scope}: {', '.join(valid)}."
            )


def budget_from_dict(raw: Any, *, origin: str, default_name: str = "") -> Budget:
    """Validate a parsed budget mapping into a frozen Budget."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: a budget must be a YAML mapping, got {type(raw).__name__}.")
    _check_keys(raw, TOP_KEYS, where="", origin=origin)
    if raw.get("schema") != BUDGET_SCHEMA:
        raise ConfigError(
            f"{origin}: 'schema: {raw.get('schema')}' is not supported; this edgesr reads budget "
            f"schema {BUDGET_SCHEMA}. Add 'schema: {BUDGET_SCHEMA}' at the top."
        )

    def text(key: str) -> str:
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise _fail(origin, key, f"must be a string, got {value!r}.")
        return value

    def positive_int(key: str) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(origin, key, f"must be a positive integer, got {value!r}.")
        return value

    name = text("name") or default_name
    if not name:
        raise ConfigError(f"{origin}: missing required key 'name'.")
    scale = positive_int("scale")
    if scale is not None and scale not in (2, 3, 4, 8):
        raise _fail(origin, "scale", f"must be 2, 3, 4 or 8, got {scale}.")
    backend = raw.get("backend")
    if backend is not None and backend not in KNOWN_BACKENDS:
        raise _fail(
            origin,
            "backend",
            f"must be one of {', '.join(KNOWN_BACKENDS)} (or left out for any), got {backend!r}.",
        )
    frame = None
    if raw.get("frame") is not None:
        fr = raw["frame"]
        if not isinstance(fr, Mapping):
            raise _fail(
                origin, "frame", "must be a mapping with 'output' or 'input', e.g. {output: 1080p}."
            )
        _check_keys(fr, ("output", "input"), where="frame.", origin=origin)
        if len(fr) != 1:
            raise _fail(
                origin, "frame", "needs exactly one of 'output' (HR frame) or 'input' (LR frame)."
            )
        key = next(iter(fr))
        size = parse_frame_size(fr[key], where=f"frame.{key}", origin=origin)
        frame = FrameSpec(**{key: size})
    eval_data = raw.get("eval_data")
    if eval_data is not None and not isinstance(eval_data, str):
        raise _fail(
            origin, "eval_data", f"must be a string ('embedded' or a folder), got {eval_data!r}."
        )
    limits_raw = raw.get("limits")
    if not isinstance(limits_raw, Mapping) or not limits_raw:
        raise ConfigError(
            f"{origin}: 'limits' must be a non-empty mapping, e.g. limits: {{latency_p99: 33.3 ms}}; "
            f"valid limits: {', '.join(LIMITS)}."
        )
    _check_keys(limits_raw, LIMITS, where="limits.", origin=origin)
    limits = []
    for key, value in limits_raw.items():
        spec = LIMITS[key]
        canonical = parse_quantity(value, spec.quantity, where=f"limits.{key}", origin=origin)
        limits.append(Limit(key, canonical, str(value).strip()))
    quality_keys = {"psnr_y", "ssim_y"} & set(limits_raw)
    if quality_keys and scale is None:
        raise ConfigError(
            f"{origin}: {', '.join(sorted(quality_keys))} depend on the upscaling factor; set 'scale' "
            "(or use psnr_gain, the gain over bicubic, which does not)."
        )
    needs_frame = {"latency", "power"} & {LIMITS[k].group for k in limits_raw}
    if needs_frame and frame is None:
        raise ConfigError(
            f"{origin}: latency and power limits hold at a frame size; add e.g. 'frame: {{output: 1080p}}'."
        )
    return Budget(
        name=name,
        limits=tuple(limits),
        description=text("description"),
        device=text("device"),
        scale=scale,
        backend=backend,
        threads=positive_int("threads"),
        frame=frame,
        eval_data=eval_data,
        source=origin,
    )


def available_budgets() -> list[str]:
    """Names of the budgets shipped with edgesr."""
    return sorted(p.stem for p in BUDGET_DIR.glob("*.yaml"))


def resolve_budget_path(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.suffix in (".yaml", ".yml") or "/" in text or "\\" in text:
        if not candidate.is_file():
            raise ConfigError(
                f"budget file {candidate} does not exist; pass an existing YAML file or one of: "
                f"{', '.join(available_budgets())}."
            )
        return candidate
    shipped = BUDGET_DIR / f"{text}.yaml"
    if shipped.is_file():
        return shipped
    names = available_budgets()
    close = difflib.get_close_matches(text, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown budget '{text}'.{hint} Shipped budgets: {', '.join(names)} (or pass a path to "
        "your own .yaml)."
    )


def load_budget(name_or_path: str | Path) -> Budget:
    """A shipped budget by name (``jetson-orin-nano-1080p30``) or the user's YAML file."""
    path = resolve_budget_path(name_or_path)
    raw = read_yaml_file(path)
    return budget_from_dict(raw, origin=str(path), default_name=path.stem)


# --------------------------------------------------------------------------------------------
# Measurements


@dataclass(frozen=True)
class LatencyRecord:
    """One profile's latency (and the power measured during it)."""

    source: str
    backend: str
    size: tuple[int, int]
    batch: int
    threads: int | None
    values: Mapping[str, float]
    power: Mapping[str, Any]

    def describe(self) -> str:
        threads = (
            f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        )
        batch = f", batch {self.batch}" if self.batch != 1 else ""
        return f"{self.backend} at LR {self.size[0]}x{self.size[1]}{threads}{batch} [{self.source}]"


@dataclass(frozen=True)
class QualityRecord:
    source: str
    data: str
    psnr_y: float
    ssim_y: float | None
    bicubic_psnr_y: float | None


@dataclass
class Measurements:
    """Everything known about one model, from profiles, evaluations or a compress manifest."""

    subject: str
    identity: dict[str, Any] | None = None
    scale: int | None = None
    model_size: int | None = None
    latency: list[LatencyRecord] = field(default_factory=list)
    quality: list[QualityRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _normalize_backend(name: str) -> str:
    # compress manifests say "onnxruntime-cpu"; a budget's backend is the runtime's name.
    return name[: -len("-cpu")] if name.endswith("-cpu") else name


def _same_model(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Same file, or an engine built from the other's ONNX (``source_sha256``)."""
    sa, sb = a.get("sha256"), b.get("sha256")
    if sa and sa == sb:
        return True
    return bool(
        (a.get("source_sha256") and a.get("source_sha256") in (sb, b.get("source_sha256")))
        or (b.get("source_sha256") and b.get("source_sha256") == sa)
    )


def _model_label(ident: Mapping[str, Any]) -> str:
    recipe = (
        f", recipe {ident['recipe']}@{ident['recipe_hash']}" if ident.get("recipe_hash") else ""
    )
    return f"{ident.get('name', '?')} (sha256 {str(ident.get('sha256', '?'))[:12]}{recipe})"


def _mismatch(source: str, got: Mapping[str, Any], want: Mapping[str, Any]) -> ModelError:
    if (
        got.get("recipe_hash")
        and want.get("recipe_hash")
        and got["recipe_hash"] != want["recipe_hash"]
    ):
        why = "results from another model (different recipe hash)"
    else:
        why = "results from a different model file"
    return ModelError(
        f"{source} was measured on {_model_label(got)}, but the model is {_model_label(want)}: "
        f"{why}. Profile this model, or pass the results that belong to it."
    )


def classify_results(doc: Any, source: str) -> str:
    """'profile' (edgesr profile --json) or 'evaluation' (edgesr evaluate --json)."""
    if isinstance(doc, dict) and "schema" in doc:
        return "profile"
    if isinstance(doc, dict) and {"scale", "mean", "images"} <= set(doc):
        return "evaluation"
    raise DataError(
        f"{source} is neither a profile (`edgesr profile --json`) nor an evaluation "
        "(`edgesr evaluate --json`)."
    )


def read_results(paths: Iterable[str | Path]) -> list[tuple[str, dict[str, Any]]]:
    """Load result files: (source, document) pairs, each validated for its kind."""
    from edgesr.profile.schema import validate_profile

    out = []
    for p in paths:
        path = Path(p)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"results file {path} does not exist.") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"results file {path} is not readable JSON ({exc}).") from exc
        if classify_results(doc, str(path)) == "profile":
            validate_profile(doc, str(path))
        out.append((path.name, doc))
    return out


def measurements_from_results(
    results: Sequence[tuple[str, dict[str, Any]]],
    *,
    model: Mapping[str, Any] | None = None,
    subject: str | None = None,
) -> Measurements:
    """Merge profile/evaluation documents about one model; ``model`` is the identity of the
    model they must belong to (``--model``). Documents about another model are a ModelError."""
    profiles = [(s, d) for s, d in results if classify_results(d, s) == "profile"]
    evaluations = [(s, d) for s, d in results if classify_results(d, s) == "evaluation"]
    reference = (
        dict(model) if model is not None else (profiles[0][1]["model"] if profiles else None)
    )
    ref_source = "--model" if model is not None else (profiles[0][0] if profiles else "")
    for source, doc in profiles:
        if reference is not None and not _same_model(doc["model"], reference):
            if model is not None:
                raise _mismatch(source, doc["model"], reference)
            raise ModelError(
                f"the results are about different models: {ref_source} measured "
                f"{_model_label(reference)}, {source} measured {_model_label(doc['model'])}; "
                "check one model at a time."
            )
    m = Measurements(
        subject=subject or (reference or {}).get("name") or "model", identity=reference
    )
    m.scale = (reference or {}).get("scale")
    m.model_size = (reference or {}).get("file_bytes")
    for source, doc in profiles:
        m.scale = m.scale or doc["model"].get("scale")
        inp = doc["input"]
        m.latency.append(
            LatencyRecord(
                source=source,
                backend=_normalize_backend(str(doc["backend"])),
                size=(int(inp["size"][0]), int(inp["size"][1])),
                batch=int(inp.get("batch", 1)),
                threads=doc.get("threads"),
                values={
                    k: float(v) for k, v in doc["latency"].items() if isinstance(v, (int, float))
                },
                power=doc["power"],
            )
        )
        q = doc.get("quality")
        if q:
            m.quality.append(
                QualityRecord(
                    source,
                    str(q["data"]),
                    float(q["psnr_y"]),
                    q.get("ssim_y"),
                    (q.get("bicubic") or {}).get("psnr_y"),
                )
            )
    for source, doc in evaluations:
        if m.scale and doc["scale"] != m.scale:
            raise ModelError(
                f"{source} evaluates a x{doc['scale']} model ({doc.get('model')}), but the model is "
                f"x{m.scale}: results from another model."
            )
        m.scale = m.scale or doc["scale"]
        mean, bic = doc.get("mean") or {}, doc.get("bicubic") or {}
        if "psnr_y" not in mean:
            raise DataError(f"{source}: the evaluation has no mean PSNR-Y; the file is damaged.")
        m.quality.append(
            QualityRecord(
                source,
                str(doc.get("data", "")),
                float(mean["psnr_y"]),
                mean.get("ssim_y"),
                bic.get("psnr_y"),
            )
        )
        m.notes.append(
            f"{source} names its model only as {doc.get('model')!r} (evaluations carry no sha256)"
        )
    return m


def load_manifest(run_dir: str | Path) -> dict[str, Any]:
    """A compress run directory's ``manifest.json``."""
    run_dir = Path(run_dir)
    path = run_dir / "manifest.json"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} has no manifest.json; pass a run directory written by `edgesr compress`."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not readable JSON ({exc}).") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stages"), list):
        raise DataError(f"{path} has no 'stages' list; is it a compress manifest?")
    return manifest


def measurements_from_stage(
    manifest: Mapping[str, Any], row: Mapping[str, Any], run_dir: str | Path
) -> Measurements:
    """One stage of a compress run: ORT CPU p50/p90 at the recipe's size, PSNR/SSIM, size."""
    from edgesr.profile.schema import identify

    onnx = Path(run_dir) / str(row["onnx"])
    identity = (
        identify(onnx) if onnx.is_file() else {"name": row["onnx"], "file_bytes": row["file_bytes"]}
    )
    lat = manifest.get("latency") or {}
    m = Measurements(
        subject=str(row["stage"]),
        identity=identity,
        scale=identity.get("scale"),
        model_size=int(row["file_bytes"]),
    )
    # A stage compress did not time on the CPU (a TensorRT-layout model) has no latency here.
    if lat.get("size") and row.get("latency_p50_ms") is not None:
        m.latency.append(
            LatencyRecord(
                source="manifest.json",
                backend=_normalize_backend(str(lat.get("backend", "onnxruntime"))),
                size=(int(lat["size"][0]), int(lat["size"][1])),
                batch=1,
                threads=lat.get("threads"),
                values={
                    "p50_ms": float(row["latency_p50_ms"]),
                    "p90_ms": float(row["latency_p90_ms"]),
                },
                power={
                    "measured": False,
                    "reason": "a compress run measures no power; profile the stage on the device",
                },
            )
        )
    m.quality.append(
        QualityRecord(
            "manifest.json",
            str(manifest.get("eval_data", "")),
            float(row["psnr_y"]),
            row.get("ssim_y"),
            (manifest.get("bicubic") or {}).get("psnr_y"),
        )
    )
    return m


# --------------------------------------------------------------------------------------------
# The check

Status = Literal["pass", "fail", "missing", "waived"]


@dataclass(frozen=True)
class CheckLine:
    key: str
    label: str
    bound: str  # "max", "min" or "equal"
    limit_text: str
    limit: float | None
    measured: float | None
    quantity: str
    status: Status
    note: str = ""

    @property
    def margin(self) -> float | None:
        """Headroom: positive passes, negative fails (limit - measured for a maximum)."""
        if self.measured is None or self.limit is None or self.bound == "equal":
            return None
        return self.limit - self.measured if self.bound == "max" else self.measured - self.limit

    @property
    def margin_pct(self) -> float | None:
        margin = self.margin
        return None if margin is None or not self.limit else 100.0 * margin / self.limit

    def measured_text(self) -> str:
        if self.quantity == "scale":
            return f"x{int(self.measured)}" if self.measured else "—"
        return format_value(self.measured, self.quantity)

    def margin_text(self) -> str:
        margin = self.margin
        if margin is None:
            return "—"
        text = format_value(margin, self.quantity)
        sign = "+" if margin >= 0 else ""
        return f"{sign}{text} ({self.margin_pct:+.1f}%)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "bound": self.bound,
            "limit": self.limit,
            "limit_text": self.limit_text,
            "measured": self.measured,
            "measured_text": self.measured_text(),
            "margin": self.margin,
            "margin_pct": self.margin_pct,
            "margin_text": self.margin_text(),
            "status": self.status,
            "note": self.note,
        }


@dataclass
class CheckResult:
    budget: Budget
    subject: str
    lines: list[CheckLine]
    identity: dict[str, Any] | None = None
    measured_with: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckLine]:
        return [line for line in self.lines if line.status == "fail"]

    @property
    def missing(self) -> list[CheckLine]:
        return [line for line in self.lines if line.status == "missing"]

    @property
    def verdict(self) -> str:
        return "fail" if self.failed else "missing" if self.missing else "pass"

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": BudgetFailed.exit_code, "missing": MeasurementMissing.exit_code}[
            self.verdict
        ]

    def table(self) -> str:
        head = f"budget {self.budget.name}"
        if self.budget.device:
            head += f" ({self.budget.device})"
        rows = [("line", "limit", "measured", "margin", "verdict")]
        for line in self.lines:
            rows.append(
                (
                    line.label,
                    f"{'<=' if line.bound == 'max' else '>=' if line.bound == 'min' else '=='} {line.limit_text}",
                    line.measured_text(),
                    line.margin_text(),
                    line.status.upper(),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        out = [f"{head}: {self.subject}"]
        if self.measured_with:
            out.append(f"measured with: {self.measured_with}")
        out += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        by_note: dict[str, list[str]] = {}
        for line in self.lines:
            if line.note and line.status != "pass":
                by_note.setdefault(line.note, []).append(line.label)
        out += [f"  {', '.join(labels)}: {note}" for note, labels in by_note.items()]
        out += [f"  note: {n}" for n in self.notes]
        counts = f"{len(self.failed)} fail, {len(self.missing)} not measured"
        waived = sum(line.status == "waived" for line in self.lines)
        if waived:
            counts += f", {waived} allowed unmeasured"
        out.append(f"verdict: {self.verdict.upper()} ({len(self.lines)} lines: {counts})")
        return "\n".join(out)

    def summary(self) -> str:
        """One sentence for the error line of the CLI."""
        if self.failed:
            parts = [f"{x.label} {x.measured_text()} vs {x.limit_text}" for x in self.failed]
            return f"budget {self.budget.name}: {len(self.failed)} line(s) fail for {self.subject}: {'; '.join(parts)}."
        if self.missing:
            parts = [x.key for x in self.missing]
            groups = sorted({LIMITS[k].group if k in LIMITS else k for k in parts})
            return (
                f"budget {self.budget.name}: not measured for {self.subject}: {', '.join(parts)}. "
                f"Measure them (see the notes above) or pass --allow-unmeasured {','.join(groups)}."
            )
        return f"budget {self.budget.name}: all {len(self.lines)} lines pass for {self.subject}."

    def raise_for_verdict(self) -> None:
        if self.failed:
            raise BudgetFailed(self.summary())
        if self.missing:
            raise MeasurementMissing(self.summary())

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "identity": self.identity,
            "measured_with": self.measured_with,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "lines": [line.to_dict() for line in self.lines],
            "notes": self.notes,
        }


def parse_allowances(values: Iterable[str]) -> frozenset[str]:
    """``--allow-unmeasured`` values (comma lists): limit keys, groups, 'scale' or 'all'."""
    valid = ["all", *GROUPS, *LIMITS, "scale"]
    keys: set[str] = set()
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            if item == "all":
                keys |= set(LIMITS) | {"scale"}
            elif item in GROUPS:
                keys |= {k for k, d in LIMITS.items() if d.group == item}
            elif item in LIMITS or item == "scale":
                keys.add(item)
            else:
                close = difflib.get_close_matches(item, valid, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(
                    f"--allow-unmeasured '{item}' is not a limit or group{hint}; valid: {', '.join(valid)}."
                )
    return frozenset(keys)


def _same_data(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        s = s.strip().rstrip("/\\")
        return "embedded" if s in ("embedded", "embedded:val") else s

    a, b = norm(a), norm(b)
    return a == b or (bool(a) and Path(a).name.lower() == Path(b).name.lower())


def _pick_latency(budget: Budget, m: Measurements) -> tuple[LatencyRecord | None, str]:
    try:
        size = budget.frame.lr_size(m.scale) if budget.frame else None
    except ConfigError as exc:
        return None, str(exc)
    if budget.frame is not None and size is None:
        return None, (
            f"the model's scale is unknown, so the budget's {budget.frame.describe()} frame has no "
            "input size; profile a model that carries edgesr metadata"
        )
    want = [
        budget.backend or "any backend",
        f"LR {size[0]}x{size[1]}" if size else "any size",
        f"{budget.threads} threads" if budget.threads else "",
    ]
    hits = [
        r
        for r in m.latency
        if (size is None or r.size == size)
        and (budget.backend is None or r.backend == budget.backend)
        and (budget.threads is None or r.threads == budget.threads)
        and r.batch == 1
    ]
    if not hits:
        have = "; ".join(r.describe() for r in m.latency) or "no profile"
        return None, f"needs a batch-1 profile on {', '.join(w for w in want if w)}; have: {have}"
    if len(hits) > 1:
        raise ConfigError(
            "several results measure the budget's conditions ("
            + "; ".join(r.source for r in hits)
            + "); pass one of them."
        )
    return hits[0], ""


def _pick_quality(budget: Budget, m: Measurements) -> tuple[QualityRecord | None, str]:
    hits = [
        q for q in m.quality if budget.eval_data is None or _same_data(q.data, budget.eval_data)
    ]
    unnamed = [q for q in m.quality if not q.data]
    if not hits and unnamed and budget.eval_data:
        # `edgesr evaluate --json` does not record its images; say so instead of refusing it.
        m.notes.append(
            f"{unnamed[0].source} does not record its images; taken as measured on "
            f"'{budget.eval_data}', as the budget requires"
        )
        hits = unnamed[:1]
    if not hits:
        have = ", ".join(f"{q.data} [{q.source}]" for q in m.quality) or "none"
        where = f" on '{budget.eval_data}'" if budget.eval_data else ""
        return (
            None,
            f"needs PSNR/SSIM measured{where} (edgesr check --model M --data DIR); have: {have}",
        )
    return hits[0], ""


def check_budget(
    budget: Budget, m: Measurements, *, allow_unmeasured: Iterable[str] = ()
) -> CheckResult:
    """Every limit of ``budget`` against ``m``: pass/fail with its margin, or missing."""
    allowed = parse_allowances(allow_unmeasured)
    lines: list[CheckLine] = []

    def missing(
        key: str,
        label: str,
        bound: str,
        limit_text: str,
        limit: float | None,
        quantity: str,
        why: str,
    ) -> CheckLine:
        status: Status = "waived" if key in allowed else "missing"
        return CheckLine(key, label, bound, limit_text, limit, None, quantity, status, why)

    if budget.scale is not None:
        if m.scale is None:
            lines.append(
                missing(
                    "scale",
                    "scale",
                    "equal",
                    f"x{budget.scale}",
                    budget.scale,
                    "scale",
                    "the model's scale is unknown",
                )
            )
        else:
            ok = m.scale == budget.scale
            note = "" if ok else f"the budget is for x{budget.scale} models"
            lines.append(
                CheckLine(
                    "scale",
                    "scale",
                    "equal",
                    f"x{budget.scale}",
                    budget.scale,
                    m.scale,
                    "scale",
                    "pass" if ok else "fail",
                    note,
                )
            )

    latency, lat_why = (None, "")
    if any(LIMITS[lim.key].group in ("latency", "power") for lim in budget.limits):
        latency, lat_why = _pick_latency(budget, m)
    quality, q_why = (None, "")
    if any(LIMITS[lim.key].group == "quality" for lim in budget.limits):
        quality, q_why = _pick_quality(budget, m)

    for lim in budget.limits:
        spec = lim.spec
        value: float | None = None
        why = ""
        if spec.group == "latency":
            if latency is None:
                why = lat_why
            else:
                value = latency.values.get(_LATENCY_FIELD[lim.key])
                why = (
                    ""
                    if value is not None
                    else (
                        f"{latency.source} has no {_LATENCY_FIELD[lim.key]}; profile the model "
                        "(edgesr profile) for the full statistics"
                    )
                )
        elif spec.group == "power":
            if latency is None:
                why = lat_why
            elif not latency.power.get("measured"):
                why = f"power not measured in {latency.source}: {latency.power.get('reason', 'no reason given')}"
            else:
                value = latency.power.get(_POWER_FIELD[lim.key])
                why = (
                    "" if value is not None else f"{latency.source} has no {_POWER_FIELD[lim.key]}"
                )
        elif spec.group == "quality":
            if quality is None:
                why = q_why
            elif lim.key == "psnr_y":
                value = quality.psnr_y
            elif lim.key == "ssim_y":
                value = quality.ssim_y
                why = "" if value is not None else f"{quality.source} has no SSIM-Y"
            else:  # psnr_gain
                if quality.bicubic_psnr_y is None:
                    why = f"{quality.source} has no bicubic reference PSNR"
                else:
                    value = quality.psnr_y - quality.bicubic_psnr_y
        else:  # size
            value = float(m.model_size) if m.model_size is not None else None
            why = "" if value is not None else "the model file's size is unknown"
        if value is None:
            lines.append(
                missing(lim.key, spec.label, spec.bound, lim.text, lim.value, spec.quantity, why)
            )
            continue
        ok = value <= lim.value if spec.bound == "max" else value >= lim.value
        lines.append(
            CheckLine(
                lim.key,
                spec.label,
                spec.bound,
                lim.text,
                lim.value,
                float(value),
                spec.quantity,
                "pass" if ok else "fail",
            )
        )
    measured_with = "; ".join(
        x
        for x in (
            latency.describe() if latency else "",
            f"quality on {quality.data} [{quality.source}]" if quality else "",
        )
        if x
    )
    return CheckResult(
        budget,
        m.subject,
        lines,
        identity=m.identity,
        measured_with=measured_with,
        notes=list(m.notes),
    )


# --------------------------------------------------------------------------------------------
# Check documents


def check_document(checks: Sequence[CheckResult]) -> dict[str, Any]:
    """``edgesr.check/1``: the budget and every check; the verdict is the last check's (for a
    compress run, the final stage: the model that ships)."""
    from edgesr.profile.schema import utc_now

    if not checks:
        raise ValueError("no checks")
    final = checks[-1]
    return {
        "schema": CHECK_SCHEMA,
        "created": utc_now(),
        "budget": final.budget.to_dict(),
        "checks": [c.to_dict() for c in checks],
        "verdict": final.verdict,
        "exit_code": final.exit_code,
    }


def write_check_json(
    checks: Sequence[CheckResult], path: str | Path, *, force: bool = False
) -> Path:
    from edgesr.outputs import atomic_write_bytes, refuse_existing

    path = Path(path)
    refuse_existing(path, force=force)
    atomic_write_bytes(path, (json.dumps(check_document(checks), indent=2) + "\n").encode())
    return path


def load_check_json(path: str | Path) -> dict[str, Any]:
    from edgesr.outputs import read_json

    doc = read_json(path, what="check file")
    if (
        not isinstance(doc, dict)
        or doc.get("schema") != CHECK_SCHEMA
        or not isinstance(doc.get("checks"), list)
    ):
        raise DataError(
            f"{path} is not an {CHECK_SCHEMA} document (write one with `edgesr check --json`)."
        )
    return doc


def check_compress_run(
    run_dir: str | Path,
    budget: Budget | str | Path,
    *,
    allow_unmeasured: Iterable[str] = (),
    write: bool = True,
) -> list[CheckResult]:
    """Check every stage of a compress run against ``budget``; writes ``RUN_DIR/check.json``.

    The last result is the final stage, the model that ships. The compress manifest has ORT CPU
    p50/p90 and no power, so lines needing more are reported missing, with how to measure them.
    """
    budget = budget if isinstance(budget, Budget) else load_budget(budget)
    allow = list(allow_unmeasured)
    manifest = load_manifest(run_dir)
    checks = [
        check_budget(
            budget, measurements_from_stage(manifest, row, run_dir), allow_unmeasured=allow
        )
        for row in manifest["stages"]
    ]
    if not checks:
        raise DataError(f"{run_dir}/manifest.json lists no stages.")
    if write:
        write_check_json(checks, Path(run_dir) / "check.json", force=True)
    return checks
