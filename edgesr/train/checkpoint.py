"""Crash-safe training checkpoints: safetensors tensors + a JSON state, swapped in atomically.

Layout of a run directory::

    run/
      recipe.yaml              the resolved recipe the run was started with
      log.jsonl                one JSON line per log/validation event
      checkpoints/
        step_00001000/         model.safetensors, optim.safetensors, state.json
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


def save_checkpoint(
    run_dir: Path,
    *,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically and prune all but the newest ``keep``."""
    from safetensors.torch import save

    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model_tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_tensors, optim_rest = _flatten_optimizer(optimizer)
    atomic_write_bytes(tmp / "model.safetensors", save(model_tensors))
    atomic_write_bytes(tmp / "optim.safetensors", save(optim_tensors))
    payload = {"step": step, "optimizer": optim_rest, **state}
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
    path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model and optimizer in place; returns the JSON state (with ``step``)."""
    from safetensors.torch import load_file

    try:
        state = json.loads((path / STATE_FILE).read_text())
        model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
        optimizer.load_state_dict(
            _unflatten_optimizer(load_file(str(path / "optim.safetensors")), state.pop("optimizer"))
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(
            f"checkpoint {path} cannot be restored ({exc}); delete it to resume from the one before."
        ) from exc
    return state
