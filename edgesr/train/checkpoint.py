"""Crash-safe training checkpoints: safetensors tensors + a JSON state, swapped in atomically.

Layout of a run directory::

    run/
      recipe.yaml              the resolved recipe the run was started with
      log.jsonl                one JSON line per log/validation event
      checkpoints/
        step_00001000/         model.safetensors, optim.safetensors, state.json
                               (named models: model.NAME.safetensors, optim.NAME.safetensors)
        LATEST                 name of the newest complete checkpoint
      model.safetensors        the final weights (self-describing, see edgesr.modelio)

A checkpoint is written into a hidden temp folder and renamed into place, and ``LATEST`` is
replaced only after that, so a SIGKILL at any moment leaves the previous checkpoint usable.
Nothing is unpickled on load.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from edgesr.errors import ModelError
from edgesr.modelio import atomic_write_bytes

STATE_FILE = "state.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _flatten_optimizer(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON-able rest."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, entry in rest.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": rest["param_groups"]}


def _named(
    model: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer | None,
    models: Mapping[str, torch.nn.Module] | None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None,
) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
    """One model + optimizer (the original call form) or named ones, e.g. a GAN's g, d, ema."""
    if (model is None) == (models is None) or (optimizer is None) == (optimizers is None):
        raise TypeError("pass model= and optimizer=, or models= and optimizers=")
    if models is None:
        return {"": model}, {"": optimizer}
    if "" in models or "" in (optimizers or {}):
        raise TypeError("checkpoint model/optimizer names must not be empty")
    return dict(models), dict(optimizers or {})


def _file(kind: str, name: str) -> str:
    # The unnamed model keeps the original file names, so older checkpoints still load.
    return f"{kind}.safetensors" if not name else f"{kind}.{name}.safetensors"


def save_checkpoint(
    run_dir: Path,
    *,
    step: int,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any],
    keep: int,
    models: Mapping[str, torch.nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically and prune all but the newest ``keep``.

    Pass one ``model`` and ``optimizer``, or several by name in ``models``/``optimizers``.
    """
    from safetensors.torch import save

    models, optimizers = _named(model, optimizer, models, optimizers)

    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for key, net in models.items():
        tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        atomic_write_bytes(tmp / _file("model", key), save(tensors))
    optim_rests = {}
    for key, opt in optimizers.items():
        optim_tensors, optim_rests[key] = _flatten_optimizer(opt)
        atomic_write_bytes(tmp / _file("optim", key), save(optim_tensors))
    payload = {"step": step, **state}
    if "" in optim_rests:
        payload["optimizer"] = optim_rests[""]
    else:
        payload["optimizers"] = optim_rests
    # state.json last: its presence marks the checkpoint complete.
    atomic_write_bytes(tmp / STATE_FILE, json.dumps(payload).encode())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(ckpt_root)
    atomic_write_bytes(ckpt_root / "LATEST", name.encode())
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if (p / STATE_FILE).is_file())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (LATEST if it is intact, else the newest on disk)."""
    root = run_dir / "checkpoints"
    pointer = root / "LATEST"
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / STATE_FILE).is_file():
            return candidate
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    models: Mapping[str, torch.nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
) -> dict[str, Any]:
    """Restore model(s) and optimizer(s) in place (as saved: one, or by name); returns the JSON
    state (with ``step``)."""
    from safetensors.torch import load_file

    models, optimizers = _named(model, optimizer, models, optimizers)
    try:
        state = json.loads((path / STATE_FILE).read_text())
        rests = {"": state.pop("optimizer")} if "" in optimizers else state.pop("optimizers")
        for name, net in models.items():
            net.load_state_dict(load_file(str(path / _file("model", name))), strict=True)
        for name, opt in optimizers.items():
            tensors = load_file(str(path / _file("optim", name)))
            opt.load_state_dict(_unflatten_optimizer(tensors, rests[name]))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(
            f"checkpoint {path} cannot be restored ({exc}); delete it to resume from the one before."
        ) from exc
    return state
