"""Evaluation with the field's standard protocol.

HR is mod-cropped to the scale, LR made by MATLAB-compatible bicubic on uint8 RGB, the model's
output quantised to 8 bits (what a camera pipeline stores), and PSNR/SSIM computed on the Y
channel of BT.601 studio-range YCbCr with ``scale`` border pixels shaved. Bicubic is always
measured alongside, on the same images, as the reference line.
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from edgesr.data.imresize import imresize
from edgesr.data.pairs import SRPair, as_loaded_images, make_pairs, to_model_space
from edgesr.errors import ConfigError, DataError
from edgesr.metrics import calculate_psnr, calculate_ssim
from edgesr.runtime.runners import BaseRunner, CallableRunner, TorchRunner

#: HR images with more pixels than this are scored in strips with a tiled net (memory).
LARGE_PIXELS = 2048 * 2048
#: LR tile size for them.
LARGE_TILE = 256


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr_y: float
    ssim_y: float


@dataclass
class EvalReport:
    scale: int
    model: str
    images: list[ImageScore]
    bicubic_images: list[ImageScore] = field(default_factory=list)

    @staticmethod
    def _mean(scores: Sequence[ImageScore]) -> dict[str, float]:
        if not scores:
            return {}
        return {
            "psnr_y": statistics.fmean(s.psnr_y for s in scores),
            "ssim_y": statistics.fmean(s.ssim_y for s in scores),
        }

    @property
    def mean(self) -> dict[str, float]:
        return self._mean(self.images)

    @property
    def bicubic(self) -> dict[str, float]:
        return self._mean(self.bicubic_images)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "model": self.model,
            "images": [asdict(s) for s in self.images],
            "mean": self.mean,
            "bicubic": self.bicubic,
        }

    def table(self) -> str:
        """A readable per-image table with the mean and the bicubic reference."""
        bic = {s.name: s for s in self.bicubic_images}
        width = max([len(s.name) for s in self.images] + [8])
        lines = [f"{'image':<{width}}  {'PSNR-Y':>8}  {'SSIM-Y':>7}  {'bicubic':>8}  {'gain':>6}"]
        for s in self.images:
            b = bic.get(s.name)
            extra = f"  {b.psnr_y:8.2f}  {s.psnr_y - b.psnr_y:+6.2f}" if b else ""
            lines.append(f"{s.name:<{width}}  {s.psnr_y:8.2f}  {s.ssim_y:7.4f}{extra}")
        m, b = self.mean, self.bicubic
        tail = f"  {b['psnr_y']:8.2f}  {m['psnr_y'] - b['psnr_y']:+6.2f}" if b else ""
        lines.append(f"{'mean':<{width}}  {m['psnr_y']:8.2f}  {m['ssim_y']:7.4f}{tail}")
        return "\n".join(lines)


def y_of(rgb_u8: np.ndarray) -> np.ndarray:
    """Y in [0,1] (float64) of a uint8 RGB image."""
    return np.asarray(rgb_to_ycbcr(rgb_u8.astype(np.float64) / 255.0, y_only=True)).reshape(
        rgb_u8.shape[:2]
    )


def score(sr_y: np.ndarray, hr_y: np.ndarray, *, scale: int, name: str) -> ImageScore:
    kw = {"crop_border": scale, "test_y_channel": False, "data_range": 1.0}
    return ImageScore(
        name, float(calculate_psnr(sr_y, hr_y, **kw)), float(calculate_ssim(sr_y, hr_y, **kw))
    )


def bicubic_upscale(pair: SRPair, scale: int) -> np.ndarray:
    return imresize(pair.lr_rgb, float(scale))


def super_resolve(runner: BaseRunner, lr_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run one uint8 RGB LR image; returns (SR Y in [0,1] quantised to 8 bits, SR uint8 RGB).

    Y-channel models get their chroma from bicubic, the usual way to show them in colour.
    """
    x = to_model_space(lr_rgb, runner.color).transpose(2, 0, 1)[None]
    out = np.clip(runner.infer(x)[0].transpose(1, 2, 0), 0.0, 1.0)
    out = np.round(out * 255.0) / 255.0
    if runner.color == "y":
        up = imresize(lr_rgb, float(runner.scale)).astype(np.float64) / 255.0
        ycc = rgb_to_ycbcr(up)
        ycc[..., 0] = out[..., 0]
        rgb = np.clip(np.round(ycbcr_to_rgb(ycc) * 255.0), 0, 255).astype(np.uint8)
        return out[..., 0].astype(np.float64), rgb
    rgb = np.round(out * 255.0).astype(np.uint8)
    return y_of(rgb), rgb


