"""The Upscaler: a loaded runner, colour handling and tiling, frame by frame.

Used by ``edgesr upscale`` (:mod:`edgesr.upscale`, which opens models) and by evaluate's tiled
scoring of large images.

Colour conventions (the ones the shipped nets were trained with):

* Y models see BT.601 studio-range luma, ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``
  for RGB in [0, 1] (MATLAB ``rgb2ycbcr``). That is exactly the Y plane of limited-range BT.601
  video, so NV12 frames go through the net as they are, with no RGB round trip. Chroma is
  upscaled with bicubic interpolation (OpenCV, a = -0.75): Cb/Cr for RGB input, the UV plane
  for NV12.
* RGB models get RGB in [0, 1]. NV12 frames for an RGB model are converted with the same
  BT.601 limited-range matrix (chroma upsampled bicubically first), and back, with the UV
  plane made by 2x2 averaging.

The model's output is clipped to [0, 1] and rounded to 8 bits (half away from zero).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import ConfigError, DataError, ModelError
from edgesr.runtime.tiling import onnx_receptive_radius, run_tiled, torch_receptive_radius

__all__ = ["FrameTimes", "Upscaler", "to_u8"]

#: Frames with more LR pixels than this are tiled when ``tile`` is not given (memory).
AUTO_TILE_PIXELS = 1024 * 1024
AUTO_TILE = 512
#: Receptive radius assumed when a model cannot be inspected (a bare TensorRT engine).
FALLBACK_RADIUS = 16
_STRIP = 256  # output rows converted per step: bounds the float64 temporaries

# BT.601 studio range (MATLAB rgb2ycbcr), rows Y, Cb, Cr; for RGB in [0, 1], result in 0..255.
# The matrix of edgesr.data.color, not imported from there: that module loads torch.
_RGB2YCC = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
)
_YCC_OFFSET = np.array([16.0, 128.0, 128.0])
_YCC2RGB = np.linalg.inv(_RGB2YCC)


class FrameTimes:
    """Per-frame seconds: ``model`` (sum of the runner's calls for the frame) and ``total``."""

    def __init__(self) -> None:
        self.model: list[float] = []
        self.total: list[float] = []

    def __len__(self) -> int:
        return len(self.total)

    def summary(self) -> dict[str, float]:
        """Frames, mean/p50/p99 model ms per frame, mean end-to-end ms per frame."""
        if not self.total:
            return {"frames": 0}
        model = np.asarray(self.model) * 1e3
        return {
            "frames": len(self.total),
            "model_mean_ms": float(model.mean()),
            "model_p50_ms": float(np.percentile(model, 50)),
            "model_p99_ms": float(np.percentile(model, 99)),
            "total_mean_ms": float(np.mean(self.total) * 1e3),
        }


def _rows(n: int, step: int = _STRIP) -> Iterator[slice]:
    for a in range(0, n, step):
        yield slice(a, min(n, a + step))


def _to_u8(x: np.ndarray) -> np.ndarray:
    """Float in [0, 1] (any shape) -> uint8, clipped and rounded half away from zero."""
    t = np.multiply(x, np.float32(255.0), dtype=np.float32)  # the one float temporary
    t += np.float32(0.5)
    np.clip(t, 0.0, 255.0, out=t)  # >= 0 from here, so the cast's truncation is the floor
    return t.astype(np.uint8)


def to_u8(x: np.ndarray) -> np.ndarray:
    """The rounding every ``upscale_*`` method applies: float in [0, 1] -> uint8."""
    return _to_u8(x)


def _rgb_to_ycc(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 RGB (uint8 or float in [0, 1]) -> float32 YCbCr in [0, 1], strip by strip."""
    out = np.empty(rgb.shape, np.float32)
    for r in _rows(rgb.shape[0]):
        x = rgb[r].astype(np.float64)
        if rgb.dtype == np.uint8:
            x /= 255.0
        out[r] = (x @ _RGB2YCC.T + _YCC_OFFSET) / 255.0
    return out


# YCbCr in 0..255 -> RGB in 0..255 as one affine map for cv2.transform (float32, SIMD): 10x
# faster than float64 matmuls at 4K, and float32 is exact to ~1e-5 of a level before rounding.
_YCC2RGB_AFFINE = np.hstack([255.0 * _YCC2RGB, (-255.0 * _YCC2RGB @ _YCC_OFFSET)[:, None]])


def _ycc_to_rgb_u8(y_u8: np.ndarray, cbcr: np.ndarray) -> np.ndarray:
    """Y (uint8 plane) + Cb/Cr (float32 in [0, 1]) -> uint8 RGB, in strips (small temporaries)."""
    import cv2

    out = np.empty((*y_u8.shape, 3), np.uint8)
    for r in _rows(y_u8.shape[0]):
        ycc = np.empty((r.stop - r.start, y_u8.shape[1], 3), np.float32)
        ycc[:, :, 0] = y_u8[r]
        np.multiply(cbcr[r], np.float32(255.0), out=ycc[:, :, 1:])
        rgb = cv2.transform(ycc, _YCC2RGB_AFFINE)
        rgb += np.float32(0.5)  # then clip and truncate: round half up, as _to_u8
        np.clip(rgb, 0.0, 255.0, out=rgb)
        out[r] = rgb
    return out


def _check_u8(a: Any, ndim: int, what: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != ndim:
        raise DataError(
            f"{what} expects a {ndim}-D uint8 array, got "
            f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}; "
            "convert 16-bit or float frames to 8 bit first."
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{what}: the frame has zero size {a.shape[:2]}")
    return a


class Upscaler:
    """A loaded runner (:class:`edgesr.runtime.runners.BaseRunner`) plus tiling.

    ``tile``: LR tile size; None tiles only frames over :data:`AUTO_TILE_PIXELS` (in
    :data:`AUTO_TILE` tiles), 0 never tiles. ``overlap``: LR context per tile side; None means
    the receptive radius (bit-identical to whole frames); smaller values blend the seams.
    ``radius`` overrides the receptive radius computed from the model.
    The runner is activated here; :meth:`close` (or ``with``) deactivates it.
    """

    def __init__(
        self,
        runner: Any,
        *,
        tile: int | None = None,
        overlap: int | None = None,
        radius: int | None = None,
    ) -> None:
        if tile is not None and tile < 0:
            raise ConfigError(
                f"tile must be a positive number of LR pixels (or 0: off), got {tile}"
            )
        if overlap is not None and overlap < 0:
            raise ConfigError(f"overlap must be >= 0 LR pixels, got {overlap}")
        self.runner = runner.activate()
        self.scale: int = int(runner.scale)
        self.color: str = runner.color
        if self.color not in ("y", "rgb"):
            raise ModelError(f"model colour must be 'y' or 'rgb', got {self.color!r}")
        self.receptive_radius: int = radius if radius is not None else _radius_of(runner)
        if radius is None and _bit_exact(runner):
            self.receptive_radius = self._probe_radius(self.receptive_radius)
        self.tile = tile
        self.overlap = self.receptive_radius if overlap is None else overlap
        self.times = FrameTimes()
        self._cleanup: list[Any] = []  # temp dirs owned by open_upscaler

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        self.runner.deactivate()
        for item in self._cleanup:
            with contextlib.suppress(Exception):
                item.cleanup()
        self._cleanup.clear()

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.runner.name

    @property
    def backend(self) -> str:
        return self.runner.backend

    def tile_for(self, height: int, width: int) -> int | None:
        """The LR tile size used for an ``height`` x ``width`` frame (None: whole frame)."""
        if self.tile == 0:
            return None
        if self.tile is None:
            return AUTO_TILE if height * width > AUTO_TILE_PIXELS else None
        return self.tile

    # -- the net ------------------------------------------------------------------------------
    def infer(self, lr: np.ndarray) -> np.ndarray:
        """float32 [C, H, W] in [0, 1] -> float32 [C, sH, sW], unclipped, tiled as configured.

        Not timed as a frame; the upscale_* methods are.
        """
        if lr.ndim != 3 or lr.shape[0] != self.runner.num_channels:
            raise DataError(
                f"{self.name} expects [{self.runner.num_channels}, H, W] input, got {lr.shape}"
            )
        with self._exact_kernels():
            return run_tiled(
                self.runner.infer,
                lr,
                scale=self.scale,
                tile=self.tile_for(lr.shape[1], lr.shape[2]),
                overlap=self.overlap,
                radius=self.receptive_radius,
            )

    def _probe_radius(self, radius: int) -> int:
        """Check the radius read from the graph on a random frame cut into 2x2 tiles: with
        enough context the tiles are bit-identical to the whole frame. A graph pattern the
        walk misreads would show up here, so widen the radius (with a warning) until it holds.
        """
        rng = np.random.default_rng(0)
        c = self.runner.num_channels
        for _ in range(4):
            side = 2 * (2 * radius + 6)  # two tiles a side, each wider than twice the context
            x = rng.random((c, side + 1, side + 3), dtype=np.float32)
            with self._exact_kernels():
                whole = self.runner.infer(x[None])[0]
                tiled = run_tiled(
                    self.runner.infer,
                    x,
                    scale=self.scale,
                    tile=side // 2 + 1,
                    overlap=radius,
                    radius=radius,
                )
            if np.array_equal(whole, tiled):
                return radius
            wider = 2 * radius + 2
            warnings.warn(
                f"{self.name}: tiles with {radius} LR pixels of context differ from the whole "
                f"frame; the graph reaches further than its convs say. Using {wider}.",
                stacklevel=3,
            )
            radius = wider
        raise ModelError(
            f"{self.name}: tiled output never matched the whole frame (up to {radius} LR "
            "pixels of context); run it untiled (--tile 0) or pass --tile-overlap."
        )

    @contextlib.contextmanager
    def _exact_kernels(self) -> Iterator[None]:
        """PyTorch on CPU: convs without oneDNN, whose kernels (and rounding) change with the
        frame size, so a tile's pixels would differ from the whole frame's in the last bit.
        The plain kernels are 1.1-2.9x slower; ONNX Runtime is both fast and exact."""
        if self.runner.backend != "torch" or str(getattr(self.runner, "device", "cpu")) != "cpu":
            yield
            return
        import torch

        # The module property, not mkldnn.flags(): that one also resets TF32 and warns each time.
        before = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            yield
        finally:
            torch.backends.mkldnn.enabled = before

    @contextlib.contextmanager
    def _frame(self) -> Iterator[None]:
        start_calls = len(self.runner.inference_times)
        start = time.perf_counter()
        yield
        self.times.total.append(time.perf_counter() - start)
        self.times.model.append(float(sum(self.runner.inference_times[start_calls:])))
        # The runner's list would otherwise grow by one entry per tile forever in a stream.
        del self.runner.inference_times[:start_calls]

    # -- frames -------------------------------------------------------------------------------
    def upscale_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> sHxsWx3 uint8 RGB."""
        rgb = _check_u8(rgb, 3, "upscale_rgb")
        if rgb.shape[2] != 3:
            raise DataError(f"upscale_rgb expects HxWx3 RGB, got shape {rgb.shape}")
        with self._frame():
            if self.color == "rgb":
                x = rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
                return _to_u8(self.infer(x).transpose(1, 2, 0))
            ycc = _rgb_to_ycc(rgb)
            y_u8 = _to_u8(self.infer(np.ascontiguousarray(ycc[None, :, :, 0]))[0])
            return _ycc_to_rgb_u8(y_u8, self._resize(ycc[:, :, 1:], y_u8.shape))

    def upscale_float(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 float RGB in [0, 1] -> sHxsWx3 float32 in [0, 1] (clipped, not rounded).

        For 16-bit images: the net sees the full-precision input, nothing is rounded to 8 bits.
        """
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise DataError(f"upscale_float expects HxWx3 RGB, got {getattr(rgb, 'shape', rgb)}")
        if not np.issubdtype(rgb.dtype, np.floating):
            raise DataError(f"upscale_float expects float RGB in [0, 1], got {rgb.dtype}")
        with self._frame():
            if self.color == "rgb":
                x = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
                return np.clip(self.infer(x), 0.0, 1.0).transpose(1, 2, 0)
            ycc = _rgb_to_ycc(rgb)
            y = np.clip(self.infer(np.ascontiguousarray(ycc[None, :, :, 0]))[0], 0.0, 1.0)
            cbcr = self._resize(ycc[:, :, 1:], y.shape)
            out = np.empty((*y.shape, 3), np.float32)
            for r in _rows(y.shape[0]):
                ycc_out = np.concatenate([y[r, :, None], cbcr[r]], axis=2).astype(np.float64)
                out[r] = np.clip((ycc_out * 255.0 - _YCC_OFFSET) @ _YCC2RGB.T, 0.0, 1.0)
            return out

    def upscale_y(self, y: np.ndarray) -> np.ndarray:
        """HxW uint8 luma (BT.601 studio range) -> sHxsW uint8; Y models only."""
        if self.color != "y":
            raise ConfigError(
                f"{self.name} is an RGB model; upscale_y needs a Y-channel model "
                "(use upscale_rgb or upscale_nv12 for an RGB model)."
            )
        y = _check_u8(y, 2, "upscale_y")
        with self._frame():
            return self._net_y(y)

    def upscale_y_float(self, y: np.ndarray) -> np.ndarray:
        """:meth:`upscale_y` before its rounding: float32 sHxsW, unclipped (:func:`to_u8` gives
        the same bytes). A pipeline rounds on another thread, off the model's critical path."""
        if self.color != "y":
            raise ConfigError(f"{self.name} is an RGB model; upscale_y_float needs a Y model.")
        y = _check_u8(y, 2, "upscale_y_float")
        with self._frame():
            return self.infer(y[None].astype(np.float32) / np.float32(255.0))[0]

    def upscale_nv12(self, y: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NV12 planes -> upscaled NV12 planes (contiguous): Y HxW, UV (H/2)x(W/2)x2 (Cb, Cr).

        Either plane may be a strided view into a larger buffer.
        """
        y = _check_u8(y, 2, "upscale_nv12 (Y plane)")
        h, w = y.shape
        if h % 2 or w % 2:
            raise DataError(
                f"an NV12 frame must have even height and width, got {w}x{h}; crop or pad the "
                "frame to even sizes (e.g. drop the last row/column) before upscaling."
            )
        if (
            not isinstance(uv, np.ndarray)
            or uv.dtype != np.uint8
            or uv.shape != (h // 2, w // 2, 2)
        ):
            raise DataError(
                f"the NV12 UV plane must be uint8 of shape {(h // 2, w // 2, 2)} (interleaved Cb, "
                f"Cr) for a {w}x{h} Y plane, got {getattr(uv, 'dtype', '?')} "
                f"{getattr(uv, 'shape', '?')}; reshape a (H/2)xW plane with .reshape(H//2, W//2, 2)."
            )
        s = self.scale
        with self._frame():
            if self.color == "y":
                y_out = self._net_y(y)
                uv_out = self._resize(uv, (h * s // 2, w * s // 2))
                return y_out, np.ascontiguousarray(uv_out)
            # RGB model: BT.601 limited range to RGB, the net, and back.
            cbcr = self._resize(uv, (h, w)).astype(np.float32) / np.float32(255.0)
            ycc = np.concatenate([y[:, :, None].astype(np.float32) / 255.0, cbcr], axis=2)
            rgb = np.empty((h, w, 3), np.float32)
            for r in _rows(h):
                x = ycc[r].astype(np.float64) * 255.0 - _YCC_OFFSET
                rgb[r] = np.clip(x @ _YCC2RGB.T, 0.0, 1.0)
            sr = np.clip(self.infer(rgb.transpose(2, 0, 1).copy()), 0.0, 1.0)
            sr = _to_u8(sr.transpose(1, 2, 0))
            out_ycc = _rgb_to_ycc(sr)
            y_out = _to_u8(out_ycc[:, :, 0])
            uv_small = self._downsample2(out_ycc[:, :, 1:])
            return y_out, _to_u8(uv_small)

    # -- helpers ------------------------------------------------------------------------------
    def _net_y(self, y: np.ndarray) -> np.ndarray:
        x = y[None].astype(np.float32) / np.float32(255.0)
        return _to_u8(self.infer(x)[0])

    @staticmethod
    def _resize(planes: np.ndarray, hw: Sequence[int]) -> np.ndarray:
        import cv2

        out = cv2.resize(
            np.ascontiguousarray(planes), (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_CUBIC
        )
        return out.reshape(int(hw[0]), int(hw[1]), planes.shape[2])

    @staticmethod
    def _downsample2(planes: np.ndarray) -> np.ndarray:
        h, w, c = planes.shape
        return planes.reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3), dtype=np.float32)


# -- receptive radius of whatever runs the model -------------------------------------------------
def _bit_exact(runner: Any) -> bool:
    """Runners whose tiles are bit-identical to the whole frame (measured): ONNX Runtime and
    libedgesr on the CPU, PyTorch on the CPU with plain convs. GPU kernels may differ in the
    last bit with the frame size, so the radius is not probed there."""
    if runner.backend == "torch":
        return str(getattr(runner, "device", "cpu")) == "cpu"
    if runner.backend == "onnxruntime":
        return list(getattr(runner, "providers", [])) == ["CPUExecutionProvider"]
    return runner.backend == "capi" and getattr(runner, "engine_backend", "") == "onnxruntime"


def _radius_of(runner: Any) -> int:
    model = getattr(runner, "model", None)
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            return torch_receptive_radius(model)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    path = getattr(runner, "path", None)
    if path is not None:
        path = Path(path)
        onnx_path = path if path.suffix.lower() == ".onnx" else path.with_suffix(".onnx")
        if onnx_path.is_file():
            return onnx_receptive_radius(onnx_path)
    warnings.warn(
        f"cannot inspect {getattr(runner, 'name', runner)} for its receptive radius; tiles use "
        f"{FALLBACK_RADIUS} LR pixels of context (pass overlap= to choose).",
        stacklevel=3,
    )
    return FALLBACK_RADIUS
