"""Python binding of libedgesr, the C API in ``deploy/runtime`` (ctypes, no compiler needed).

Used by the tests (C output vs ONNX Runtime from Python) and by the profiler, through
:class:`CRunner`, to time exactly what a C camera pipeline runs. Status codes become the
edgesr error taxonomy: bad arguments raise :class:`DataError`, model problems
:class:`ModelError`, a missing backend :class:`DependencyError`.

The library is found, in order, at ``$EDGESR_CAPI_LIB``, in the source tree's build folder
(``deploy/runtime/build/libedgesr.so``), or on the loader path; :func:`build_library` builds it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import DataError, DependencyError, EdgesrError, ModelError
from edgesr.runtime.runners import BaseRunner

__all__ = [
    "CEngine",
    "CLibrary",
    "CRunner",
    "Status",
    "build_library",
    "find_library",
    "load_library",
]

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "deploy" / "runtime"
DEFAULT_BUILD_DIR = RUNTIME_DIR / "build"


class Status:
    """The esr_status values of edgesr.h."""

    OK = 0
    INVALID_ARGUMENT = 1
    SIZE_OVERFLOW = 2
    MODEL_LOAD = 3
    MODEL_METADATA = 4
    MODEL_MISMATCH = 5
    BACKEND_UNAVAILABLE = 6
    RUNTIME = 7
    OUT_OF_MEMORY = 8


_ERROR_CLASS: dict[int, type[EdgesrError]] = {
    Status.INVALID_ARGUMENT: DataError,
    Status.SIZE_OVERFLOW: DataError,
    Status.MODEL_LOAD: ModelError,
    Status.MODEL_METADATA: ModelError,
    Status.MODEL_MISMATCH: ModelError,
    Status.BACKEND_UNAVAILABLE: DependencyError,
    Status.RUNTIME: ModelError,
    Status.OUT_OF_MEMORY: EdgesrError,
}

BACKENDS = {"onnxruntime": 0, "tensorrt": 1}
COLORS = {0: "y", 1: "rgb"}  # esr_color -> BaseRunner.color


class _Options(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("backend", ctypes.c_int),
        ("num_threads", ctypes.c_int32),
        ("device_id", ctypes.c_int32),
    ]


_u8p = ctypes.POINTER(ctypes.c_uint8)
_f32p = ctypes.POINTER(ctypes.c_float)
_size = ctypes.c_size_t
_engine_p = ctypes.c_void_p


def find_library() -> Path | None:
    """The libedgesr.so to use, or None if none is built or installed."""
    env = os.environ.get("EDGESR_CAPI_LIB")
    if env:
        return Path(env)
    built = DEFAULT_BUILD_DIR / "libedgesr.so"
    if built.is_file():
        return built
    found = ctypes.util.find_library("edgesr")
    return Path(found) if found else None


def build_library(build_dir: str | Path | None = None, *, python: str | None = None) -> Path:
    """Configure and build libedgesr (no tests); returns the library path.

    Needs cmake and a C compiler; ONNX Runtime's headers are fetched by
    ``deploy/runtime/scripts/fetch_ort_headers.sh`` and the onnxruntime wheel's library is linked.
    """
    missing = [tool for tool in ("cmake", "cc") if shutil.which(tool) is None]
    if missing:
        raise DependencyError(
            f"building libedgesr needs {' and '.join(missing)} on PATH; install them "
            "(Debian: apt-get install cmake build-essential) or point $EDGESR_CAPI_LIB at a built library."
        )
    build = Path(build_dir) if build_dir else DEFAULT_BUILD_DIR
    steps = [
        ["bash", str(RUNTIME_DIR / "scripts" / "fetch_ort_headers.sh")],
        [
            "cmake",
            "-S",
            str(RUNTIME_DIR),
            "-B",
            str(build),
            f"-DEDGESR_PYTHON={python or sys.executable}",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        ["cmake", "--build", str(build), "--target", "edgesr", "-j", "2"],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise DependencyError(
                f"building libedgesr failed at `{' '.join(cmd)}`:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
    return build / "libedgesr.so"


class CLibrary:
    """A loaded libedgesr with typed function signatures."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            lib = ctypes.CDLL(str(self.path))
        except OSError as exc:
            raise DependencyError(
                f"cannot load libedgesr from {self.path} ({exc}); build it with "
                "`bash deploy/runtime/build.sh` or set $EDGESR_CAPI_LIB."
            ) from exc
        sig = {
            "esr_version": (ctypes.c_char_p, []),
            "esr_default_options": (_Options, []),
            "esr_status_string": (ctypes.c_char_p, [ctypes.c_int]),
            "esr_last_error": (ctypes.c_char_p, []),
            "esr_engine_create": (
                ctypes.c_int,
                [ctypes.c_char_p, ctypes.POINTER(_Options), ctypes.POINTER(_engine_p)],
            ),
            "esr_engine_create_from_memory": (
                ctypes.c_int,
                [ctypes.c_void_p, _size, ctypes.POINTER(_Options), ctypes.POINTER(_engine_p)],
            ),
            "esr_engine_destroy": (None, [_engine_p]),
            "esr_engine_info": (
                ctypes.c_int,
                [_engine_p, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int)],
            ),
            "esr_output_size": (
                ctypes.c_int,
                [_engine_p, _size, _size, ctypes.POINTER(_size), ctypes.POINTER(_size)],
            ),
            "esr_upscale_y_u8": (ctypes.c_int, [_engine_p, _u8p, _size, _size, _size, _u8p, _size]),
            "esr_upscale_nv12": (
                ctypes.c_int,
                [_engine_p, _u8p, _size, _u8p, _size, _size, _size, _u8p, _size, _u8p, _size],
            ),
            "esr_upscale_rgb_u8": (
                ctypes.c_int,
                [_engine_p, _u8p, _size, _size, _size, _u8p, _size],
            ),
            "esr_upscale_f32": (
                ctypes.c_int,
                [_engine_p, _f32p, _size, _size, _size, _size, _f32p],
            ),
            "esr_engine_allocation_count": (ctypes.c_uint64, [_engine_p]),
        }
        for name, (restype, argtypes) in sig.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        self.lib = lib

    @property
    def version(self) -> str:
        return self.lib.esr_version().decode()

    def check(self, status: int, what: str) -> None:
        """Raise the edgesr error for a non-OK status, with the library's message."""
        if status == Status.OK:
            return
        detail = self.lib.esr_last_error().decode(errors="replace")
        name = self.lib.esr_status_string(status).decode()
        raise _ERROR_CLASS.get(status, EdgesrError)(f"{what}: {name}: {detail}")


