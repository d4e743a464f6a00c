"""The environment a measurement was taken in, recorded with every profile.

The collector itself is in :mod:`edgesr.profile.minimal` (the device-side profiler records the
same fields); here it is extended with what only a workstation install has: edgesr's version,
torch/NNCF/onnx versions and torch's thread count.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from edgesr import __version__
from edgesr.profile.minimal import collect_environment as _collect_core

WORKSTATION_PACKAGES = ("torch", "onnx", "nncf", "edgesr", "matplotlib")


def collect_environment(*, threads: int | None = None, root: str | Path = "/") -> dict[str, Any]:
    """CPU, OS, board and power mode, library versions and load, plus edgesr's own version."""
    env = _collect_core(threads=threads, root=root, extra_packages=WORKSTATION_PACKAGES)
    env["edgesr_version"] = __version__
    torch = sys.modules.get("torch")  # only if already in use: never import it just to ask
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
    return env


def describe_environment(env: dict[str, Any]) -> str:
    """One line for people: board or CPU, cores, power mode, the runtime versions."""
    parts = [env.get("board") or env.get("cpu") or "unknown CPU"]
    parts.append(f"{env.get('usable_cpus', env.get('logical_cpus'))} usable CPUs")
    mode = env.get("power_mode") or {}
    if mode.get("nvpmodel"):
        nvp = mode["nvpmodel"]
        parts.append(f"nvpmodel {nvp.get('name') or nvp.get('id')}")
    elif mode.get("cpu_governor"):
        parts.append(f"governor {mode['cpu_governor']}")
    packages = env.get("packages", {})
    parts += [f"{k} {v}" for k, v in packages.items() if k in ("onnxruntime", "tensorrt", "torch")]
    if env.get("load_average"):
        parts.append(f"load {env['load_average'][0]}")
    return ", ".join(str(p) for p in parts)
