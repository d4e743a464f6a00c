"""A serialized TensorRT engine as an edgesr runner.

Host->device copy, ``execute_async_v3``, device->host copy and stream sync inside the timed
call, so an engine's latency means the same as the CPU backends' (output on the host). TensorRT
and the CUDA bindings (cuda-python) are imported when the runner is activated, never before.

The engine code below (``TrtModel`` and the sidecar metadata reader) is the device profiler's,
copied verbatim from :mod:`edgesr.profile.minimal`: that file must run alone on a device, and
the runtime cannot import it (the profile stage sits above the runtime). Here its error names
are edgesr's own classes, so what it raises needs no translation. tests/test_tensorrt.py keeps
the two copies identical, so a Jetson without edgesr and a workstation with it time an engine
the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import DependencyError, EdgesrError, ModelError, require
from edgesr.runtime.runners import BaseRunner

__all__ = ["TensorRTRunner", "TrtModel", "read_engine_metadata"]

# The names the device profiler's engine code raises and imports with (same exit codes).
ProfileError = EdgesrError
ModelLoadError = ModelError
MissingPackage = DependencyError
_import = require

ONNX_COLORS = {"y_bt601": "y", "y": "y", "rgb": "rgb"}

# --------------------------------------------------------------------------------------------
# Copied from edgesr/profile/minimal.py; keep identical (tests/test_tensorrt.py checks).


def engine_sidecar(path: str | Path) -> Path:
    """Where an engine's edgesr metadata lives: ``model.engine`` -> ``model.engine.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_engine_metadata(path: str | Path) -> dict[str, str]:
    """``edgesr.*`` metadata of a TensorRT engine from the JSON sidecar the engine builder
    writes beside it (empty if none): the source ONNX's metadata, with the engine's own
    precision and the sha256 of the ONNX it was built from as ``edgesr.source_sha256``."""
    sidecar = engine_sidecar(path)
    if not sidecar.is_file():
        return {}
    try:
        raw = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"engine metadata {sidecar} is unreadable ({exc}).") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"engine metadata {sidecar} is not a JSON object.")
    inner = raw.get("metadata")
    meta = dict(inner) if isinstance(inner, dict) else dict(raw)
    source = raw.get("source_onnx_sha256") or raw.get("onnx_sha256")
    if source and "edgesr.source_sha256" not in meta:
        meta["edgesr.source_sha256"] = source
    if isinstance(raw.get("precision"), str):  # what the engine runs in, not the ONNX
        meta["edgesr.precision"] = raw["precision"]
    return {str(k): str(v) for k, v in meta.items() if not isinstance(v, (dict, list))}


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python layout
        except ImportError as exc:
            raise MissingPackage(
                "running a TensorRT engine needs the CUDA runtime bindings, which are not "
                f"importable ({exc}). Install them with: pip install cuda-python"
            ) from exc
    return cudart


