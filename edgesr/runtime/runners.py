"""Runners: one interface to run an SR model, whatever executes it.

Modelled on Polygraphy's runners: the base class owns activation, input checks and timing;
a backend only overrides the ``*_impl`` hooks. Every backend is therefore timed the same way
(wall clock around the synchronous inference call, output ready on the host).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import EdgesrError, ModelError


class BaseRunner:
    """Runs float32 NCHW LR frames in [0,1] through a model, returning NCHW SR frames.

    Subclasses set ``scale``/``color`` (from the model's metadata) in ``activate_impl`` or
    ``__init__`` and implement ``infer_impl``.
    """

    backend = "base"

    def __init__(self, name: str = "") -> None:
        self.name = name or self.backend
        self.scale: int = 0
        self.color: str = ""
        self.is_active = False
        self.inference_times: list[float] = []

    # -- hooks -------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        """Load the model / create sessions."""

    def infer_impl(self, lr: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        """Release what activate_impl created."""

    # -- public --------------------------------------------------------------------------------
    @property
    def num_channels(self) -> int:
        return 1 if self.color == "y" else 3

    def activate(self) -> BaseRunner:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> BaseRunner:
        return self.activate()

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()

    def infer(self, lr: np.ndarray) -> np.ndarray:
        """Run one batch; the time of the call is appended to ``inference_times`` (seconds)."""
        if not self.is_active:
            raise EdgesrError(
                f"runner '{self.name}' is not active; use it as a context manager or call activate()."
            )
        lr = np.ascontiguousarray(lr, dtype=np.float32)
        if lr.ndim != 4 or lr.shape[1] != self.num_channels:
            raise ModelError(
                f"runner '{self.name}' expects float32 [N,{self.num_channels},H,W] input "
                f"({self.color} colour), got shape {tuple(lr.shape)}."
            )
        start = time.perf_counter()
        out = self.infer_impl(lr)
        self.inference_times.append(time.perf_counter() - start)
        expected = (lr.shape[0], lr.shape[1], lr.shape[2] * self.scale, lr.shape[3] * self.scale)
        if tuple(out.shape) != expected:
            raise ModelError(
                f"runner '{self.name}' returned shape {tuple(out.shape)} for input {tuple(lr.shape)}; expected {expected} (scale x{self.scale})."
            )
        return out


class TorchRunner(BaseRunner):
    """A PyTorch module on the CPU (or a given device)."""

    backend = "torch"

    def __init__(
        self, model: Any, *, scale: int, color: str, device: str = "cpu", name: str = ""
    ) -> None:
        super().__init__(name)
        self.model, self.scale, self.color, self.device = model, scale, color, device

    def activate_impl(self) -> None:
        self.model = self.model.to(self.device).eval()

    def infer_impl(self, lr: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(lr).to(self.device))
        return out.float().cpu().numpy()


class CallableRunner(BaseRunner):
    """Any ``fn(NCHW float32) -> NCHW float32``, e.g. a net inside the training loop."""

    backend = "callable"

    def __init__(self, fn: Any, *, scale: int, color: str, name: str = "") -> None:
        super().__init__(name)
        self.fn, self.scale, self.color = fn, scale, color

    def infer_impl(self, lr: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(lr))


ONNX_COLOR = {"y_bt601": "y", "rgb": "rgb"}


# edgesr INT8 models quantize every conv they mean to (per-channel weights, int32 bias); a conv
# left float is float on purpose (mixed precision). ORT >= 1.21's WeightBiasQuantization pass
# would re-quantize such a conv's weights per tensor whenever int8 tensors surround it, so
# every edgesr session (Python, C runtime, profiler) disables that one pass.
ORT_SESSION_CONFIG = {"optimization.disable_specified_optimizers": "WeightBiasQuantization"}
# ORT's exact u8 x s8 kernels on x86 (without VNNI they saturate pairs in int16). They are slow
# everywhere: 8-bit ESPCN x4 at 2 threads on a VNNI Xeon, 11.2 -> 55.6 ms (bench_int8_cpus).
ORT_EXACT_INT8_CONFIG = {"session.x64quantprecision": "1"}


def ort_session_options(
    threads: int | None = None, *, exact_int8: bool = False, spin: bool = True
) -> Any:
    """``onnxruntime.SessionOptions`` as every edgesr runner uses them.

    ``exact_int8``: run u8 x s8 convs without int16 saturation on x86 CPUs without VNNI
    (see :mod:`edgesr.runtime.saturation`); needed only for models whose weights can clip.
    ``spin=False``: ORT's idle worker threads sleep instead of spinning, which they otherwise
    do between frames, taking the cores from decode/encode threads of a pipelined stream.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    config = {**ORT_SESSION_CONFIG, **(ORT_EXACT_INT8_CONFIG if exact_int8 else {})}
    if not spin:
        config["session.intra_op.allow_spinning"] = "0"
    for key, value in config.items():
        opts.add_session_config_entry(key, value)
    return opts


class OnnxRuntimeRunner(BaseRunner):
    """An ONNX file on ONNX Runtime; scale and colour come from the edgesr metadata.

    An INT8 model whose weights can saturate ORT's x86 kernels without VNNI (edgesr's
    TensorRT Q/DQ models, 8-bit weights from elsewhere) gets ORT's exact kernels on such a CPU,
    so its scores do not depend on the machine: ``int8_saturation`` holds the check. They cost
    5x on ESPCN x4 even where VNNI makes them needless, so VNNI and ARM CPUs keep the default
    kernels. edgesr's ORT-CPU INT8 models never need them (7-bit weights). ``exact_int8``
    True/False forces the choice. ``spin``: see :func:`ort_session_options`.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
        exact_int8: bool | None = None,
        spin: bool = True,
        name: str = "",
    ) -> None:
        super().__init__(name or Path(path).name)
        self.exact_int8, self.spin = exact_int8, spin
        self.path, self.threads, self.providers = (
            Path(path),
            threads,
            providers or ["CPUExecutionProvider"],
        )
        self.session: Any = None
        self.int8_saturation: Any = None

    def activate_impl(self) -> None:
        import onnxruntime as ort

        from edgesr.runtime.saturation import cpu_int8_is_exact, int8_saturation

        if not self.path.is_file():
            raise ModelError(f"ONNX model {self.path} does not exist.")
        try:
            self.int8_saturation = int8_saturation(self.path)
        except Exception as exc:  # onnx raises its own types for files it cannot parse
            raise ModelError(
                f"{self.path} is not a readable ONNX model ({exc}); export it again with `edgesr export`."
            ) from exc
        exact = self.exact_int8
        if exact is None:
            exact = not self.int8_saturation.free and not cpu_int8_is_exact()
        opts = ort_session_options(self.threads, exact_int8=exact, spin=self.spin)
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=opts, providers=self.providers
            )
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelError(
                f"{self.path} cannot be loaded by ONNX Runtime ({exc}); export it again with `edgesr export`."
            ) from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.scale = int(meta["edgesr.scale"])
            self.color = ONNX_COLOR[meta["edgesr.color"]]
        except (KeyError, ValueError) as exc:
            raise ModelError(
                f"{self.path} has no usable edgesr metadata (edgesr.scale / edgesr.color: {exc}); "
                "export it with `edgesr export` so its scale and colour convention are recorded."
            ) from exc
        self.input_name = self.session.get_inputs()[0].name

    def infer_impl(self, lr: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: lr})[0]

    def deactivate_impl(self) -> None:
        self.session = None
