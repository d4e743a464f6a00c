"""The ``profile`` subcommand.

``edgesr.cli`` registers it with ``add_profile_parser(sub)``, which sets ``func`` to a command
that takes the parsed namespace and returns an exit code (errors are raised as EdgesrError and
mapped by the caller). ``check`` and ``report``, which read profiles, are in
:mod:`edgesr.pipeline.check`.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgesr.errors import ConfigError
from edgesr.outputs import refuse_existing


def add_profile_parser(sub: Any) -> argparse.ArgumentParser:
    from edgesr.profile.backends import BACKENDS
    from edgesr.profile.minimal import add_common_arguments

    p = sub.add_parser(
        "profile",
        help="latency percentiles, throughput, power and energy per frame of a model",
        description=(
            "Warm-up, then timed runs of one model on one backend: p50/p90/p99, mean, std, "
            "throughput, power and energy per frame (when a sensor is readable), with the "
            "model's identity and the environment. On a device without torch use the "
            "single-file edgesr/profile/minimal.py, which writes the same JSON."
        ),
    )
    add_common_arguments(p, model_required=False)
    p.add_argument(
        "--backend",
        choices=list(BACKENDS),
        help="default: by suffix (.onnx onnxruntime, .engine/.plan tensorrt, .safetensors torch)",
    )
    p.add_argument(
        "--providers", help="ONNX Runtime execution providers, comma-separated (default CPU)"
    )
    p.add_argument("--data", help="also measure PSNR/SSIM on these images ('embedded' or a folder)")
    p.add_argument(
        "--list-probes",
        action="store_true",
        help="list the power probes and whether each works here",
    )
    p.set_defaults(func=cmd_profile)
    return p


def cmd_profile(args: argparse.Namespace) -> int:
    from edgesr.profile import minimal
    from edgesr.profile.errors import edgesr_errors
    from edgesr.profile.profiler import profile_model, write_profile_json

    if args.list_probes:
        from edgesr.profile.power import probe_table

        for row in probe_table():
            state = "available" if row["available"] else "unavailable"
            detail = row["source"] if row["available"] else row["detail"]
            print(f"{row['probe']:<11} {state:<12} {detail}")
        return 0
    if not args.model:
        raise ConfigError("profile needs --model PATH (or --list-probes).")
    with edgesr_errors():
        minimal.check_counts(args)
        options = minimal.ProfileOptions.from_args(args)
    if args.json:  # before the (slow) measurement, so a mistake costs nothing
        refuse_existing(args.json, force=args.force, hint="or choose another --json path")
    result = profile_model(args.model, options, data=args.data)
    print(minimal.format_result(result))
    if args.json:
        write_profile_json(result, args.json, force=args.force)
        print(f"wrote {args.json}")
    return 0
