"""Time-to-quality of a training schedule: minutes on this machine until Set5 reaches a target.

    python tests/benchmarks/bench_time_to_quality.py --out runs/ttq --json ttq.json --every 8000 \\
        --set data.batch_size=16 --set train.steps=64000 --set train.mse_finetune_steps=6000 \\
        [--recipe espcn_x4] [--data ../shared/data/train] [--threads 2] [--target 30.51] \\
        [--stop-after-min 2.5] [--eval-only]

Runs ``edgesr train`` (the real CLI, in its own process) with the recipe and ``--set``
overrides, keeping every checkpoint; afterwards scores each checkpoint on Set5 and Set14 (the
standard protocol of ``edgesr evaluate``) and prints one row per checkpoint: training minutes
(the run's own clock, saved in the checkpoint), steps, the validation PSNR the run logged
there, Set5, Set14. The time to quality is the first checkpoint at or above ``--target`` on
Set5. ``--stop-after-min`` interrupts a long schedule (Ctrl-C: the run checkpoints and stops),
so its step rate and early checkpoints can be measured without running all of it.
``--eval-only`` scores an existing run folder again without training.

Schedules must be chosen on the run's validation PSNR (embedded validation images), never on
these Set5/Set14 numbers: the benchmark sets only measure. The 1-minute load average before
and after the run goes into the JSON so a reader can see how quiet the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SETS = ("Set5", "Set14")
REPO = Path(__file__).resolve().parents[2]


def default_bench_root() -> Path:
    env = os.environ.get("EDGESR_SHARED_DATA")
    base = Path(env) if env else REPO.parent / "shared" / "data"
    return base / "benchmarks"


def train(args: argparse.Namespace) -> dict:
    """Run ``edgesr train`` in a child process; returns its wall time, exit code and load."""
    cmd = [sys.executable, "-m", "edgesr", "train", "--recipe", args.recipe, "--out", str(args.out)]
    cmd += ["--data", args.data, "--no-progress"]
    # Bookkeeping only (they do not change what is learned): keep every checkpoint so each
    # can be scored afterwards, at a fixed spacing.
    overrides = [*args.set, f"train.threads={args.threads}", "train.keep_checkpoints=100000"]
    if args.every:
        overrides.append(f"train.ckpt_every={args.every}")
    for item in overrides:
        cmd += ["--set", item]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO)
    try:
        proc.wait(timeout=args.stop_after_min * 60 if args.stop_after_min else None)
    except subprocess.TimeoutExpired:
        # Ctrl-C: the loop finishes its step, saves a checkpoint and exits with code 1.
        proc.send_signal(signal.SIGINT)
        proc.wait()
    wall = time.perf_counter() - t0
    return {
        "command": cmd,
        "returncode": proc.returncode,
        "stopped_early": bool(args.stop_after_min) and proc.returncode != 0,
        "process_wall_s": wall,
        "load1_before": load_before,
        "load1_after": os.getloadavg()[0],
    }


def val_psnr_by_step(run_dir: Path) -> dict[int, float]:
    """Validation PSNRs the run logged (log.jsonl), by step."""
    out = {}
    log = run_dir / "log.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("val_psnr") is not None:
                out[int(entry["step"])] = float(entry["val_psnr"])
    return out


def score_checkpoints(run_dir: Path, bench_root: Path, threads: int) -> list[dict]:
    """Set5/Set14 Y-PSNR of every checkpoint in ``run_dir``, oldest first."""
    import torch
    from safetensors.torch import load_file

    from edgesr.evaluate import evaluate
    from edgesr.modelio import build_from_recipe
    from edgesr.recipe import load_recipe
    from edgesr.runtime.runners import TorchRunner
    from edgesr.train.checkpoint import STATE_FILE, list_checkpoints

    torch.set_num_threads(threads)
    recipe = load_recipe(run_dir / "recipe.yaml")
    vals = val_psnr_by_step(run_dir)
    rows = []
    for ckpt in list_checkpoints(run_dir):
        state = json.loads((ckpt / STATE_FILE).read_text())
        net = build_from_recipe(recipe)
        net.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
        runner = TorchRunner(net, scale=recipe.model.scale, color=recipe.model.color)
        step = int(state["step"])
        row = {"step": step, "minutes": state["elapsed_s"] / 60, "val_psnr": vals.get(step)}
        for name in SETS:
            rep = evaluate(runner, bench_root / name, scale=recipe.model.scale, bicubic=False)
            row[name] = rep.mean["psnr_y"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder (must be new)")
    parser.add_argument("--json", type=Path, required=True, help="results (refuses to overwrite)")
    parser.add_argument("--recipe", default="espcn_x4")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"))
    parser.add_argument("--set", action="append", default=[], help="recipe override KEY=VALUE")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (train and eval)")
    parser.add_argument("--target", type=float, default=30.51, help="Set5 Y-PSNR to reach (dB)")
    parser.add_argument("--every", type=int, help="checkpoint every N steps (train.ckpt_every)")
    parser.add_argument("--stop-after-min", type=float, help="interrupt training after N minutes")
    parser.add_argument("--eval-only", action="store_true", help="score an existing --out")
    parser.add_argument("--bench-root", type=Path, default=default_bench_root())
    args = parser.parse_args(argv)

    for name in SETS:
        if not (args.bench_root / name).is_dir():
            print(f"error: {args.bench_root / name} not found; pass --bench-root", file=sys.stderr)
            return 3
    if args.json.exists():
        print(f"error: {args.json} exists; choose another --json path", file=sys.stderr)
        return 5
    if args.eval_only:
        if not (args.out / "recipe.yaml").is_file():
            print(f"error: {args.out} holds no run; drop --eval-only to train", file=sys.stderr)
            return 3
        run = None
    else:
        if args.out.exists() and any(args.out.iterdir()):
            print(f"error: {args.out} exists; choose a new --out", file=sys.stderr)
            return 5
        run = train(args)
        if run["returncode"] != 0 and not run["stopped_early"]:
            print(f"error: training failed (exit {run['returncode']})", file=sys.stderr)
            return run["returncode"]

    rows = score_checkpoints(args.out, args.bench_root, args.threads)
    reached = next((r for r in rows if r["Set5"] >= args.target), None)
    print(f"{'minutes':>8} {'steps':>7} {'val':>7} {'Set5':>7} {'Set14':>7}")
    for r in rows:
        val = f"{r['val_psnr']:7.2f}" if r["val_psnr"] is not None else f"{'—':>7}"
        print(f"{r['minutes']:8.2f} {r['step']:7d} {val} {r['Set5']:7.2f} {r['Set14']:7.2f}")
    if run:
        print(
            f"process wall {run['process_wall_s'] / 60:.2f} min; load (1 min) "
            f"{run['load1_before']:.2f} before, {run['load1_after']:.2f} after"
        )
    if reached:
        print(f"Set5 >= {args.target}: {reached['minutes']:.2f} min, {reached['step']} steps")
    else:
        print(f"Set5 >= {args.target}: not reached")
    result = {
        "recipe": args.recipe,
        "overrides": args.set,
        "threads": args.threads,
        "target_set5": args.target,
        "protocol": "Y, BT.601, shave=scale, MATLAB bicubic LR",
        "run": run,
        "rows": rows,
        "time_to_target": reached,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_name(args.json.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.json)  # never a half-written result under the final name
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
