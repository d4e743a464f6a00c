"""Python binding of libedgesr, the C API in ``deploy/runtime`` (ctypes, no compiler needed).

Used by the tests (C output vs ONNX Runtime from Python) and by the profiler, through
:class:`CRunner`, to time exactly what a C camera pipeline runs. :class:`CModel` is one loaded
model (shared weights and thread pool), :class:`CStream` one camera's stream of it, and
:class:`CEngine` a model with a single stream. Status codes become the
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
from typing import Any, Self

import numpy as np

from edgesr.errors import DataError, DependencyError, EdgesrError, ModelError
from edgesr.runtime.runners import BaseRunner

__all__ = [
    "CEngine",
    "CLibrary",
    "CModel",
    "CRunner",
    "CStream",
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
ABI_VERSION = 1  # the esr_* ABI this binding is written for (edgesr.h's ESR_ABI_VERSION)
FORMATS = {"gray8": 0, "rgb24": 1, "nv12": 2, "nv21": 3, "i420": 4}
MATRICES = {"bt601": 0, "bt709": 1}
RANGES = {"limited": 0, "full": 1}
LOG_LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}


class _Options(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("backend", ctypes.c_int),
        ("num_threads", ctypes.c_int32),
        ("device_id", ctypes.c_int32),
        ("intra_op_spinning", ctypes.c_int32),
    ]


class _ModelInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("scale", ctypes.c_int32),
        ("color", ctypes.c_int),
        ("channels", ctypes.c_int32),
        ("backend", ctypes.c_int),
        ("num_threads", ctypes.c_int32),
        ("intra_op_spinning", ctypes.c_int32),
        ("precision", ctypes.c_char * 32),
        ("input_shape", ctypes.c_int64 * 4),
        ("output_shape", ctypes.c_int64 * 4),
        ("min_width", ctypes.c_uint64),
        ("min_height", ctypes.c_uint64),
        ("max_width", ctypes.c_uint64),
        ("max_height", ctypes.c_uint64),
    ]


class _Image(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("format", ctypes.c_int),
        ("matrix", ctypes.c_int),
        ("range", ctypes.c_int),
        ("width", ctypes.c_size_t),
        ("height", ctypes.c_size_t),
        ("planes", ctypes.c_void_p * 3),
        ("pitches", ctypes.c_size_t * 3),
    ]


_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
_u8p = ctypes.POINTER(ctypes.c_uint8)
_f32p = ctypes.POINTER(ctypes.c_float)
_size = ctypes.c_size_t
_handle_p = ctypes.c_void_p


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
        model_create = [ctypes.POINTER(_Options), ctypes.POINTER(_handle_p)]
        sig = {
            "esr_version": (ctypes.c_char_p, []),
            "esr_abi_version": (ctypes.c_uint32, []),
            "esr_options_init": (ctypes.c_int, [ctypes.POINTER(_Options), _size]),
            "esr_status_string": (ctypes.c_char_p, [ctypes.c_int]),
            "esr_last_error": (ctypes.c_char_p, []),
            "esr_set_log_callback": (None, [_LOG_FN, ctypes.c_void_p, ctypes.c_int]),
            "esr_model_create": (ctypes.c_int, [ctypes.c_char_p, *model_create]),
            "esr_model_create_from_memory": (
                ctypes.c_int,
                [ctypes.c_void_p, _size, *model_create],
            ),
            "esr_model_destroy": (None, [_handle_p]),
            "esr_model_get_info": (ctypes.c_int, [_handle_p, ctypes.POINTER(_ModelInfo)]),
            "esr_output_size": (
                ctypes.c_int,
                [_handle_p, _size, _size, ctypes.POINTER(_size), ctypes.POINTER(_size)],
            ),
            "esr_stream_create": (ctypes.c_int, [_handle_p, ctypes.POINTER(_handle_p)]),
            "esr_stream_destroy": (None, [_handle_p]),
            "esr_stream_model": (_handle_p, [_handle_p]),
            "esr_stream_prepare": (ctypes.c_int, [_handle_p, _size, _size]),
            "esr_upscale_image": (
                ctypes.c_int,
                [_handle_p, ctypes.POINTER(_Image), ctypes.POINTER(_Image)],
            ),
            "esr_upscale_y_u8": (ctypes.c_int, [_handle_p, _u8p, _size, _size, _size, _u8p, _size]),
            "esr_upscale_rgb_u8": (
                ctypes.c_int,
                [_handle_p, _u8p, _size, _size, _size, _u8p, _size],
            ),
            "esr_upscale_f32": (
                ctypes.c_int,
                [_handle_p, _f32p, _size, _size, _size, _size, _f32p],
            ),
        }
        missing = [name for name in sig if not hasattr(lib, name)]
        if missing:
            raise DependencyError(
                f"{self.path} is an older libedgesr without {', '.join(missing)}; rebuild it with "
                "`bash deploy/runtime/build.sh`."
            )
        for name, (restype, argtypes) in sig.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        # Test-only counter (edgesr_testing.h): present in every build, but not ABI.
        self.has_testing = hasattr(lib, "esr_testing_stream_allocations")
        if self.has_testing:
            lib.esr_testing_stream_allocations.restype = ctypes.c_uint64
            lib.esr_testing_stream_allocations.argtypes = [_handle_p]
        self.lib = lib
        abi = int(lib.esr_abi_version())
        if abi != ABI_VERSION:
            raise DependencyError(
                f"{self.path} has ABI {abi} but edgesr.runtime.capi speaks ABI {ABI_VERSION}; "
                "rebuild libedgesr from this checkout (`bash deploy/runtime/build.sh`)."
            )
        self._log_fn: Any = None  # keeps the ctypes callback alive while the library holds it

    @property
    def version(self) -> str:
        return self.lib.esr_version().decode()

    def set_log_callback(self, fn: Any | None, level: str = "warning") -> None:
        """Send libedgesr's log to ``fn(level_name, message)`` (None: stop logging).

        Process-wide; ``fn`` runs on libedgesr's threads and must not raise.
        """
        if level not in LOG_LEVELS:
            raise DataError(f"level must be one of {sorted(LOG_LEVELS)}, got {level!r}")
        names = {v: k for k, v in LOG_LEVELS.items()}
        if fn is None:
            self.lib.esr_set_log_callback(_LOG_FN(), None, LOG_LEVELS[level])
            self._log_fn = None
            return

        def forward(_user: Any, lvl: int, msg: bytes) -> None:
            with contextlib.suppress(Exception):
                fn(names.get(lvl, str(lvl)), msg.decode(errors="replace"))

        callback = _LOG_FN(forward)
        self.lib.esr_set_log_callback(callback, None, LOG_LEVELS[level])
        self._log_fn = callback

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


class _Owned:
    """A C handle this object owns: ``close()`` (or ``with``) releases it once."""

    _destroy_fn = ""  # the library's destroy call for this handle
    _handle: Any = None
    clib: CLibrary

    def close(self) -> None:
        """Release the handle (safe to call twice)."""
        if self._handle:
            getattr(self.clib.lib, self._destroy_fn)(self._handle)
            self._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # a safety net; call close() or use `with`
        with contextlib.suppress(Exception):
            self.close()

    @property
    def handle(self) -> Any:
        if not self._handle:
            raise EdgesrError(f"this {type(self).__name__} is closed")
        return self._handle


class CModel(_Owned):
    """One esr_model: weights, session and thread pool, shared by any number of streams.

    Safe to share between threads (create streams from any thread); the C model lives until
    this object and all its streams are closed (``close()`` drops this reference only).
    """

    _destroy_fn = "esr_model_destroy"

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        threads: int = 0,
        backend: str = "onnxruntime",
        device_id: int = 0,
        intra_op_spinning: bool | None = None,
        library: CLibrary | str | Path | None = None,
    ) -> None:
        self._handle: Any = None
        self.clib = library if isinstance(library, CLibrary) else load_library(library)
        lib = self.clib.lib
        if backend not in BACKENDS:
            raise DataError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
        opts = _Options()
        self.clib.check(lib.esr_options_init(ctypes.byref(opts), ctypes.sizeof(opts)), "options")
        opts.backend, opts.num_threads, opts.device_id = BACKENDS[backend], threads, device_id
        opts.intra_op_spinning = -1 if intra_op_spinning is None else int(intra_op_spinning)
        handle = _handle_p()
        if isinstance(model, bytes):
            buf = ctypes.create_string_buffer(model, len(model))
            status = lib.esr_model_create_from_memory(
                buf, len(model), ctypes.byref(opts), ctypes.byref(handle)
            )
            what = "loading a model from memory"
        else:
            status = lib.esr_model_create(
                os.fsencode(str(model)), ctypes.byref(opts), ctypes.byref(handle)
            )
            what = f"loading {model}"
        self.clib.check(status, what)
        self._handle = handle
        info = self.info()
        self.scale = int(info["scale"])
        self.color = str(info["color"])

    def info(self) -> dict[str, Any]:
        """esr_model_get_info as a dict (shapes use -1 for dynamic dimensions)."""
        raw = _ModelInfo()
        raw.struct_size = ctypes.sizeof(raw)
        self.clib.check(self.clib.lib.esr_model_get_info(self.handle, ctypes.byref(raw)), "info")
        backends = {v: k for k, v in BACKENDS.items()}
        return {
            "scale": raw.scale,
            "color": COLORS.get(raw.color, str(raw.color)),
            "channels": raw.channels,
            "backend": backends.get(raw.backend, str(raw.backend)),
            "num_threads": raw.num_threads,
            "intra_op_spinning": raw.intra_op_spinning,
            "precision": raw.precision.decode(errors="replace"),
            "input_shape": list(raw.input_shape),
            "output_shape": list(raw.output_shape),
            "min_size": (raw.min_width, raw.min_height),
            "max_size": (raw.max_width, raw.max_height),
        }

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        ow, oh = _size(), _size()
        self.clib.check(
            self.clib.lib.esr_output_size(
                self.handle, width, height, ctypes.byref(ow), ctypes.byref(oh)
            ),
            "esr_output_size",
        )
        return int(ow.value), int(oh.value)

    def stream(self) -> CStream:
        """A new stream of this model (its own buffers; one thread at a time)."""
        return CStream(self)


class CStream(_Owned):
    """One esr_stream of a :class:`CModel`: one camera's buffers. One thread at a time."""

    _destroy_fn = "esr_stream_destroy"

    def __init__(self, model: CModel) -> None:
        self._handle: Any = None
        self.clib = model.clib
        self.scale, self.color = model.scale, model.color
        handle = _handle_p()
        self.clib.check(
            self.clib.lib.esr_stream_create(model.handle, ctypes.byref(handle)),
            "esr_stream_create",
        )
        self._handle = handle

    @property
    def num_channels(self) -> int:
        return 3 if self.color == "rgb" else 1

    @property
    def allocation_count(self) -> int:
        """libedgesr's allocations for this stream so far (a test aid, not ABI)."""
        if not self.clib.has_testing:
            raise DependencyError("this libedgesr exports no esr_testing_stream_allocations")
        return int(self.clib.lib.esr_testing_stream_allocations(self.handle))

    # -- frames -------------------------------------------------------------------------------
    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """esr_output_size of this stream's model (checked for zero sizes and overflow)."""
        ow, oh = _size(), _size()
        model = self.clib.lib.esr_stream_model(self.handle)
        self.clib.check(
            self.clib.lib.esr_output_size(model, width, height, ctypes.byref(ow), ctypes.byref(oh)),
            "esr_output_size",
        )
        return int(ow.value), int(oh.value)

    def prepare(self, width: int, height: int) -> None:
        """Check the frame size against the model and allocate the stream's buffers now."""
        self.clib.check(
            self.clib.lib.esr_stream_prepare(self.handle, width, height), "esr_stream_prepare"
        )

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

    def upscale_rgb_u8(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> upscaled HxWx3 uint8 RGB."""
        rgb = _u8_plane(rgb, 3, "upscale_rgb_u8")
        h, w, c = rgb.shape
        if c != 3:
            raise DataError(f"upscale_rgb_u8 expects HxWx3, got {rgb.shape}")
        out = np.empty((h * self.scale, w * self.scale, 3), np.uint8)
        return self._packed_frame("esr_upscale_rgb_u8", rgb, out)

    def upscale_nv12(self, y: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NV12: Y (H x W) and interleaved UV (H/2 x W, or H/2 x W/2 x 2) uint8 planes ->
        upscaled planes, UV in the layout given.

        Each plane may be a strided view with its own row pitch (a camera buffer whose rows are
        padded, Y and UV at separate addresses): both go to esr_upscale_image uncopied.
        """
        out = self.upscale_yuv("nv12", [y, uv])
        return out[0], out[1]

    def upscale_yuv(
        self,
        fmt: str,
        planes: list[np.ndarray],
        *,
        matrix: str = "bt601",
        yuv_range: str = "limited",
    ) -> list[np.ndarray]:
        """A 4:2:0 frame ("nv12", "nv21": [Y, UV/VU]; "i420": [Y, U, V]) -> upscaled planes.

        Interleaved chroma may be (H/2, W) or (H/2, W/2, 2); each plane may be a strided view.
        """
        if fmt not in ("nv12", "nv21", "i420"):
            raise DataError(f"fmt must be nv12, nv21 or i420, got {fmt!r}")
        if matrix not in MATRICES or yuv_range not in RANGES:
            raise DataError(f"matrix must be in {sorted(MATRICES)}, range in {sorted(RANGES)}")
        n_planes = 3 if fmt == "i420" else 2
        if len(planes) != n_planes:
            raise DataError(f"{fmt} takes {n_planes} planes, got {len(planes)}")
        y = _u8_plane(planes[0], 2, f"upscale_yuv ({fmt} Y)")
        h, w = y.shape
        pairs = False
        chroma = []
        for p in planes[1:]:
            if n_planes == 2 and isinstance(p, np.ndarray) and p.ndim == 3 and p.shape[2] == 2:
                pairs = True  # (H/2, W/2, 2) with packed pairs is the same bytes as (H/2, W)
                p = p.reshape(p.shape[0], p.shape[1] * 2)
            chroma.append(_u8_plane(p, 2, f"upscale_yuv ({fmt} chroma)"))
        cshape = (h // 2, w) if n_planes == 2 else (h // 2, w // 2)
        if any(c.shape != cshape for c in chroma):
            raise DataError(f"{fmt} chroma planes must be {cshape} for a {(h, w)} Y plane")
        s = self.scale
        outs = [np.empty((h * s, w * s), np.uint8)] + [
            np.empty((cshape[0] * s, cshape[1] * s), np.uint8) for _ in chroma
        ]
        src = _image(FORMATS[fmt], MATRICES[matrix], RANGES[yuv_range], [y, *chroma], w, h)
        dst = _image(FORMATS[fmt], MATRICES[matrix], RANGES[yuv_range], outs, w * s, h * s)
        self.clib.check(
            self.clib.lib.esr_upscale_image(self.handle, ctypes.byref(src), ctypes.byref(dst)),
            "esr_upscale_image",
        )
        if pairs:
            outs[1] = outs[1].reshape(h * s // 2, w * s // 2, 2)
        return outs

    def _packed_frame(self, function: str, src: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Call ``function(stream, src, w, h, src_pitch, dst, dst_pitch)`` on uint8 frames."""
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


class CEngine(CStream):
    """A model with one stream of its own: the simple way to run one camera's frames.

    Not for concurrent use from two threads; for several streams share a :class:`CModel`.
    """

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        threads: int = 0,
        backend: str = "onnxruntime",
        device_id: int = 0,
        library: CLibrary | str | Path | None = None,
    ) -> None:
        self._handle = None
        self.model = CModel(
            model, threads=threads, backend=backend, device_id=device_id, library=library
        )
        try:
            super().__init__(self.model)
        finally:
            self.model.close()  # the stream holds the model's last reference


def _image(fmt: int, matrix: int, rng: int, planes: list[np.ndarray], w: int, h: int) -> _Image:
    im = _Image()
    im.struct_size = ctypes.sizeof(im)
    im.format, im.matrix, im.range, im.width, im.height = fmt, matrix, rng, w, h
    for i, p in enumerate(planes):
        im.planes[i] = p.ctypes.data
        im.pitches[i] = p.strides[0]
    return im


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
