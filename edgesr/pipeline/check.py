"""The ``check`` and ``report`` subcommands: does a model fit a device's budget, and the page
that shows it.

``edgesr.cli`` registers them with ``add_check_parser(sub)`` and ``add_report_parser(sub)``;
each sets ``func`` to a command that takes the parsed namespace and returns an exit code
(errors are raised as EdgesrError and mapped by the caller).

``check --model`` without ``--results`` profiles the model here and then checks it: a sequence
of two stages (:mod:`edgesr.profile`, then :mod:`edgesr.check`), which is why these commands
live in the pipeline package and not in either stage.

Exit codes of ``check``: 0 all lines pass, 10 a line fails (BudgetFailed), 11 a required
measurement is missing (MeasurementMissing); usage/data/model errors keep edgesr's codes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgesr.errors import ConfigError
from edgesr.outputs import refuse_existing

# --------------------------------------------------------------------------------------------
# check


def add_check_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "check",
        help="pass/fail of a model against a device budget, with margins",
        description=(
            "Check measurements against a budget: either result files (--results, e.g. the "
            "minimal profiler's JSON from the device, optionally tied to --model), or measure "
            "--model here (ONNX Runtime by default) on the budget's frame size and images. "
            "Exit 0: all lines pass; 10: a line fails; 11: a measurement is missing."
        ),
    )
    p.add_argument("--budget", help="shipped budget name (see --list) or a path to a YAML file")
    p.add_argument("--list", action="store_true", help="list the shipped budgets")
    p.add_argument(
        "--results",
        nargs="+",
        metavar="JSON",
        help="profile (edgesr profile --json) and/or evaluation (edgesr evaluate --json) files",
    )
    p.add_argument(
        "--model",
        help="the model: measured here without --results; with --results, they must be its",
    )
    p.add_argument(
        "--data",
        help="images for PSNR/SSIM ('embedded' or a folder; default: the budget's eval_data)",
    )
    p.add_argument(
        "--backend",
        help="backend to measure --model on: torch, onnxruntime, c, tensorrt (default: by suffix, "
        "onnxruntime for .onnx)",
    )
    p.add_argument(
        "--threads", type=int, help="CPU threads (default: the budget's, else the runtime's)"
    )
    p.add_argument("--runs", type=int, default=50, help="timed runs when measuring (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs when measuring (default 5)")
    p.add_argument("--power", default="auto", help="power probe when measuring (default auto)")
    p.add_argument("--power-rail", help="rail to report (default: the input rail, else the sum)")
    p.add_argument(
        "--size", default="270x480", help="LR frame when the budget names none (default 270x480)"
    )
    p.add_argument(
        "--allow-unmeasured",
        action="append",
        default=[],
        metavar="WHAT",
        help="let these lines go unmeasured without failing: a group (latency, power, quality, "
        "size), a limit name (e.g. energy_per_frame) or all; repeatable or comma-separated",
    )
    p.add_argument("--json", help="write the verdict (edgesr.check/1) to this file")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.set_defaults(func=cmd_check)
    return p


def _list_budgets() -> int:
    from edgesr.check.budget import available_budgets, load_budget

    for name in available_budgets():
        b = load_budget(name)
        print(f"{name:<28} {b.description}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from edgesr.check.budget import (
        LIMITS,
        check_budget,
        load_budget,
        measurements_from_results,
        parse_allowances,
        read_results,
        write_check_json,
    )
    from edgesr.profile.schema import identify

    if args.list:
        return _list_budgets()
    if not args.budget:
        raise ConfigError("check needs --budget NAME|PATH (see `edgesr check --list`).")
    budget = load_budget(args.budget)
    parse_allowances(args.allow_unmeasured)  # a typo fails now, not after measuring
    if not args.results and not args.model:
        raise ConfigError(
            "check needs --results JSON... (measured elsewhere) or --model PATH (measure here)."
        )
    if args.json:  # before any (slow) measurement
        refuse_existing(args.json, force=args.force, hint="or choose another --json path")
    identity = identify(args.model) if args.model else None
    docs: list[tuple[str, dict[str, Any]]] = read_results(args.results) if args.results else []
    groups: set[str] = {LIMITS[lim.key].group for lim in budget.limits}
    data = args.data or budget.eval_data or "embedded"
    if identity is not None and not args.results:
        docs.append(("measured now", _measure_here(args, budget, identity, groups, data)))
    elif identity is not None and args.data:
        docs.append(("evaluated now", _evaluate_here(args, identity, data)))
    m = measurements_from_results(docs, model=identity)
    result = check_budget(budget, m, allow_unmeasured=args.allow_unmeasured)
    print(result.table())
    if args.json:
        write_check_json([result], args.json, force=args.force)
        print(f"wrote {args.json}")
    result.raise_for_verdict()
    return 0


def _measure_here(
    args: argparse.Namespace, budget: Any, identity: dict[str, Any], groups: set[str], data: str
) -> dict[str, Any]:
    from edgesr.profile import minimal
    from edgesr.profile.errors import edgesr_errors
    from edgesr.profile.profiler import profile_model

    with edgesr_errors():
        size = (
            budget.frame.lr_size(identity.get("scale"))
            if budget.frame
            else minimal.parse_size(args.size)
        )
    if size is None:
        raise ConfigError(
            f"{args.model} carries no scale (edgesr.scale metadata), so the budget's "
            f"{budget.frame.describe()} frame has no input size; export the model with `edgesr export`."
        )
    with edgesr_errors():
        backend = args.backend or minimal.default_backend(Path(args.model))
    threads = args.threads or budget.threads
    if budget.backend and budget.backend != backend and groups & {"latency", "power"}:
        print(
            f"note: budget {budget.name} needs {budget.backend} measurements; latency and power "
            f"measured here on {backend} will not count (profile on the device, pass --results)."
        )
    print(
        f"measuring {Path(args.model).name} on {backend} at LR {size[0]}x{size[1]}"
        + (f", {threads} threads" if threads else "")
        + (f"; quality on {data}" if "quality" in groups else ""),
        flush=True,
    )
    options = minimal.ProfileOptions(
        backend=backend,
        size=size,
        threads=threads,
        runs=args.runs,
        warmup=args.warmup,
        power=args.power,
        power_rail=args.power_rail,
    )
    return profile_model(args.model, options, data=data if "quality" in groups else None)


def _evaluate_here(args: argparse.Namespace, identity: dict[str, Any], data: str) -> dict[str, Any]:
    from edgesr.profile import minimal
    from edgesr.profile.backends import make_runner
    from edgesr.profile.errors import edgesr_errors
    from edgesr.profile.profiler import evaluate_quality

    with edgesr_errors():
        backend = args.backend or minimal.default_backend(Path(args.model))
    q = evaluate_quality(make_runner(backend, args.model, threads=args.threads), data)
    # The shape of `edgesr evaluate --json`, plus the images it was measured on.
    return {
        "scale": q["scale"],
        "model": identity.get("name"),
        "images": [],
        "mean": {"psnr_y": q["psnr_y"], "ssim_y": q["ssim_y"]},
        "bicubic": q["bicubic"],
        "data": data,
    }


# --------------------------------------------------------------------------------------------
# report


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page about a compress run",
        description=(
            "Stage table, PSNR-vs-latency plot, budget verdicts and side-by-side crops of a "
            "compress run, as a single HTML file with everything inline."
        ),
    )
    p.add_argument("run_dir", help="a run directory written by `edgesr compress`")
    p.add_argument("--out", help="HTML file to write (default: RUN_DIR/report.html)")
    p.add_argument(
        "--check", help="an edgesr.check/1 file (default: RUN_DIR/check.json if present)"
    )
    p.add_argument("--budget", help="check the stages against this budget now instead")
    p.add_argument(
        "--crops", type=int, default=3, help="evaluation images to show crops of (default 3)"
    )
    p.add_argument("--screenshot", help="also render the page to this PNG with headless Chromium")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from edgesr.check.report import screenshot, write_report

    if args.check and args.budget:
        raise ConfigError("pass --check FILE or --budget NAME, not both.")
    if args.crops < 0:
        raise ConfigError("--crops must not be negative.")
    out = write_report(
        args.run_dir,
        args.out,
        check=args.check,
        budget=args.budget,
        crops=args.crops,
        force=args.force,
    )
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    if args.screenshot:
        print(f"rendered {screenshot(out, args.screenshot)}")
    return 0
