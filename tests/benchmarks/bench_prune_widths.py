"""Which pruned widths buy most quality per unit of speed: the pruned front of one recipe.

    python tests/benchmarks/bench_prune_widths.py --recipe espcn_x4 --out runs/widths \
        --keep num_feat=32,num_feat2=16 --keep num_feat=24,num_feat2=24 [--keep ...] \
        [--data-root ../shared/data/benchmarks] [--threads 2] [--rounds 7] [--json out.json]
        [--set compress.kd_steps=4000 ...]

Per ``--keep`` (the kept channels of each prunable width, by the net's hyper-parameter name),
one ``edgesr compress`` run with the recipe's defaults for everything else, making only the pruned
net's models: pruned -> distilled -> pruned-int8-ort. Then, on images no stage saw (the sets of
``bench_front.py``: Set5, Set14, line art, the held-out embedded photos), the Y-PSNR difference
of the distilled net and of its INT8 model to the recipe's FP32 net; and every INT8 model timed
against FP32 in one interleaved timing (median of per-round ratios, with their range).

A uniform ratio is rarely the best trade: the layers neither cost nor carry the same. This
script shows the front so a width can be chosen (``compress.prune_layer_ratios``) by measurement.
Runs are kept in ``--out`` (one folder per width); an existing folder is refused, not replaced.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_front import _datasets, _psnr, default_root  # noqa: E402


def _parse_keep(text: str) -> dict[str, int]:
    try:
        pairs = [item.split("=") for item in text.split(",")]
        return {name.strip(): int(value) for name, value in pairs}
    except ValueError:
        raise SystemExit(
            f"error: --keep {text!r} must look like num_feat=32,num_feat2=16"
        ) from None


def _ratios(recipe: str, keep: dict[str, int]) -> dict[str, float]:
    """``prune_layer_ratios`` that keep ``keep`` channels of the recipe's widths."""
    from edgesr.archs import arch_params
    from edgesr.recipe import load_recipe

    r = load_recipe(recipe)
    widths = {**arch_params(r.model.arch), **r.model.params}
    out = {}
    for name, kept in keep.items():
        full = widths.get(name)
        if not isinstance(full, int) or not 0 < kept <= full:
            raise SystemExit(f"error: {name}={kept}: {recipe} has {name}={full!r}")
        out[name] = 1.0 - kept / full
    return out


def _compress(recipe: str, run: Path, ratios: dict[str, float], extra: list[str]) -> None:
    sets = [
        *extra,
        "compress.prune_ratio=0",
        *(f"compress.prune_layer_ratios.{k}={v!r}" for k, v in ratios.items()),
        "compress.int8_models=[pruned]",
        "compress.int8_targets=[onnxruntime-cpu]",
        "compress.ort_float_first_model=false",
        "compress.latency_runs=1",  # timed here, all widths together
    ]
    cmd = ["edgesr", "compress", "--recipe", recipe, "--out", str(run)]
    cmd += [a for s in sets for a in ("--set", s)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="espcn_x4")
    parser.add_argument(
        "--keep", action="append", required=True, help="e.g. num_feat=32,num_feat2=16"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the compress runs")
    parser.add_argument("--data-root", type=Path, default=default_root())
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs-per-round", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write results here (refuses to overwrite)")
    parser.add_argument(
        "--set", action="append", default=[], help="recipe override for every compress run"
    )
    args = parser.parse_args(argv)
    if args.json and args.json.exists():
        print(f"error: {args.json} exists; choose another --json path", file=sys.stderr)
        return 5
    configs = [_parse_keep(k) for k in args.keep]
    names = ["_".join(f"{k}-{v}" for k, v in c.items()) for c in configs]
    for name in names:
        if (args.out / name).exists():
            print(f"error: {args.out / name} exists; choose another --out", file=sys.stderr)
            return 5

    from edgesr.profile.latency import time_interleaved
    from edgesr.recipe import load_recipe
    from edgesr.runtime.runners import OnnxRuntimeRunner

    t0 = time.perf_counter()
    scale = load_recipe(args.recipe).model.scale
    sets = _datasets(args.data_root, scale)
    runs = {}
    for name, keep in zip(names, configs, strict=True):
        run = args.out / name
        _compress(args.recipe, run, _ratios(args.recipe, keep), args.set)
        runs[name] = run
        print(f"  {name}: compressed ({time.perf_counter() - t0:.0f} s)", flush=True)

    first = next(iter(runs.values()))
    fp32 = _psnr(first / "fp32.onnx", sets, scale)
    rows: dict[str, dict] = {}
    for name, run in runs.items():
        manifest = json.loads((run / "manifest.json").read_text())
        macs = {r["stage"]: r.get("gmacs") for r in manifest["stages"]}
        rows[name] = {
            "gmacs": macs.get("distilled"),
            "delta_distilled": {
                k: v - fp32[k] for k, v in _psnr(run / "distilled.onnx", sets, scale).items()
            },
            "delta_int8": {
                k: v - fp32[k] for k, v in _psnr(run / "pruned-int8-ort.onnx", sets, scale).items()
            },
        }
    models = [first / "fp32.onnx", *(run / "pruned-int8-ort.onnx" for run in runs.values())]
    size = tuple(json.loads((first / "manifest.json").read_text())["latency"]["size"])
    timing = time_interleaved(
        [partial(OnnxRuntimeRunner, m, threads=args.threads) for m in models],
        size=size,
        rounds=args.rounds,
        runs_per_round=args.runs_per_round,
        names=["fp32", *runs],
    )
    for name, sp, rg in zip(runs, timing.speedups[1:], timing.speedup_ranges[1:], strict=True):
        rows[name]["speedup"], rows[name]["speedup_range"] = sp, list(rg)

    print(
        f"{args.recipe}: pruned widths, Δ Y-PSNR (dB) vs FP32 (distilled / + INT8 ORT); "
        f"INT8 speed-up vs FP32, ORT {args.threads} threads, {args.rounds} interleaved rounds "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    print(f"{'widths':<28}{'GMACs':>7}" + "".join(f"{n:>18}" for n in sets) + f"{'speed-up':>20}")
    for name, row in rows.items():
        cells = "".join(
            f"{row['delta_distilled'][n]:+9.3f} /{row['delta_int8'][n]:+7.3f}" for n in sets
        )
        lo, hi = row["speedup_range"]
        gmacs = f"{row['gmacs']:7.2f}" if row["gmacs"] is not None else f"{'?':>7}"
        print(f"{name:<28}{gmacs}{cells}{row['speedup']:9.2f}x ({lo:.2f}-{hi:.2f})")
    print("timing:", timing.warning or "trusted (quiet machine, stable rounds)")
    if args.json:
        payload = {
            "recipe": args.recipe,
            "fp32_psnr_y": fp32,
            "widths": {
                name: {"keep": keep, **rows[name]}
                for name, keep in zip(names, configs, strict=True)
            },
            "threads": args.threads,
            "rounds": args.rounds,
            "timing_warning": timing.warning,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
