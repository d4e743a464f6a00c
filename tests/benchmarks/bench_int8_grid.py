"""Where the INT8 loss of the ORT-CPU model comes from: one PTQ + QAT per weight/input grid.

    python tests/benchmarks/bench_int8_grid.py [--recipe espcn_x4] [--qat-steps 2000]
        [--train-root ../shared/data/train] [--images 16] [--json out.json]

Each row quantizes the recipe's shipped FP32 net as ``edgesr compress`` does for ``int8-ort``
(equalized when compress would, NNCF PTQ on the embedded calibration frames, QAT with
distillation on the embedded training patches) with a different grid, and scores the
fake-quantized net on a tuning split: ``--images`` seeded picks each from BSD200 and General100
(``--train-root``). Those are training images of the FP32 net, never Set5/Set14 (which the
README's figures measure and nothing here looks at); the INT8 loss against FP32 is what counts.

Grids (``u8``/``u7``: activation values 0-255 / 0-127; ``s7``/``s8``: weights in +-63 / +-127):

* ``7bit-weights``: u8 image, s7 weights everywhere (exact on every CPU);
* ``7bit-input``: u7 image x s8 first conv, s7 elsewhere (exact on every CPU);
* ``float-first``: first conv float, s7 elsewhere (ORT runs the first conv unfused);
* ``8bit-weights``: u8 image, s8 weights everywhere: exact only on VNNI/ARM CPUs (a floor).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

GRIDS = ("7bit-weights", "7bit-input", "float-first", "8bit-weights")


def default_train_root() -> Path:
    env = os.environ.get("EDGESR_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return base / "train"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="espcn_x4")
    ap.add_argument("--qat-steps", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--train-root", type=Path, default=default_train_root())
    ap.add_argument("--images", type=int, default=16, help="per training set")
    ap.add_argument("--grids", default=",".join(GRIDS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    from edgesr.compress.calibration import load_calibration
    from edgesr.compress.equalize import choose_equalization
    from edgesr.compress.mixed import model_psnr
    from edgesr.compress.nncf_int8 import conv_layers, ptq_nncf, qat_finetune
    from edgesr.data.pairs import PatchSampler, make_pairs
    from edgesr.evaluate import resolve_eval_data
    from edgesr.modelio import load_pretrained
    from edgesr.recipe import load_recipe
    from edgesr.train.run import load_train_images

    torch.set_num_threads(2)
    recipe = load_recipe(args.recipe)
    spec = recipe.compress
    steps = spec.qat_steps if args.qat_steps is None else args.qat_steps
    net, info = load_pretrained(recipe)
    net.eval()
    tune = []
    for seed, name in enumerate(("BSD200", "General100")):
        folder = args.train_root / name
        if not folder.is_dir():
            sys.exit(f"error: {folder} not found; pass --train-root (the SR training sets)")
        pairs = resolve_eval_data(str(folder), scale=info.scale)
        random.Random(seed).shuffle(pairs)
        tune += pairs[: args.images]
    calib = load_calibration(
        spec.calib, scale=info.scale, color=info.color, num_images=spec.calib_images
    )
    val = resolve_eval_data(recipe.data.val or "embedded", scale=info.scale)
    base, _ = choose_equalization(net, calib, val, mode=spec.equalize, weight_bits=7)
    first = conv_layers(base)[0]
    fp32 = model_psnr(net, tune, scale=info.scale, color=info.color)
    images, _ = load_train_images(None, recipe)

    options = {
        "7bit-weights": {"weight_bits": 7},
        "7bit-input": {"weight_bits": 7, "layer_weight_bits": {first: 8}, "input_bits": 7},
        "float-first": {"weight_bits": 7, "float_layers": (first,)},
        "8bit-weights": {"weight_bits": 8},
    }
    rows = []
    print(f"{args.recipe}: FP32 {fp32:.3f} dB on {len(tune)} tuning images; QAT {steps} steps")
    print(f"{'grid':14s} {'PTQ Δ dB':>9s} {'QAT Δ dB':>9s} {'s':>5s}")
    for grid in args.grids.split(","):
        if grid not in options:
            sys.exit(f"error: unknown grid {grid!r}; choose from {', '.join(GRIDS)}")
        t0 = time.perf_counter()
        q = ptq_nncf(base, calib, **options[grid])
        ptq = model_psnr(q, tune, scale=info.scale, color=info.color) - fp32
        sampler = PatchSampler(
            make_pairs(images, scale=info.scale),
            scale=info.scale,
            color=info.color,
            lr_patch=recipe.data.lr_patch,
            batch_size=spec.batch_size,
            seed=recipe.train.seed + 17,
        )
        qat_finetune(q, net, sampler, steps=steps, lr=spec.qat_lr, alpha=spec.qat_alpha)
        qat = model_psnr(q, tune, scale=info.scale, color=info.color) - fp32
        seconds = time.perf_counter() - t0
        rows.append({"grid": grid, "ptq_delta_db": ptq, "qat_delta_db": qat, "seconds": seconds})
        print(f"{grid:14s} {ptq:+9.3f} {qat:+9.3f} {seconds:5.0f}", flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "recipe": args.recipe,
                    "fp32_psnr_y": fp32,
                    "tuning_images": len(tune),
                    "qat_steps": steps,
                    "rows": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
