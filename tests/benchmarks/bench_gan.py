"""GAN generator vs its pixel-loss starting point: PSNR/SSIM, a texture measure, and crops.

    python tests/benchmarks/bench_gan.py --gan RUN/model.safetensors \
        --pixel RUN/pretrain/model.safetensors [--before OLD_GAN.safetensors] \
        [--data-root ../shared/data/benchmarks] [--out bench-gan/]

Both models run on Set5/Set14 twice: with the benchmark protocol's bicubic LR, and with LR made
by edgesr's camera degradations (fixed seed, so every model sees the same frames). Besides
Y-PSNR/SSIM (which reward blur) it reports the high-frequency energy ratio of SR to HR on the
Y channel (1.0: as much fine detail as the ground truth; bicubic and pixel-loss models sit
well below 1), and the upsampling grid (:func:`edgesr.metrics.periodic_grid_db` at the scale's
period: about 0 dB for a photo, higher for a texture repeating every ``scale`` pixels). Besides
Set5/Set14 it scores the embedded validation photos (scikit-image's, never trained on), and
``--before`` adds an earlier generator's column (e.g. the weights a change replaces). Writes ``bench_gan.json`` and side-by-side crop sheets (bicubic | pixel | GAN |
HR) as PNG into ``--out``; the benchmark sets are read in place and never trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edgesr.check.report import detail_window, encode_png
from edgesr.data.folders import LoadedImage, load_hr_folder
from edgesr.data.pairs import make_degraded_pairs, make_pairs
from edgesr.evaluate import bicubic_upscale, resolve_eval_data, super_resolve, y_of
from edgesr.metrics import calculate_psnr, calculate_ssim, periodic_grid_db
from edgesr.modelio import load_model
from edgesr.recipe import CameraDegradation
from edgesr.runtime.runners import TorchRunner

SETS = ("Set5", "Set14")


def high_freq_ratio(sr_y: np.ndarray, hr_y: np.ndarray, border: int) -> float:
    """Energy of the Laplacian of SR over that of HR (Y in [0, 1], ``border`` pixels shaved)."""

    def lap_energy(y: np.ndarray) -> float:
        y = y[border:-border, border:-border] if border else y
        lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
        return float(np.mean(lap**2))

    return lap_energy(sr_y) / max(lap_energy(hr_y), 1e-12)


def score_model(runner, pairs, scale: int) -> dict[str, float]:
    kw = {"crop_border": scale, "test_y_channel": False, "data_range": 1.0}
    psnr, ssim, hf, grid = [], [], [], []
    for pair in pairs:
        if runner is None:
            rgb = bicubic_upscale(pair, scale)
            sr_y = y_of(rgb)
        else:
            sr_y, _ = super_resolve(runner, pair.lr_rgb)
        hr_y = y_of(pair.hr_rgb)
        psnr.append(calculate_psnr(sr_y, hr_y, **kw))
        ssim.append(calculate_ssim(sr_y, hr_y, **kw))
        hf.append(high_freq_ratio(sr_y, hr_y, scale))
        grid.append(periodic_grid_db(sr_y, period=scale, crop_border=scale))
    return {
        "psnr_y": float(np.mean(psnr)),
        "ssim_y": float(np.mean(ssim)),
        "hf_ratio": float(np.mean(hf)),
        "grid_db": float(np.mean(grid)),
    }


def crop_sheet(runners, pairs, scale: int, size: int = 96) -> np.ndarray:
    """Rows of (bicubic | each model | HR) crops at each image's most detailed window."""
    rows = []
    for pair in pairs:
        hr_y = y_of(pair.hr_rgb)
        side = min(size, *hr_y.shape) // scale * scale
        top, left, _ = detail_window(hr_y, side)
        box = (slice(top, top + side), slice(left, left + side))
        tiles = [bicubic_upscale(pair, scale)[box]]
        for _, runner in runners:
            tiles.append(super_resolve(runner, pair.lr_rgb)[1][box])
        tiles.append(pair.hr_rgb[box])
        gap = np.full((side, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gan", type=Path, required=True, help="GAN (EMA) generator weights")
    parser.add_argument("--pixel", type=Path, required=True, help="pixel-loss generator weights")
    parser.add_argument("--before", type=Path, default=None, help="an earlier GAN generator")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0, help="camera degradation seed")
    parser.add_argument("--out", type=Path, default=Path("bench-gan"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    root = (
        args.data_root
        or Path(
            os.environ.get(
                "EDGESR_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"
            )
        )
        / "benchmarks"
    )
    if not root.is_dir():
        print(f"benchmark sets not found at {root}; pass --data-root", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"{args.out} already holds results; pass another --out", file=sys.stderr)
        return 5
    args.out.mkdir(parents=True, exist_ok=True)

    models = {}
    named = [("pixel", args.pixel), ("gan", args.gan)]
    for name, path in named + ([("before", args.before)] if args.before else []):
        net, info = load_model(path)
        models[name] = (net, info)
    scale = models["gan"][1].scale
    color = models["gan"][1].color
    camera = CameraDegradation()
    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    print(
        f"{'set':<8} {'LR':<8} {'model':<8} {'PSNR-Y':>7} {'SSIM-Y':>7} {'HF ratio':>8} "
        f"{'grid dB':>7}"
    )
    photos = [
        LoadedImage(p.name, None, p.hr_rgb)
        for p in resolve_eval_data("embedded", scale=scale)
        if p.name.startswith("skimage/")
    ]
    for set_name in (*SETS, "photos"):
        images = photos if set_name == "photos" else load_hr_folder(root / set_name)
        lrs = {
            "bicubic": make_pairs(images, scale=scale),
            "camera": make_degraded_pairs(images, scale=scale, spec=camera, seed=args.seed),
        }
        for lr_kind, pairs in lrs.items():
            runners = [
                (name, TorchRunner(net, scale=scale, color=color, name=name))
                for name, (net, _) in models.items()
            ]
            for _, r in runners:
                r.activate()
            rows = {"bicubic": score_model(None, pairs, scale)}
            for name, runner in runners:
                rows[name] = score_model(runner, pairs, scale)
            gt = [periodic_grid_db(y_of(p.hr_rgb), period=scale, crop_border=scale) for p in pairs]
            rows["ground truth"] = {"grid_db": float(np.mean(gt))}
            for name, row in rows.items():
                if "psnr_y" not in row:
                    print(f"{set_name:<8} {lr_kind:<8} {name:<8} {'':>24} {row['grid_db']:7.2f}")
                    continue
                print(
                    f"{set_name:<8} {lr_kind:<8} {name:<8} {row['psnr_y']:7.2f} "
                    f"{row['ssim_y']:7.4f} {row['hf_ratio']:8.3f} {row['grid_db']:7.2f}"
                )
            results[f"{set_name}/{lr_kind}"] = rows
            sheet = crop_sheet(runners, pairs[:5], scale)
            (args.out / f"crops_{set_name}_{lr_kind}.png").write_bytes(encode_png(sheet))
            for _, r in runners:
                r.deactivate()
    summary = {
        "gan": str(args.gan),
        "pixel": str(args.pixel),
        "scale": scale,
        "camera_seed": args.seed,
        "results": results,
        "columns_of_crop_sheets": ["bicubic", *models, "ground truth"],
        "seconds": time.perf_counter() - t0,
    }
    (args.out / "bench_gan.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out / 'bench_gan.json'} and crop sheets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
