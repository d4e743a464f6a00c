"""PSNR/SSIM of every shipped model and bicubic on Set5/Set14, next to the published numbers.

    python tests/benchmarks/bench_psnr.py [--data-root ../shared/data/benchmarks] [--json out.json]

Standard protocol (edgesr.evaluate): Y channel, `scale` pixels shaved, MATLAB bicubic LR. The
benchmark sets are read in place and never used for training or tuning.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from edgesr.evaluate import evaluate
from edgesr.modelio import load_pretrained
from edgesr.recipe import available_recipes, load_recipe
from edgesr.runtime.runners import TorchRunner

# Published Y-PSNR (Set5, Set14). Bicubic: as tabulated in the SR literature (e.g. the VDSR and
# EDSR papers). ESPCN: Shi et al. 2016, ImageNet-trained (x3, x4; no x2 reported). FSRCNN: Dong
# et al. 2016 (x2, x3) and the x4 target of edgesr's issue tracker.
PUBLISHED = {
    ("bicubic", 2): (33.66, 30.24),
    ("bicubic", 3): (30.39, 27.55),
    ("bicubic", 4): (28.42, 26.00),
    ("espcn", 3): (33.13, 29.49),
    ("espcn", 4): (30.90, 27.73),
    ("fsrcnn", 2): (37.00, 32.63),
    ("fsrcnn", 3): (33.16, 29.43),
    ("fsrcnn", 4): (30.72, 27.61),
}
SETS = ("Set5", "Set14")


def default_root() -> Path:
    env = os.environ.get("EDGESR_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return base / "benchmarks"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-root", type=Path, default=default_root(), help="folder holding Set5/ and Set14/"
    )
    parser.add_argument("--json", type=Path, help="write results here (refuses to overwrite)")
    parser.add_argument(
        "--recipes", nargs="*", help="recipes to measure (default: all with shipped weights)"
    )
    args = parser.parse_args(argv)
    for name in SETS:
        if not (args.data_root / name).is_dir():
            print(
                f"error: {args.data_root / name} not found; pass --data-root with Set5/ and Set14/",
                file=sys.stderr,
            )
            return 3
    if args.json and args.json.exists():
        print(f"error: {args.json} exists; choose another --json path", file=sys.stderr)
        return 5

    recipes = [load_recipe(n) for n in (args.recipes or available_recipes())]
    recipes = [r for r in recipes if r.model.weights]
    rows = []
    for scale in (2, 3, 4):
        entries = [("bicubic", "bicubic", None)]
        entries += [(r.name, r.model.arch, r) for r in recipes if r.model.scale == scale]
        for label, arch, recipe in entries:
            row = {"model": label, "arch": arch, "scale": scale}
            t0 = time.perf_counter()
            for set_name in SETS:
                if recipe is None:
                    model = "bicubic"
                else:
                    net, info = load_pretrained(recipe)
                    model = TorchRunner(net, scale=info.scale, color=info.color, name=label)
                rep = evaluate(model, args.data_root / set_name, scale=scale, bicubic=False)
                row[set_name] = {"psnr_y": rep.mean["psnr_y"], "ssim_y": rep.mean["ssim_y"]}
            pub = PUBLISHED.get((arch, scale))
            row["published"] = {"Set5": pub[0], "Set14": pub[1]} if pub else None
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)

    header = f"{'model':<14} {'x':>2}  {'Set5 PSNR/SSIM':>16} {'pub.':>6}  {'Set14 PSNR/SSIM':>16} {'pub.':>6}"
    print(header)
    print("-" * len(header))
    for row in rows:
        pub = row["published"] or {}
        cells = []
        for set_name in SETS:
            r = row[set_name]
            p = pub.get(set_name)
            cells.append(f"{r['psnr_y']:7.2f}/{r['ssim_y']:.4f} {p if p is not None else '—':>6}")
        print(f"{row['model']:<14} {row['scale']:>2}  {cells[0]:>23}  {cells[1]:>23}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"protocol": "Y, BT.601, shave=scale, MATLAB bicubic LR", "rows": rows}, indent=2
            )
            + "\n"
        )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