def resolve_eval_data(
    data: Any, *, scale: int, degradation: str | Any = "bicubic", seed: int = 0
) -> list[SRPair]:
    """A folder, 'embedded' (the embedded validation split), pairs, or an iterable of images.

    LR frames by MATLAB bicubic, or with ``degradation="camera"`` (or a
    :class:`edgesr.recipe.CameraDegradation`) by the seeded camera pipeline.
    """
    if isinstance(data, (str, Path)):
        if str(data) in ("embedded", "embedded:val"):
            from edgesr.data.embedded import embedded_images

            images = embedded_images(split="val")
        else:
            from edgesr.data.folders import load_hr_folder

            images = load_hr_folder(Path(data))
    else:
        items = list(data)
        if items and all(isinstance(p, SRPair) for p in items):
            return items
        images = as_loaded_images(items)
    if isinstance(degradation, str) and degradation == "bicubic":
        return make_pairs(images, scale=scale)
    from edgesr.data.pairs import make_degraded_pairs
    from edgesr.recipe import CameraDegradation

    if isinstance(degradation, str) and degradation == "camera":
        degradation = CameraDegradation()
    if not isinstance(degradation, CameraDegradation):
        raise ConfigError(
            f"unknown degradation {degradation!r}; use 'bicubic', 'camera' or a CameraDegradation."
        )
    return make_degraded_pairs(images, scale=scale, spec=degradation, seed=seed)


def as_runner(model: Any, *, scale: int | None, color: str | None) -> BaseRunner | None:
    """Wrap what the caller passed; None means bicubic."""
    if isinstance(model, str) and model == "bicubic":
        return None
    if isinstance(model, BaseRunner):
        return model
    import torch

    if isinstance(model, torch.nn.Module):
        scale = scale or getattr(model, "scale", None)
        color = color or ("y" if getattr(model, "num_channels", 1) == 1 else "rgb")
        if scale is None:
            raise ConfigError(
                "evaluating a torch module needs scale= (or a module with a .scale attribute)."
            )
        return TorchRunner(model, scale=scale, color=color, name=type(model).__name__)
    raise ConfigError(
        f"cannot evaluate a {type(model).__name__}; pass a runner, a torch module or 'bicubic'."
    )


