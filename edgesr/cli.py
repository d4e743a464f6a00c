"""The ``edgesr`` command line: a thin layer over the library API, one subcommand per stage.

Errors from edgesr are printed as one line (no traceback) and mapped to exit codes:
1 generic, 2 bad configuration/usage, 3 data, 4 model, 5 output exists, 6 missing package,
10 a budget line failed, 11 a required measurement is missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgesr import __version__
from edgesr.errors import ConfigError, EdgesrError
from edgesr.logs import quiet_third_party


def _add_recipe_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument(
        "--recipe",
        required=required,
        help="shipped recipe name (see `edgesr recipes`) or a path to a YAML file",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="typed recipe override, e.g. --set train.steps=2000 (repeatable)",
    )


def cmd_recipes(args: argparse.Namespace) -> int:
    from edgesr.archs import build_arch
    from edgesr.archs.complexity import complexity
    from edgesr.recipe import available_recipes, load_recipe

    rows = []
    for name in available_recipes():
        r = load_recipe(name)
        net = build_arch(
            r.model.arch, scale=r.model.scale, num_channels=r.model.num_channels, **r.model.params
        )
        c = complexity(net, lr_size=(270, 480))
        rows.append(
            (
                name,
                r.model.arch,
                f"x{r.model.scale}",
                r.model.color,
                f"{c['params']:,}",
                f"{c['gmacs']:.2f}",
                "yes" if r.model.weights else "no",
                r.description,
            )
        )
    if args.json:
        keys = (
            "name",
            "arch",
            "scale",
            "color",
            "params",
            "gmacs_270x480",
            "weights",
            "description",
        )
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return 0
    header = (
        "recipe",
        "arch",
        "scale",
        "color",
        "params",
        "GMACs@270x480",
        "weights",
        "description",
    )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    widths[-1] = 0
    for row in (header, *rows):
        print("  ".join(f"{str(v):<{w}}" for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from edgesr.recipe import load_recipe
    from edgesr.train import train

    recipe = load_recipe(args.recipe, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / recipe.name
    val = "recipe" if args.val is None else (None if args.val == "none" else args.val)
    with quiet_third_party(args.verbose) as output:
        result = train(
            recipe,
            args.data,
            out=out,
            val=val,
            resume=args.resume,
            force=args.force,
            progress=not args.no_progress,
            stream=output.stderr,
        )
    psnr = f", validation PSNR-Y {result.val_psnr:.2f} dB" if result.val_psnr is not None else ""
    print(f"trained {recipe.name} for {result.steps} steps in {result.wall_time_s:.0f} s{psnr}")
    print(f"weights: {result.model_path}")
    return 0


def _runner_for(args: argparse.Namespace):
    """The model to evaluate: --model PATH|bicubic, or the recipe's shipped weights."""
    from edgesr.modelio import load_model, load_pretrained
    from edgesr.recipe import load_recipe
    from edgesr.runtime.runners import OnnxRuntimeRunner, TorchRunner

    recipe = load_recipe(args.recipe, args.overrides) if args.recipe else None
    if args.model == "bicubic":
        return "bicubic"
    if args.model and Path(args.model).suffix.lower() == ".onnx":
        return OnnxRuntimeRunner(args.model, threads=args.threads)
    if args.model:
        model, info = load_model(args.model, recipe=recipe)
        name = Path(args.model).name
    elif recipe is not None:
        model, info = load_pretrained(recipe)
        name = f"{recipe.name} (shipped weights)"
    else:
        raise ConfigError(
            "evaluate needs --recipe NAME (shipped weights), --model PATH, or --model bicubic."
        )
    if recipe is not None and (info.scale != recipe.model.scale or info.arch != recipe.model.arch):
        raise ConfigError(
            f"{args.model} holds {info.arch} x{info.scale}, but recipe {recipe.name} is {recipe.model.arch} x{recipe.model.scale}."
        )
    return TorchRunner(model, scale=info.scale, color=info.color, name=name)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from edgesr.evaluate import evaluate, write_report_json

    if args.json:
        # Checked before the (slow) evaluation so a mistake costs nothing.
        from edgesr.outputs import refuse_existing

        refuse_existing(args.json, force=args.force, hint="or choose another --json path")
    runner = _runner_for(args)
    if runner != "bicubic" and args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if runner == "bicubic" and not args.scale:
        raise ConfigError("--model bicubic needs --scale N.")
    scale = args.scale
    if (
        runner != "bicubic"
        and runner.__class__.__name__ == "TorchRunner"
        and scale
        and scale != runner.scale
    ):
        raise ConfigError(f"--scale {scale} does not match the model's x{runner.scale}.")
    degradation: Any = args.degradation
    if degradation == "camera" and args.recipe:
        from edgesr.recipe import load_recipe

        # The recipe's own camera knobs: the frames the model was trained for.
        degradation = load_recipe(args.recipe, args.overrides).data.camera
    report = evaluate(
        runner,
        args.data,
        scale=scale or (runner.scale if runner != "bicubic" else None),
        save_dir=args.save_images,
        degradation=degradation,
        seed=args.seed,
    )
    lr_note = f"   LR: camera degradation, seed {args.seed}" if args.degradation == "camera" else ""
    print(f"model: {report.model}   scale: x{report.scale}   data: {args.data}{lr_note}")
    print(report.table())
    if args.json:
        write_report_json(report, args.json, force=args.force)
        print(f"wrote {args.json}")
    return 0


