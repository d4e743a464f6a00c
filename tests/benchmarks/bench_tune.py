"""An `edgesr tune` run's front against the recipe's own parameters, re-measured.

    python tests/benchmarks/bench_tune.py TUNE_DIR [--data-root ../shared/data/benchmarks]
        [--size 270x480] [--threads 2] [--rounds 7] [--runs 10] [--json out.json]

For the baseline trial (the recipe's own parameters, trial 0) and every Pareto trial:

* latency: all models in one interleaved timing (``edgesr.profile.latency.time_interleaved``:
  rounds, a new ORT session per model per round), with more rounds than a trial's quick timing;
  the ratio to the baseline is the median of per-round ratios, with its range, and the timing's
  own verdict on whether the machine was quiet enough;
* GMACs per frame (noise-free cost);
* Y-PSNR on the validation images the study scored (from trials.json) and on Set5 and Set14,
  which the study never saw (measurement only: nothing is trained, tuned or picked on them).
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tune_dir", type=Path)
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data/benchmarks"))
    ap.add_argument("--size", default="270x480", help="LR frame HxW")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from edgesr.archs.complexity import complexity
    from edgesr.evaluate import evaluate, resolve_eval_data
    from edgesr.modelio import build_from_recipe
    from edgesr.profile.latency import time_interleaved
    from edgesr.recipe import load_recipe
    from edgesr.runtime.runners import OnnxRuntimeRunner

    h, w = (int(v) for v in args.size.lower().split("x"))
    trials = {t["number"]: t for t in json.loads((args.tune_dir / "trials.json").read_text())}
    front = [t["number"] for t in json.loads((args.tune_dir / "pareto.json").read_text())]
    base = [n for n, t in trials.items() if t["baseline"] and t["state"] == "COMPLETE"]
    if not base:
        sys.exit("no complete baseline trial (the recipe's own parameters) in trials.json")
    numbers = base + [n for n in front if n != base[0]]
    models = [args.tune_dir / "trials" / f"{n:04d}" / "model.onnx" for n in numbers]
    recipes = [
        load_recipe(args.tune_dir / "trials" / f"{n:04d}" / "run" / "recipe.yaml") for n in numbers
    ]

    timing = time_interleaved(
        [partial(OnnxRuntimeRunner, m, threads=args.threads) for m in models],
        size=(h, w),
        rounds=args.rounds,
        runs_per_round=args.runs,
        names=[f"trial {n}" for n in numbers],
    )
    sets = [s for s in ("Set5", "Set14") if (args.data_root / s).is_dir()]
    rows = []
    for i, (n, model, recipe) in enumerate(zip(numbers, models, recipes, strict=True)):
        psnr = {}
        for s in sets:
            pairs = resolve_eval_data(args.data_root / s, scale=recipe.model.scale)
            runner = OnnxRuntimeRunner(model, threads=args.threads)
            psnr[s] = evaluate(runner, pairs, bicubic=False).mean["psnr_y"]
        lo, hi = timing.speedup_ranges[i]
        rows.append(
            {
                "trial": n,
                "baseline": n == base[0],
                "params": trials[n]["params"],
                "val_psnr_y": trials[n]["psnr_y"],
                "psnr_y": psnr,
                "latency_p50_ms": timing.stats[i].p50_ms,
                # Latency over the baseline's, per round: the median and range of the ratios.
                "latency_vs_baseline": 1.0 / timing.speedups[i],
                "latency_vs_baseline_range": [1.0 / hi, 1.0 / lo],
                "gmacs": float(complexity(build_from_recipe(recipe), lr_size=(h, w))["gmacs"]),
            }
        )

    b = rows[0]
    table = [
        ["trial", "val dB", *(f"{s} dB" for s in sets), "ms p50", "vs recipe", "range", "GMACs"]
    ]
    for r in rows:
        lo, hi = r["latency_vs_baseline_range"]
        table.append(
            [
                f"{r['trial']}{' (recipe)' if r['baseline'] else ''}",
                f"{r['val_psnr_y']:.2f}",
                *(f"{r['psnr_y'][s]:.2f}" for s in sets),
                f"{r['latency_p50_ms']:.1f}",
                f"{r['latency_vs_baseline']:.2f}x",
                f"{lo:.2f}-{hi:.2f}x",
                f"{r['gmacs']:.2f}",
            ]
        )
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    for r in rows[1:]:
        gains = ", ".join(f"{s} {r['psnr_y'][s] - b['psnr_y'][s]:+.2f} dB" for s in sets)
        print(
            f"trial {r['trial']} vs the recipe: val {r['val_psnr_y'] - b['val_psnr_y']:+.2f} dB, {gains}"
        )
    verdict = timing.warning or "ratios trusted (quiet machine, narrow spread)"
    print(
        f"timing: {args.rounds} rounds x {args.runs} runs, {args.threads} threads, LR {h}x{w}; {verdict}"
    )
    if args.json:
        doc = {"rows": rows, "timing_warning": timing.warning, "other_cores": timing.other_cores}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
