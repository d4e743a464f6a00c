"""Validation PSNR against training steps, from one or more `edgesr train` runs.

    python tests/benchmarks/plot_learning_curve.py runs/espcn_x4_long [RUN ...] --out curve.png
        [--title "..."]

Reads each run's ``log.jsonl`` (the ``val_psnr`` entries) and plots them on one axis, so whether a
schedule has flattened can be seen rather than guessed. Refuses to overwrite ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_time_to_quality import val_psnr_by_step  # noqa: E402


def val_curve(run: Path) -> list[tuple[int, float]]:
    """(step, validation PSNR-Y) of a run, in step order."""
    log = run / "log.jsonl"
    if not log.is_file():
        raise SystemExit(f"error: {log} not found; pass an `edgesr train` run directory")
    return sorted(val_psnr_by_step(run).items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists; choose another --out", file=sys.stderr)
        return 5
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for run in args.runs:
        curve = val_curve(run)
        if not curve:
            print(f"error: {run} logged no validation PSNR", file=sys.stderr)
            return 3
        steps, psnr = zip(*curve, strict=True)
        ax.plot([s / 1000 for s in steps], psnr, marker="o", label=run.name)
        for s, p in curve:
            print(f"{run.name}\t{s}\t{p:.3f}")
    ax.set_xlabel("training steps (thousands)")
    ax.set_ylabel("validation PSNR-Y (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    if args.title:
        ax.set_title(args.title, fontsize=10)
    fig.tight_layout()
    tmp = args.out.with_name(f".{args.out.name}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