def _frame_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a frame size; write HEIGHTxWIDTH, e.g. 270x480"
        ) from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"'{text}': height and width must be positive")
    return h, w


def cmd_export(args: argparse.Namespace) -> int:
    from edgesr.export.stage import export
    from edgesr.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    out = Path(args.out) if args.out else Path("exports") / f"{recipe.name}-{args.target}"
    with quiet_third_party(args.verbose):
        result = export(
            recipe, target=args.target, out=out, from_=args.from_, sizes=args.size, force=args.force
        )
    for message in result.messages:
        print(message)
    for path in result.files:
        print(f"wrote {path}")
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    from edgesr.pipeline.compress import run_compress
    from edgesr.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / f"{recipe.name}-compress"
    with quiet_third_party(args.verbose) as output:
        run = run_compress(
            recipe,
            args.data,
            out=out,
            from_=args.from_,
            calib=args.calib,
            eval_data=args.eval,
            budget=args.budget,
            force=args.force,
            log=output.log,
        )
    print()
    print(run.summary())
    return run.exit_code


VERBOSE_HELP = "show third-party logs, warnings and progress bars (NNCF, torch, ONNX, OpenCV)"


def _add_verbose_arg(p: argparse.ArgumentParser) -> None:
    """`-v` after the subcommand too; SUPPRESS keeps a sub-parser from resetting `edgesr -v`."""
    p.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgesr", description="Edge deployment toolkit for image super-resolution."
    )
    parser.add_argument("--version", action="version", version=f"edgesr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("recipes", help="list the shipped recipes")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("train", help="train a recipe's net (embedded data by default)")
    _add_recipe_args(p)
    p.add_argument(
        "--data",
        help="training images: a folder (DIV2K layout or any images) or 'embedded' (default: the recipe's data.train)",
    )
    p.add_argument(
        "--val",
        help="validation images: a folder, 'embedded' or 'none' (default: the recipe's data.val)",
    )
    p.add_argument("--out", help="run directory (default: runs/<recipe>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its latest checkpoint"
    )
    p.add_argument("--force", action="store_true", help="replace an existing run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    _add_verbose_arg(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate", help="PSNR/SSIM (Y, standard protocol) of a model and bicubic on a folder"
    )
    _add_recipe_args(p, required=False)
    p.add_argument(
        "--model",
        help="weights (.safetensors or run dir), an .onnx file, or 'bicubic' (default: the recipe's shipped weights)",
    )
    p.add_argument(
        "--data",
        default="embedded",
        help="folder of HR images (default: the embedded validation set)",
    )
    p.add_argument("--scale", type=int, help="upscaling factor (default: the model's)")
    p.add_argument(
        "--degradation",
        choices=("bicubic", "camera"),
        default="bicubic",
        help="how LR frames are made: MATLAB bicubic (the benchmark protocol) or realistic "
        "camera blur/noise/JPEG (the recipe's data.camera knobs with --recipe)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the camera degradation")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--save-images", help="write the SR images into this folder")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "compress", help="prune, distil and quantize a trained net; a measured stage table"
    )
    _add_recipe_args(p)
    p.add_argument(
        "--from",
        dest="from_",
        help="FP32 checkpoint or train run (default: the recipe's shipped weights; trains first if it has none)",
    )
    p.add_argument(
        "--data",
        help="images for distillation and QAT: a folder or 'embedded' (default: the recipe's data.train)",
    )
    p.add_argument(
        "--calib",
        help="calibration set: a name from calibration/ or a folder of images (default: compress.calib)",
    )
    p.add_argument(
        "--eval",
        help="images the stage table is measured on: a folder or 'embedded' (default: compress.eval)",
    )
    p.add_argument(
        "--budget",
        help="end with `edgesr check` of the final stage against this budget (name or YAML path)",
    )
    p.add_argument("--out", help="run directory (default: runs/<recipe>-compress)")
    p.add_argument("--force", action="store_true", help="replace an existing run in --out")
    _add_verbose_arg(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("export", help="ONNX (verified against PyTorch) and TensorRT engines")
    _add_recipe_args(p)
    p.add_argument(
        "--from",
        dest="from_",
        help="checkpoint, train/compress run directory or .onnx (default: the recipe's shipped weights)",
    )
    p.add_argument("--target", choices=("onnx", "onnxruntime-cpu", "tensorrt"), default="onnx")
    p.add_argument(
        "--size",
        type=_frame_size,
        action="append",
        help="LR frame size HxW for TensorRT profiles (repeatable; default: the frame that upscales to 1080p)",
    )
    p.add_argument("--out", help="output folder (default: exports/<recipe>-<target>)")
    p.add_argument("--force", action="store_true", help="replace an existing export in --out")
    _add_verbose_arg(p)
    p.set_defaults(func=cmd_export)

    from edgesr.upscale.command import add_upscale_parser

    add_upscale_parser(sub, _add_recipe_args)

    from edgesr.pipeline.tune import add_tune_parser

    add_tune_parser(sub, _add_recipe_args)

    from edgesr.pipeline.check import add_check_parser, add_report_parser
    from edgesr.profile.cli_commands import add_profile_parser

    add_profile_parser(sub)
    add_check_parser(sub)
    add_report_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdgesrError as exc:
        print(f"edgesr {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"edgesr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
