"""``edgesr profile``: latency percentiles, throughput, power and energy per frame.

A profile is an ``edgesr.profile/1`` JSON document: the model's identity (path, sha256, the
edgesr metadata: recipe, recipe_hash, scale, colour, precision), backend, frame size, threads,
runs, latency statistics, power (measured, or ``{"measured": false, "reason": ...}``) and the
environment. ``edgesr check`` reads it, on the machine that made it or another one.

Backends are looked up by name and imported only when used: ``torch``, ``onnxruntime``, ``c``
(the C runtime's binding, ``edgesr.runtime.capi.CRunner``) and ``tensorrt``. A device without
torch runs the single-file profiler ``edgesr/profile/minimal.py`` instead, which writes the
same document (this package imports its core from there).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError, DataError, DependencyError, EdgesrError, ModelError

__all__ = [
    "BACKENDS",
    "edgesr_errors",
    "identify",
    "load_profile_json",
    "make_runner",
    "profile_model",
    "register_backend",
    "validate_profile",
    "write_profile_json",
]

_BY_CODE: dict[int, type[EdgesrError]] = {
    2: ConfigError,
    3: DataError,
    4: ModelError,
    6: DependencyError,
}


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m edgesr.profile.minimal` does not find the module pre-imported.
    if name == "SCHEMA":
        from edgesr.profile.minimal import SCHEMA

        return SCHEMA
    raise AttributeError(name)


@contextlib.contextmanager
def edgesr_errors() -> Iterator[None]:
    """Re-raise the device core's errors (which cannot import edgesr) as edgesr's own."""
    from edgesr.profile.minimal import ProfileError

    try:
        yield
    except ProfileError as exc:
        raise _BY_CODE.get(exc.exit_code, EdgesrError)(str(exc)) from exc


# --------------------------------------------------------------------------------------------
# Backends

RunnerFactory = Callable[..., Any]


def _onnxruntime_runner(path: Path, *, threads: int | None, providers: Sequence[str]) -> Any:
    from edgesr.runtime.runners import OnnxRuntimeRunner

    if path.suffix.lower() != ".onnx":
        raise ConfigError(f"--backend onnxruntime runs .onnx files, not {path.name}.")
    return OnnxRuntimeRunner(path, threads=threads, providers=list(providers) or None)


def _torch_runner(path: Path, *, threads: int | None, providers: Sequence[str]) -> Any:
    from edgesr.modelio import load_model
    from edgesr.runtime.runners import TorchRunner

    if path.suffix.lower() == ".onnx":
        raise ConfigError(
            f"--backend torch runs edgesr weights (.safetensors or a run directory), not {path.name}; "
            "use --backend onnxruntime for ONNX files."
        )
    model, info = load_model(path)
    return TorchRunner(model, scale=info.scale, color=info.color, name=path.name)


def _c_runner(path: Path, *, threads: int | None, providers: Sequence[str]) -> Any:
    if importlib.util.find_spec("edgesr.runtime.capi") is None:
        raise DependencyError(
            "--backend c needs the C runtime's Python binding (edgesr.runtime.capi), which this "
            "install does not have; build the C runtime (see runtime/README) or use "
            "--backend onnxruntime."
        )
    try:
        capi = importlib.import_module("edgesr.runtime.capi")
    except (ImportError, OSError) as exc:  # the shared library is missing or does not load
        raise DependencyError(
            f"the C runtime binding cannot be loaded ({exc}); build the C runtime library first."
        ) from exc
    if not hasattr(capi, "CRunner"):
        raise DependencyError("edgesr.runtime.capi has no CRunner; update the C runtime binding.")
    from edgesr.profile.minimal import ENGINE_SUFFIXES

    # libedgesr runs ONNX files on its ONNX Runtime path and serialized plans on TensorRT.
    engine = "tensorrt" if path.suffix.lower() in ENGINE_SUFFIXES else "onnxruntime"
    return capi.CRunner(path, threads=threads, engine_backend=engine)


def _tensorrt_runner(path: Path, *, threads: int | None, providers: Sequence[str]) -> Any:
    from edgesr.profile.minimal import ENGINE_SUFFIXES
    from edgesr.profile.tensorrt_runner import TensorRTRunner

    if path.suffix.lower() not in ENGINE_SUFFIXES:
        raise ConfigError(
            f"--backend tensorrt runs a serialized engine ({', '.join(ENGINE_SUFFIXES)}), not "
            f"{path.name}; build one on the device with the TensorRT engine builder first."
        )
    return TensorRTRunner(path)


BACKENDS: dict[str, RunnerFactory] = {
    "torch": _torch_runner,
    "onnxruntime": _onnxruntime_runner,
    "c": _c_runner,
    "tensorrt": _tensorrt_runner,
}


def register_backend(name: str, factory: RunnerFactory) -> None:
    """Add a backend: ``factory(path, *, threads, providers) -> BaseRunner``."""
    BACKENDS[name] = factory


def make_runner(
    backend: str, model: str | Path, *, threads: int | None = None, providers: Sequence[str] = ()
) -> Any:
    """A (not yet activated) runner for ``model`` on ``backend``."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}.")
    path = Path(model)
    if not path.exists():
        raise ModelError(f"model {path} does not exist.")
    with edgesr_errors():
        return BACKENDS[backend](path, threads=threads, providers=providers)