_LIBRARIES: dict[Path, CLibrary] = {}


def load_library(path: str | Path | None = None) -> CLibrary:
    """Load (once per path) libedgesr from ``path`` or :func:`find_library`."""
    path = Path(path) if path else find_library()
    if path is None:
        raise DependencyError(
            "libedgesr is not built; run `bash deploy/runtime/build.sh` (or call "
            "edgesr.runtime.capi.build_library()), or set $EDGESR_CAPI_LIB to a built libedgesr.so."
        )
    key = path.resolve() if path.exists() else path
    if key not in _LIBRARIES:
        _LIBRARIES[key] = CLibrary(path)
    return _LIBRARIES[key]


def _ptr(array: np.ndarray, ctype: Any) -> Any:
    return array.ctypes.data_as(ctypes.POINTER(ctype))


class CEngine:
    """One esr_engine: a model loaded by libedgesr. Not for concurrent use from two threads."""

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        threads: int = 0,
        backend: str = "onnxruntime",
        device_id: int = 0,
        library: CLibrary | str | Path | None = None,
    ) -> None:
        self._handle: Any = None
        self.clib = library if isinstance(library, CLibrary) else load_library(library)
        lib = self.clib.lib
        if backend not in BACKENDS:
            raise DataError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        opts = lib.esr_default_options()
        opts.backend, opts.num_threads, opts.device_id = BACKENDS[backend], threads, device_id
        handle = _engine_p()
        if isinstance(model, bytes):
            buf = ctypes.create_string_buffer(model, len(model))
            status = lib.esr_engine_create_from_memory(
                buf, len(model), ctypes.byref(opts), ctypes.byref(handle)
            )
            what = "loading a model from memory"
        else:
            status = lib.esr_engine_create(
                os.fsencode(str(model)), ctypes.byref(opts), ctypes.byref(handle)
            )
            what = f"loading {model}"
        self.clib.check(status, what)
        self._handle = handle
        scale, color = ctypes.c_int32(), ctypes.c_int()
        self.clib.check(
            lib.esr_engine_info(self._handle, ctypes.byref(scale), ctypes.byref(color)), "info"
        )
        self.scale = int(scale.value)
        self.color = COLORS[int(color.value)]

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._handle:
            self.clib.lib.esr_engine_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> CEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # a safety net; call close() or use `with`
        with contextlib.suppress(Exception):
            self.close()

    @property
    def handle(self) -> Any:
        if not self._handle:
            raise EdgesrError("this CEngine is closed")
        return self._handle

    @property
    def num_channels(self) -> int:
        return 3 if self.color == "rgb" else 1

    @property
    def allocation_count(self) -> int:
        return int(self.clib.lib.esr_engine_allocation_count(self.handle))

    # -- frames -------------------------------------------------------------------------------
    def output_size(self, width: int, height: int) -> tuple[int, int]:
        ow, oh = _size(), _size()
        self.clib.check(
            self.clib.lib.esr_output_size(
                self.handle, width, height, ctypes.byref(ow), ctypes.byref(oh)
            ),
            "esr_output_size",
        )
        return int(ow.value), int(oh.value)

    def upscale_f32(self, lr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 NCHW -> NCHW, exactly the model's output (no clamping)."""
        lr = np.ascontiguousarray(lr, dtype=np.float32)
        if lr.ndim != 4:
            raise DataError(f"upscale_f32 expects an NCHW array, got shape {lr.shape}")
        n, c, h, w = lr.shape
        shape = (n, c, h * self.scale, w * self.scale)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise DataError(f"out must be a C-contiguous float32 array of shape {shape}")
        self.clib.check(
            self.clib.lib.esr_upscale_f32(
                self.handle, _ptr(lr, ctypes.c_float), n, c, w, h, _ptr(out, ctypes.c_float)
            ),
            "esr_upscale_f32",
        )
        return out

    def upscale_y_u8(self, y: np.ndarray) -> np.ndarray:
        """A uint8 HxW luma plane (any row stride) -> the upscaled uint8 plane."""
        y = _u8_plane(y, 2, "upscale_y_u8")
        h, w = y.shape
        out = np.empty((h * self.scale, w * self.scale), np.uint8)
        return self._packed_frame("esr_upscale_y_u8", y, out)

    def upscale_nv12(self, y: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NV12: Y (H x W) and interleaved UV (H/2 x W, or H/2 x W/2 x 2) uint8 planes ->
        upscaled planes, UV in the layout given.

        Each plane may be a strided view with its own row pitch (a camera buffer whose rows are
        padded, Y and UV at separate addresses): both go to esr_upscale_nv12 uncopied.
        """
        pairs = isinstance(uv, np.ndarray) and uv.ndim == 3 and uv.shape[2] == 2
        if pairs:  # (H/2, W/2, 2) with packed pairs is the same bytes as (H/2, W): a view
            uv = uv.reshape(uv.shape[0], uv.shape[1] * 2)
        y = _u8_plane(y, 2, "upscale_nv12")
        uv = _u8_plane(uv, 2, "upscale_nv12")
        h, w = y.shape
        if uv.shape != (h // 2, w):
            raise DataError(f"NV12 UV plane must be {(h // 2, w)} for a {(h, w)} Y plane")
        s = self.scale
        y_out = np.empty((h * s, w * s), np.uint8)
        uv_out = np.empty((h * s // 2, w * s), np.uint8)
        self.clib.check(
            self.clib.lib.esr_upscale_nv12(
                self.handle,
                _ptr(y, ctypes.c_uint8),
                y.strides[0],
                _ptr(uv, ctypes.c_uint8),
                uv.strides[0],
                w,
                h,
                _ptr(y_out, ctypes.c_uint8),
                y_out.strides[0],
                _ptr(uv_out, ctypes.c_uint8),
                uv_out.strides[0],
            ),
            "esr_upscale_nv12",
        )
        return y_out, (uv_out.reshape(h * s // 2, w * s // 2, 2) if pairs else uv_out)

    def upscale_rgb_u8(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> upscaled HxWx3 uint8 RGB."""
        rgb = _u8_plane(rgb, 3, "upscale_rgb_u8")
        h, w, c = rgb.shape
        if c != 3:
            raise DataError(f"upscale_rgb_u8 expects HxWx3, got {rgb.shape}")
        out = np.empty((h * self.scale, w * self.scale, 3), np.uint8)
        return self._packed_frame("esr_upscale_rgb_u8", rgb, out)

    def _packed_frame(self, function: str, src: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Call ``function(engine, src, w, h, src_stride, dst, dst_stride)`` on uint8 frames."""
        h, w = src.shape[:2]
        self.clib.check(
            getattr(self.clib.lib, function)(
                self.handle,
                _ptr(src, ctypes.c_uint8),
                w,
                h,
                src.strides[0],
                _ptr(out, ctypes.c_uint8),
                out.strides[0],
            ),
            function,
        )
        return out


def _u8_plane(a: np.ndarray, ndim: int, what: str) -> np.ndarray:
    """A uint8 array whose rows may be strided but whose pixels are packed (the C layout)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != ndim:
        raise DataError(f"{what} expects a {ndim}-D uint8 array, got {getattr(a, 'shape', a)!r}")
    inner_packed = all(
        a.strides[i] == a.itemsize * int(np.prod(a.shape[i + 1 :])) for i in range(1, ndim)
    )
    if not inner_packed or a.strides[0] < a.strides[1] * a.shape[1]:
        a = np.ascontiguousarray(a)
    return a


class CRunner(BaseRunner):
    """An edgesr ONNX model (or TensorRT plan) run through libedgesr's float path.

    Numbers match :class:`~edgesr.runtime.runners.OnnxRuntimeRunner` bit for bit at the same
    thread count; timings include the C API's (small) overhead and nothing of Python's ORT.
    """

    backend = "capi"

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int | None = None,
        engine_backend: str = "onnxruntime",
        library: CLibrary | str | Path | None = None,
        name: str = "",
    ) -> None:
        super().__init__(name or f"capi:{Path(path).name}")
        self.path, self.threads = Path(path), threads
        self.engine_backend, self.library = engine_backend, library
        self.engine: CEngine | None = None

    def activate_impl(self) -> None:
        self.engine = CEngine(
            self.path,
            threads=self.threads or 0,
            backend=self.engine_backend,
            library=self.library,
        )
        self.scale, self.color = self.engine.scale, self.engine.color

    def infer_impl(self, lr: np.ndarray) -> np.ndarray:
        assert self.engine is not None
        return self.engine.upscale_f32(lr)

    def deactivate_impl(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
