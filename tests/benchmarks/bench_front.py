"""The speed/quality front of a compress run, on images no stage of it saw.

    python tests/benchmarks/bench_front.py RUN_DIR [--data-root ../shared/data/benchmarks]
        [--threads 2] [--rounds 7] [--avx2] [--json out.json]

Per model of ``RUN_DIR/manifest.json``, mean Y-PSNR (standard SR protocol, ORT's default fused
session on this CPU) and its difference to the run's FP32 model on:

* ``Set5``, ``Set14``: the benchmark sets (measurement only: never trained, tuned or picked on);
* ``lineart``: Set14's drawn images (comic, ppt3), where INT8 and pruning lose most;
* ``photos``: the natural photos held out of the embedded data (coffee, rocket, gravel), which
  the default run never trains, calibrates or picks on;
* ``synthetic``: the embedded validation split's procedural images.

Latency: every ORT-CPU model in one interleaved timing (``edgesr.profile.latency.
time_interleaved``: rounds, a new session per model per round), speed-ups as the median of
per-round ratios to FP32 with their range, and the timing's own verdict on whether the machine was
quiet enough. TensorRT-layout models are not timed (their CPU time says nothing about a Jetson).
``--avx2`` adds each INT8 model's Set5/Set14 PSNR on an emulated CPU without VNNI (qemu-user,
``-cpu Haswell``), where ONNX Runtime's u8 x s8 kernels saturate unless the weights allow it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

LINEART = ("comic", "ppt3")


def default_root() -> Path:
    env = os.environ.get("EDGESR_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return base / "benchmarks"


def _datasets(root: Path, scale: int) -> dict[str, list]:
    from edgesr.data.embedded import SKIMAGE_VAL
    from edgesr.evaluate import resolve_eval_data

    embedded = resolve_eval_data("embedded", scale=scale)
    photos = {n.rsplit(".", 1)[0] for n in SKIMAGE_VAL}
    sets = {name: resolve_eval_data(str(root / name), scale=scale) for name in ("Set5", "Set14")}
    sets["lineart"] = [p for p in sets["Set14"] if Path(p.name).stem in LINEART]
    sets["photos"] = [p for p in embedded if Path(p.name).stem in photos]
    sets["synthetic"] = [p for p in embedded if Path(p.name).stem not in photos]
    for name, pairs in sets.items():
        if not pairs:
            raise SystemExit(
                f"error: no images for '{name}' (looked in {root} and the embedded set)"
            )
    return sets


def _psnr(model: Path, sets: dict[str, list], scale: int) -> dict[str, float]:
    from edgesr.evaluate import evaluate
    from edgesr.runtime.runners import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(model, threads=2)
    return {
        name: evaluate(runner, pairs, scale=scale, bicubic=False).mean["psnr_y"]
        for name, pairs in sets.items()
    }


def _psnr_avx2(model: Path, root: Path) -> dict[str, float]:
    """Set5/Set14 PSNR of ORT's default session on an emulated Haswell (no VNNI)."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        raise SystemExit("error: --avx2 needs qemu-user (apt-get install qemu-user)")
    child = Path(__file__).with_name("bench_int8_cpus.py")
    cmd = [qemu, "-cpu", "Haswell", sys.executable, str(child), str(model), "--child", "psnr"]
    cmd += ["--mode", "here", "--data", str(root / "Set5"), "--data", str(root / "Set14")]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"error: the emulated run failed:\n{done.stderr[-2000:]}")
    got = json.loads(done.stdout.splitlines()[-1])
    return {Path(k).name: v for k, v in got.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="an `edgesr compress` run directory")
    parser.add_argument("--data-root", type=Path, default=default_root())
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs-per-round", type=int, default=10)
    parser.add_argument("--avx2", action="store_true", help="also PSNR on an emulated AVX2 CPU")
    parser.add_argument("--json", type=Path, help="write results here (refuses to overwrite)")
    args = parser.parse_args(argv)
    if args.json and args.json.exists():
        print(f"error: {args.json} exists; choose another --json path", file=sys.stderr)
        return 5
    manifest_path = args.run / "manifest.json"
    if not manifest_path.is_file():
        print(f"error: {manifest_path} not found; pass an `edgesr compress` run", file=sys.stderr)
        return 3

    from edgesr.profile.latency import time_interleaved
    from edgesr.runtime.runners import OnnxRuntimeRunner

    manifest = json.loads(manifest_path.read_text())
    rows = manifest["stages"]
    from edgesr.export.onnx_export import read_onnx_metadata

    scale = int(read_onnx_metadata(args.run / rows[0]["onnx"])["edgesr.scale"])
    t0 = time.perf_counter()
    sets = _datasets(args.data_root, scale)
    psnr = {r["stage"]: _psnr(args.run / r["onnx"], sets, scale) for r in rows}
    avx2 = {}
    if args.avx2:
        for r in rows:
            if "int8" in r["stage"]:
                avx2[r["stage"]] = _psnr_avx2(args.run / r["onnx"], args.data_root)

    timed = [r for r in rows if r["target"] != "tensorrt"]
    size = tuple(manifest["latency"]["size"]) if manifest.get("latency") else (270, 480)
    timing = time_interleaved(
        [partial(OnnxRuntimeRunner, args.run / r["onnx"], threads=args.threads) for r in timed],
        size=size,
        rounds=args.rounds,
        runs_per_round=args.runs_per_round,
        names=[r["stage"] for r in timed],
    )
    lat = {
        r["stage"]: {"p50_ms": s.p50_ms, "speedup": sp, "speedup_range": list(rg)}
        for r, s, sp, rg in zip(
            timed, timing.stats, timing.speedups, timing.speedup_ranges, strict=True
        )
    }

    base = psnr[rows[0]["stage"]]
    names = list(sets)
    print(
        f"{args.run}: Y-PSNR (dB) and Δ vs {rows[0]['stage']}; ORT {args.threads} threads, LR "
        f"{size[0]}x{size[1]}, {args.rounds} interleaved rounds ({time.perf_counter() - t0:.0f} s)"
    )
    print(f"{'model':<21}" + "".join(f"{n:>17}" for n in names) + f"{'p50 ms':>9}{'speed-up':>18}")
    for r in rows:
        st = r["stage"]
        cells = "".join(f"{psnr[st][n]:9.3f} ({psnr[st][n] - base[n]:+.3f})" for n in names)
        if st in lat:
            lo, hi = lat[st]["speedup_range"]
            speed = f"{lat[st]['p50_ms']:9.2f}{lat[st]['speedup']:7.2f}x ({lo:.2f}-{hi:.2f})"
        else:
            speed = f"{'device':>9}{'—':>18}"
        print(f"{st:<21}{cells}{speed}")
    for st, got in avx2.items():
        print(
            f"  {st} on AVX2 (no VNNI): "
            + ", ".join(f"{k} {v:.3f} ({v - psnr[st][k]:+.3f} vs this CPU)" for k, v in got.items())
        )
    print("timing:", timing.warning or "trusted (quiet machine, stable rounds)")
    if args.json:
        payload = {
            "run": str(args.run),
            "sets": {n: [p.name for p in pairs] for n, pairs in sets.items()},
            "psnr_y": psnr,
            "delta_vs_fp32": {st: {n: psnr[st][n] - base[n] for n in names} for st in psnr},
            "psnr_y_avx2": avx2,
            "latency": lat,
            "latency_settings": {
                "size": list(size),
                "threads": args.threads,
                "rounds": args.rounds,
            },
            "timing_warning": timing.warning,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