def identify(model: str | Path) -> dict[str, Any]:
    """The model's identity: path, size, sha256 and its edgesr metadata."""
    from edgesr.profile.minimal import model_identity

    path = Path(model)
    with edgesr_errors():
        if path.is_dir() or path.suffix.lower() == ".safetensors":
            from edgesr.modelio import read_info, resolve_weights

            path = resolve_weights(path)
            info = read_info(path)
            meta = {
                "edgesr.recipe": info.recipe,
                "edgesr.recipe_hash": info.recipe_hash,
                "edgesr.scale": str(info.scale),
                "edgesr.color": "y_bt601" if info.color == "y" else "rgb",
                "edgesr.precision": info.extra.get("precision", "fp32"),
                "edgesr.arch": info.arch,
            }
            return model_identity(path, metadata=meta)
        return model_identity(path)


# --------------------------------------------------------------------------------------------
# Profiling


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
    model: str | Path,
    *,
    backend: str | None = None,
    size: tuple[int, int] = (270, 480),
    batch: int = 1,
    threads: int | None = None,
    warmup: int = 5,
    runs: int = 50,
    min_seconds: float | None = None,
    power: str = "auto",
    power_rail: str | None = None,
    power_interval_s: float = 0.05,
    idle_seconds: float = 0.0,
    providers: Sequence[str] = (),
    data: Any = None,
    root: str | Path = "/",
    seed: int = 0,
) -> dict[str, Any]:
    """Profile ``model`` and return its ``edgesr.profile/1`` document.

    ``power`` is ``auto`` (first usable probe), ``none`` or a probe name; with a probe the
    timed window lasts at least ``min_seconds`` (default 2 s) so the sensor sees enough of it.
    ``data`` (a folder or ``"embedded"``) adds PSNR/SSIM on those images to the document.
    """
    from edgesr import __version__
    from edgesr.profile import minimal
    from edgesr.profile.env import collect_environment
    from edgesr.profile.latency import time_runner
    from edgesr.profile.power import detect_probe

    path = Path(model)
    if runs < 1 or warmup < 0 or batch < 1:
        raise ConfigError("runs and batch must be at least 1 and warmup not negative.")
    with edgesr_errors():
        backend = backend or minimal.default_backend(path)
    runner = make_runner(backend, path, threads=threads, providers=providers)
    identity = identify(path)
    gpu = backend == "tensorrt" or any("CUDA" in p or "Tensorrt" in p for p in providers)
    probe, reason = detect_probe(
        power, root=root, gpu=gpu, rail=power_rail, interval_ms=max(1, int(power_interval_s * 1000))
    )
    restore_threads = _torch_threads(threads) if backend == "torch" else None
    try:
        # Activation (session creation, engine load) stays outside the measured window.
        power_ctx = probe if probe is not None else contextlib.nullcontext()
        with edgesr_errors(), power_ctx, runner:
            detail = _backend_detail(runner)
            idle_w = (
                minimal.measure_idle(probe, idle_seconds, power_interval_s)
                if probe is not None and idle_seconds > 0
                else None
            )
            sampler = minimal.PowerSampler(probe, power_interval_s) if probe is not None else None
            if min_seconds is None:
                min_seconds = 2.0 if sampler is not None else 0.0
            stats = time_runner(
                runner,
                size=size,
                batch=batch,
                warmup=warmup,
                runs=runs,
                seed=seed,
                min_seconds=min_seconds,
                sampler=sampler,
            )
            times = list(runner.inference_times)
            power_out = minimal.finish_power(sampler, reason, stats.runs * batch, idle_w)
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
        size=tuple(size),
        batch=batch,
        channels=runner.num_channels,
        scale=runner.scale,
        threads=threads,
        warmup=warmup,
        times_s=times,
        power=power_out,
        environment=collect_environment(threads=threads, root=root),
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


# --------------------------------------------------------------------------------------------
# Reading and writing profile documents


def write_profile_json(result: dict[str, Any], path: str | Path, *, force: bool = False) -> Path:
    from edgesr.errors import OutputExistsError
    from edgesr.modelio import atomic_write_bytes

    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(
            f"{path} already exists; pass --force to overwrite it or choose another --json path."
        )
    atomic_write_bytes(path, (json.dumps(result, indent=2) + "\n").encode())
    return path


_REQUIRED = {
    "model": ("sha256", "file_bytes"),
    "input": ("size", "batch"),
    "latency": ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_fps"),
    "power": ("measured",),
}


def validate_profile(doc: Any, source: str = "profile") -> dict[str, Any]:
    """Check that ``doc`` is an ``edgesr.profile/1`` document; DataError naming what is wrong."""
    from edgesr.profile.minimal import SCHEMA

    if not isinstance(doc, dict):
        raise DataError(f"{source}: a profile must be a JSON object.")
    schema = doc.get("schema")
    if schema != SCHEMA:
        hint = (
            "written by a newer edgesr; upgrade"
            if isinstance(schema, str) and schema.startswith("edgesr.profile/")
            else "not an edgesr profile; write one with `edgesr profile --json`"
        )
        raise DataError(f"{source}: schema {schema!r} is not {SCHEMA!r} ({hint}).")
    for section, keys in _REQUIRED.items():
        part = doc.get(section)
        missing = [k for k in keys if not isinstance(part, dict) or k not in part]
        if missing:
            raise DataError(
                f"{source}: '{section}' lacks {', '.join(missing)}; the file is damaged."
            )
    if "backend" not in doc:
        raise DataError(f"{source}: 'backend' is missing; the file is damaged.")
    if not doc["power"]["measured"] and "reason" not in doc["power"]:
        raise DataError(f"{source}: power is not measured but no reason is given.")
    return doc


def load_profile_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"results file {path} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"results file {path} is not readable JSON ({exc}).") from exc
    return validate_profile(doc, str(path))
