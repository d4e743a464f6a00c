"""Ship a finished training run as a recipe's packaged weights, with its model card.

    python tests/benchmarks/ship_weights.py runs/espcn_x4 [--data-root ../shared/data/benchmarks]

Copies ``RUN/model.safetensors`` to ``edgesr/weights/<recipe>.safetensors``, writes
``edgesr/weights/<recipe>.md`` (command, data, steps, wall time, Set5/Set14 scores) and sets
``model.weights`` in ``recipes/<recipe>.yaml``. Refuses to replace shipped weights unless --force.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from edgesr.archs.complexity import complexity
from edgesr.evaluate import evaluate
from edgesr.modelio import WEIGHTS_DIR, load_model, read_info
from edgesr.recipe import load_recipe
from edgesr.runtime.runners import TorchRunner

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument(
        "--data-root", type=Path, default=REPO.parent / "shared" / "data" / "benchmarks"
    )
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)

    weights = args.run / "model.safetensors"
    info = read_info(weights)
    summary = json.loads((args.run / "train_summary.json").read_text())
    recipe = load_recipe(info.recipe)
    if recipe.hash() != info.recipe_hash:
        print(
            f"error: {weights} was trained with a different {info.recipe} recipe ({info.recipe_hash} != {recipe.hash()})",
            file=sys.stderr,
        )
        return 2
    target = WEIGHTS_DIR / f"{recipe.name}.safetensors"
    if target.exists() and not args.force:
        print(f"error: {target} exists; pass --force to replace it", file=sys.stderr)
        return 5

    model, _ = load_model(weights)
    scores = {}
    for set_name in ("Set5", "Set14"):
        runner = TorchRunner(model, scale=info.scale, color=info.color, name=recipe.name)
        rep = evaluate(runner, args.data_root / set_name, scale=info.scale)
        scores[set_name] = (rep.mean["psnr_y"], rep.mean["ssim_y"], rep.bicubic["psnr_y"])
    c = complexity(model, lr_size=(270, 480))

    shutil.copyfile(weights, target)
    data = summary["train_data"]
    data_arg = "../shared/data/train" if data.endswith("shared/data/train") else data
    lr_made = "LR by MATLAB bicubic"
    steps = (
        f"{summary['steps']:,} (batch {recipe.data.batch_size}, LR patch {recipe.data.lr_patch})"
    )
    if recipe.data.degradation == "camera":
        lr_made = "LR by the recipe's camera degradations (data.camera), drawn afresh per patch"
    if recipe.gan is not None:
        # The pixel-loss phase ships beside the GAN generator: the baseline to compare with.
        pixel = WEIGHTS_DIR / f"{recipe.name}.pixel.safetensors"
        shutil.copyfile(args.run / summary["pretrain"]["model"], pixel)
        steps = (
            f"{summary['pretrain']['steps']:,} pixel-loss (batch {recipe.data.batch_size}) + "
            f"{summary['gan']['steps']:,} adversarial (batch {recipe.gan.batch_size or recipe.data.batch_size}), "
            f"LR patch {recipe.data.lr_patch}; perceptual features: {summary['perceptual']}; "
            f"pixel-loss model: `{pixel.name}`"
        )
    card = (
        f"""# {recipe.name}

{recipe.description}

| | |
|---|---|
| architecture | `{info.arch}` {json.dumps(info.params)} (deployed form: `model.fuse()`) |
| scale / colour | x{info.scale} / {"Y (BT.601 studio range, [0,1])" if info.color == "y" else "RGB [0,1]"} |
| params / MACs at 270x480 LR | {c["params"]:,} / {c["gmacs"]:.2f} G (deployed form) |
| recipe hash | `{info.recipe_hash}` |
| training data | {data_arg}: T91 (91 images), General100 (100), BSD200 (BSDS300 train+val, 200) — HR PNGs, {lr_made} |
| validation during training | embedded validation split (scikit-image photos + procedural images) |
| steps | {steps} |
| wall time | {summary["wall_time_s"] / 60:.1f} min on 1 CPU thread (torch {summary["torch_version"]}), sharing a 2-core machine with a second training |

Command (from the repository root, with the public SR training sets in `../shared/data/train`):

```bash
edgesr train --recipe {recipe.name} --data {data_arg} --out runs/{recipe.name} --set train.threads=1
```

Scores (Y-PSNR dB / SSIM, standard protocol, `edgesr evaluate --recipe {recipe.name} --data SET`); the
benchmark sets were used only for this measurement, never for training or tuning:

| set | PSNR-Y | SSIM-Y | bicubic PSNR-Y |
|---|---|---|---|
"""
        + "\n".join(f"| {k} | {v[0]:.2f} | {v[1]:.4f} | {v[2]:.2f} |" for k, v in scores.items())
        + "\n"
    )
    (WEIGHTS_DIR / f"{recipe.name}.md").write_text(card)

    recipe_file = REPO / "recipes" / f"{recipe.name}.yaml"
    text = recipe_file.read_text()
    line = f"  weights: {recipe.name}.safetensors"
    if re.search(r"^  weights:.*$", text, flags=re.M):
        text = re.sub(r"^  weights:.*$", line, text, flags=re.M)
    else:
        text = re.sub(r"^(  params: .*)$", r"\1\n" + line, text, count=1, flags=re.M)
    recipe_file.write_text(text)
    print(f"shipped {target} ({scores})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
