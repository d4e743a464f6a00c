"""The full profiler: ``profile_model`` times a model on any backend and returns its
``edgesr.profile/1`` document (see :mod:`edgesr.profile.schema`).

The statistics, power sampling and the document itself are the device profiler's
(:mod:`edgesr.profile.minimal`), so a profile taken here and one taken on a device with only
numpy mean the same. On top of it: every backend (``edgesr.profile.backends``), models given as
edgesr weights, the workstation's environment and PSNR/SSIM on images.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgesr import __version__
from edgesr.errors import ConfigError
from edgesr.profile import minimal
from edgesr.profile.backends import make_runner
from edgesr.profile.env import collect_environment
from edgesr.profile.errors import edgesr_errors
from edgesr.profile.latency import time_runner
from edgesr.profile.minimal import ProfileOptions
from edgesr.profile.power import detect_probe
from edgesr.profile.schema import identify

__all__ = ["ProfileOptions", "evaluate_quality", "profile_model", "write_profile_json"]


def evaluate_quality(runner: Any, data: Any) -> dict[str, Any]:
    """PSNR/SSIM (Y, standard protocol) of the runner on ``data``, with bicubic alongside."""
    from edgesr.evaluate import evaluate

    report = evaluate(runner, data)
    return {
        "data": str(data),
        "images": len(report.images),
        "scale": report.scale,
        **report.mean,
        "bicubic": report.bicubic,
    }


def profile_model(
    model: str | Path, options: ProfileOptions | None = None, *, data: Any = None
) -> dict[str, Any]:
    """Profile ``model`` as ``options`` say and return its ``edgesr.profile/1`` document.

    ``options.power`` is ``auto`` (first usable probe), ``none`` or a probe name; with a probe
    the timed window lasts at least ``min_seconds`` (default 2 s) so the sensor sees enough of
    it. ``data`` (a folder or ``"embedded"``) adds PSNR/SSIM on those images to the document.
    """
    o = options or ProfileOptions()
    path = Path(model)
    if o.runs < 1 or o.warmup < 0 or o.batch < 1:
        raise ConfigError("runs and batch must be at least 1 and warmup not negative.")
    with edgesr_errors():
        backend = o.backend or minimal.default_backend(path)
    runner = make_runner(backend, path, threads=o.threads, providers=o.providers)
    identity = identify(path)
    gpu = backend == "tensorrt" or any("CUDA" in p or "Tensorrt" in p for p in o.providers)
    probe, reason = detect_probe(
        o.power,
        root=o.root,
        gpu=gpu,
        rail=o.power_rail,
        interval_ms=max(1, int(o.power_interval_s * 1000)),
    )
    restore_threads = _torch_threads(o.threads) if backend == "torch" else None
    try:
        # Activation (session creation, engine load) stays outside the measured window.
        power_ctx = probe if probe is not None else contextlib.nullcontext()
        with edgesr_errors(), power_ctx, runner:
            detail = _backend_detail(runner)
            idle_w = (
                minimal.measure_idle(probe, o.idle_seconds, o.power_interval_s)
                if probe is not None and o.idle_seconds > 0
                else None
            )
            sampler = minimal.PowerSampler(probe, o.power_interval_s) if probe is not None else None
            min_seconds = o.min_seconds
            if min_seconds is None:
                min_seconds = 2.0 if sampler is not None else 0.0
            stats = time_runner(
                runner,
                size=o.size,
                batch=o.batch,
                warmup=o.warmup,
                runs=o.runs,
                seed=o.seed,
                min_seconds=min_seconds,
                sampler=sampler,
            )
            times = list(runner.inference_times)
            power_out = minimal.finish_power(sampler, reason, stats.runs * o.batch, idle_w)
        quality = evaluate_quality(runner, data) if data is not None else None
    finally:
        if restore_threads is not None:
            restore_threads()
    if not identity.get("color"):
        identity["color"] = "y_bt601" if runner.color == "y" else runner.color
    return minimal.build_result(
        identity=identity,
        backend=backend,
        backend_detail=detail,
        size=tuple(o.size),
        batch=o.batch,
        channels=runner.num_channels,
        scale=runner.scale,
        threads=o.threads,
        warmup=o.warmup,
        times_s=times,
        power=power_out,
        environment=collect_environment(threads=o.threads, root=o.root),
        tool="edgesr.profile",
        tool_version=__version__,
        quality=quality,
    )


def _torch_threads(threads: int | None) -> Callable[[], None] | None:
    if not threads:
        return None
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return lambda: torch.set_num_threads(before)


def _backend_detail(runner: Any) -> dict[str, Any]:
    detail: dict[str, Any] = {"runner": type(runner).__name__}
    session = getattr(runner, "session", None)
    if session is not None and hasattr(session, "get_providers"):
        import onnxruntime

        detail.update(providers=session.get_providers(), version=onnxruntime.__version__)
    model = getattr(runner, "model", None)
    if hasattr(model, "detail"):
        detail.update(model.detail)
    return detail


def write_profile_json(result: dict[str, Any], path: str | Path, *, force: bool = False) -> Path:
    from edgesr.outputs import atomic_write_bytes, refuse_existing

    path = Path(path)
    refuse_existing(path, force=force, hint="or choose another --json path")
    atomic_write_bytes(path, (json.dumps(result, indent=2) + "\n").encode())
    return path