class TrtModel:
    """A serialized TensorRT engine (TensorRT >= 8.5 tensor API) with host<->device copies
    inside the timed call, so its latency means the same as the CPU backends' (output on the
    host). Inputs with dynamic dimensions are re-bound when the frame shape changes."""

    backend = "tensorrt"

    def __init__(self, path: str | Path) -> None:
        self.trt = _import(
            "tensorrt",
            purpose="profiling a TensorRT engine",
            install="JetPack's python3-libnvinfer, or pip install tensorrt",
        )
        self.cudart = _cudart()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"engine {self.path} does not exist.")
        trt = self.trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ModelLoadError(
                f"{self.path} is not a TensorRT engine for this TensorRT ({trt.__version__}) and "
                "GPU; engines are not portable: build it on this device."
            )
        if not hasattr(self.engine, "num_io_tensors"):
            raise MissingPackage(f"TensorRT {trt.__version__} is too old; edgesr needs >= 8.5.")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        ins = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
        outs = [n for n in names if modes[n] == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise ModelLoadError(
                f"{self.path}: expected one input and one output, got {ins} -> {outs}."
            )
        self.input_name, self.output_name = ins[0], outs[0]
        self.in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        in_shape = tuple(self.engine.get_tensor_shape(self.input_name))
        if len(in_shape) != 4 or in_shape[1] not in (1, 3):
            raise ModelLoadError(f"{self.path}: input shape {in_shape} is not [N,1|3,H,W].")
        self.channels = int(in_shape[1])
        meta = read_engine_metadata(self.path)
        self.color = ONNX_COLORS.get(
            meta.get("edgesr.color", ""), "y" if self.channels == 1 else "rgb"
        )
        self.stream = self._cuda(self.cudart.cudaStreamCreate)
        self._bound: tuple[int, ...] | None = None
        self._buffers: list[Any] = []
        # Scale from the engine itself: bind a legal shape and read the output's.
        probe = in_shape
        if -1 in in_shape:
            probe = tuple(self.engine.get_tensor_profile_shape(self.input_name, 0)[1])
        self._bind(probe)
        self.scale = int(self._out_shape[2] // probe[2])
        self.detail = {"version": trt.__version__, "input_dtype": str(self.in_dtype)}

    def _cuda(self, fn: Any, *args: Any) -> Any:
        result = fn(*args)
        err, rest = result[0], result[1:]
        if err != self.cudart.cudaError_t.cudaSuccess:
            raise ProfileError(f"CUDA call {getattr(fn, '__name__', fn)} failed: {err}.")
        return rest[0] if len(rest) == 1 else (rest or None)

    def _free(self) -> None:
        for ptr in self._buffers:
            self._cuda(self.cudart.cudaFree, ptr)
        self._buffers = []

    def _bind(self, shape: tuple[int, ...]) -> None:
        if shape == self._bound:
            return
        if not self.context.set_input_shape(self.input_name, shape):
            built = tuple(self.engine.get_tensor_shape(self.input_name))
            if -1 in built:
                lo, _, hi = self.engine.get_tensor_profile_shape(self.input_name, 0)
                allowed = f"its profile allows {tuple(lo)} to {tuple(hi)}"
            else:
                allowed = f"it is built for {built} only"
            raise ModelLoadError(
                f"{self.path} does not accept input shape {shape}; {allowed}. "
                "Rebuild the engine for this frame size."
            )
        self._free()
        self._out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        n_in = int(np.prod(shape)) * self.in_dtype.itemsize
        n_out = int(np.prod(self._out_shape)) * self.out_dtype.itemsize
        self._d_in = self._cuda(self.cudart.cudaMalloc, n_in)
        self._d_out = self._cuda(self.cudart.cudaMalloc, n_out)
        self._buffers = [self._d_in, self._d_out]
        self.context.set_tensor_address(self.input_name, int(self._d_in))
        self.context.set_tensor_address(self.output_name, int(self._d_out))
        self._bound = shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        c = self.cudart
        self._bind(tuple(x.shape))
        host_in = np.ascontiguousarray(x, dtype=self.in_dtype)
        host_out = np.empty(self._out_shape, dtype=self.out_dtype)
        h2d, d2h = c.cudaMemcpyKind.cudaMemcpyHostToDevice, c.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._cuda(
            c.cudaMemcpyAsync, self._d_in, host_in.ctypes.data, host_in.nbytes, h2d, self.stream
        )
        if not self.context.execute_async_v3(int(self.stream)):
            raise ProfileError(f"TensorRT failed to run {self.path}.")
        self._cuda(
            c.cudaMemcpyAsync, host_out.ctypes.data, self._d_out, host_out.nbytes, d2h, self.stream
        )
        self._cuda(c.cudaStreamSynchronize, self.stream)
        return host_out.astype(np.float32, copy=False)

    def close(self) -> None:
        if self.stream is not None:
            self._free()
            self._cuda(self.cudart.cudaStreamDestroy, self.stream)
            self.stream = None
        self.context = self.engine = None


# --------------------------------------------------------------------------------------------
# The runner


class TensorRTRunner(BaseRunner):
    """Runs a ``.engine``/``.plan`` file; scale from the engine's shapes, colour from its
    channels (or the ``edgesr.color`` of its ``<engine>.json`` sidecar)."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, *, name: str = "") -> None:
        super().__init__(name or Path(path).name)
        self.path = Path(path)
        self.model: Any = None

    def activate_impl(self) -> None:
        self.model = TrtModel(self.path)
        self.scale, self.color = self.model.scale, self.model.color

    def infer_impl(self, lr: np.ndarray) -> np.ndarray:
        return self.model(lr)

    def deactivate_impl(self) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None