def evaluate(
    model: Any,
    data: Any,
    *,
    scale: int | None = None,
    color: str | None = None,
    bicubic: bool = True,
    save_dir: str | Path | None = None,
    on_image: Callable[[ImageScore], None] | None = None,
    degradation: str | Any = "bicubic",
    seed: int = 0,
    tile: int | None = None,
) -> EvalReport:
    """Measure ``model`` (runner, torch module or ``"bicubic"``) on ``data`` with the standard protocol.

    ``degradation`` makes the LR frames: ``"bicubic"`` (the published-numbers protocol) or
    ``"camera"`` / a :class:`edgesr.recipe.CameraDegradation` (realistic blur, sensor noise
    and JPEG, fixed by ``seed`` so every model sees the same frames).

    ``tile``: images over :data:`LARGE_PIXELS` HR pixels (or every image, with ``tile=N``) are
    scored in strips with the net run in LR tiles (:mod:`edgesr.evaluate.strips`): memory stays
    bounded and the numbers are those of the whole image (tiles are bit-identical; only the
    order of the final sums differs). ``tile=0`` never tiles.
    """
    runner = as_runner(model, scale=scale, color=color)
    # Activate first: an ONNX model's scale and colour come from its metadata.
    with runner if runner is not None else contextlib.nullcontext():
        if runner is not None and scale and runner.scale != scale:
            raise ConfigError(
                f"the model upscales x{runner.scale} but scale={scale} was asked; evaluate it at x{runner.scale}."
            )
        scale = scale or (runner.scale if runner else None)
        if not scale:
            raise ConfigError(
                "evaluate needs the scale (scale=...) when the model does not carry one."
            )
        pairs = resolve_eval_data(data, scale=scale, degradation=degradation, seed=seed)
        if not pairs:
            raise DataError("the evaluation set is empty; pass a folder with at least one image.")
        report = EvalReport(scale=scale, model=runner.name if runner else "bicubic", images=[])
        upscaler = None
        for pair in pairs:
            if tile != 0 and (tile or pair.hr_rgb.shape[0] * pair.hr_rgb.shape[1] > LARGE_PIXELS):
                from edgesr.evaluate.strips import score_in_strips

                if upscaler is None and runner is not None:
                    from edgesr.runtime.upscaler import Upscaler

                    upscaler = Upscaler(runner, tile=tile or LARGE_TILE)
                (m_psnr, m_ssim), (b_psnr, b_ssim), sr_rgb = score_in_strips(
                    upscaler, pair, scale=scale, want_rgb=save_dir is not None
                )
                result = ImageScore(pair.name, m_psnr, m_ssim)
                bic = ImageScore(pair.name, b_psnr, b_ssim)
                if sr_rgb is None and save_dir is not None:  # bicubic "model"
                    sr_rgb = bicubic_upscale(pair, scale)
                _record(report, result, bic, sr_rgb, pair, scale, bicubic, save_dir, on_image)
                continue
            hr_y = y_of(pair.hr_rgb)
            bic_rgb = bicubic_upscale(pair, scale)
            bic = score(y_of(bic_rgb), hr_y, scale=scale, name=pair.name)
            if runner is None:
                result, sr_rgb = bic, bic_rgb
            else:
                sr_y, sr_rgb = super_resolve(runner, pair.lr_rgb)
                result = score(sr_y, hr_y, scale=scale, name=pair.name)
            _record(report, result, bic, sr_rgb, pair, scale, bicubic, save_dir, on_image)
    return report


def _record(
    report: EvalReport,
    result: ImageScore,
    bic: ImageScore,
    sr_rgb: np.ndarray | None,
    pair: SRPair,
    scale: int,
    bicubic: bool,
    save_dir: str | Path | None,
    on_image: Callable[[ImageScore], None] | None,
) -> None:
    report.images.append(result)
    if bicubic:
        report.bicubic_images.append(bic)
    if save_dir is not None and sr_rgb is not None:
        from edgesr.data.io import write_image

        write_image(Path(save_dir) / f"{Path(pair.name).name}_x{scale}.png", sr_rgb)
    if on_image is not None:
        on_image(result)


def write_report_json(report: EvalReport, path: str | Path, *, force: bool = False) -> Path:
    from edgesr.outputs import atomic_write_bytes, refuse_existing

    path = Path(path)
    refuse_existing(path, force=force, hint="or choose another --json path")
    atomic_write_bytes(path, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    return path


def evaluate_pairs_y(
    predict: Callable[[np.ndarray], np.ndarray], pairs: Iterable[SRPair], *, scale: int, color: str
) -> float:
    """Mean Y-PSNR of a bare ``predict(NCHW float) -> NCHW float`` (validation during training)."""
    with CallableRunner(predict, scale=scale, color=color, name="validation") as runner:
        kw = {"crop_border": scale, "test_y_channel": False, "data_range": 1.0}
        return statistics.fmean(
            calculate_psnr(super_resolve(runner, p.lr_rgb)[0], y_of(p.hr_rgb), **kw) for p in pairs
        )
