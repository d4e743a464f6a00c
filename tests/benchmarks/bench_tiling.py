"""What tiling costs: PSNR of tiled vs whole-frame output per overlap, and evaluate's peak memory.

    python tests/benchmarks/bench_tiling.py                       # PSNR table (README's)
    python tests/benchmarks/bench_tiling.py --rss 8000            # + peak RSS of evaluate on 8000x8000

The photo is scikit-image's astronaut (256x256 LR crop), 64-pixel LR tiles, ONNX Runtime.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def psnr_table(recipes: list[str], *, tile: int, threads: int) -> None:
    from skimage import data

    from edgesr.upscale import open_upscaler

    lr = np.ascontiguousarray(data.astronaut()[:256, :256])
    print(f"PSNR (dB) of tiled vs whole-frame RGB output, {tile}-pixel LR tiles")
    for recipe in recipes:
        with open_upscaler(recipe=recipe, threads=threads) as up:
            up.tile = 0
            whole = up.upscale_rgb(lr).astype(np.float64)
            cells = []
            for overlap in range(up.receptive_radius + 1):
                up.tile, up.overlap = tile, overlap
                mse = np.mean((up.upscale_rgb(lr).astype(np.float64) - whole) ** 2)
                cells.append("identical" if mse == 0 else f"{10 * np.log10(255**2 / mse):.1f}")
            print(f"{recipe:<14} radius {up.receptive_radius}:  " + "  ".join(cells))


def evaluate_rss(side: int, recipe: str) -> None:
    import cv2
    from skimage import data

    with tempfile.TemporaryDirectory() as tmp:
        big = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(Path(tmp) / "big.png"), big, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        del big
        cmd = [sys.executable, "-m", "edgesr", "evaluate", "--recipe", recipe, "--data", tmp]
        subprocess.run([*cmd, "--threads", "2"], check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"edgesr evaluate on one {side}x{side} photo: peak RSS {peak:.2f} GB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--recipes", nargs="+", default=["espcn_x4", "fsrcnn_x4", "anchornet_x4", "srgan_lite_x4"]
    )
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--rss", type=int, metavar="SIDE", help="also measure evaluate on a SIDExSIDE photo"
    )
    args = ap.parse_args()
    psnr_table(args.recipes, tile=args.tile, threads=args.threads)
    if args.rss:
        evaluate_rss(args.rss, "espcn_x4")


if __name__ == "__main__":
    main()
