from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from edgesr.data.embedded import procedural_image
from edgesr.data.io import write_image
from edgesr.errors import ConfigError, EdgesrError, OutputExistsError
from edgesr.modelio import load_model, read_info
from edgesr.recipe import load_recipe
from edgesr.train import lr_at, train
from edgesr.train.checkpoint import latest_checkpoint, list_checkpoints
from edgesr.train.run import LrSchedule

TINY = [
    "data.lr_patch=12",
    "data.batch_size=8",
    "train.threads=1",
    "train.warmup_steps=0",
    "train.mse_finetune_steps=0",
    "train.log_every=5",
]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small folder of real PNG files (procedural images), so tests need no download."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, kind in enumerate(
        ["dead_leaves", "text", "gradient", "dead_leaves", "grating", "texture"]
    ):
        write_image(folder / f"img_{i}.png", procedural_image(kind, size=128, rng=rng))
    return folder


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_lr_schedule() -> None:
    spec = load_recipe(
        "espcn_x4", ["train.steps=100", "train.warmup_steps=10", "train.lr=1e-3", "train.lr_min=0"]
    ).train
    assert lr_at(5, spec) == pytest.approx(5e-4)
    assert lr_at(10, spec) == pytest.approx(1e-3)
    assert lr_at(55, spec) == pytest.approx(5e-4)
    assert lr_at(100, spec) == pytest.approx(0.0, abs=1e-12)
    multi = load_recipe(
        "espcn_x4",
        [
            "train.schedule=multistep",
            "train.milestones=[10, 20]",
            "train.gamma=0.1",
            "train.warmup_steps=0",
        ],
    ).train
    assert lr_at(10, multi) == pytest.approx(multi.lr)
    assert lr_at(11, multi) == pytest.approx(multi.lr * 0.1)
    assert lr_at(21, multi) == pytest.approx(multi.lr * 0.01)
    # The GAN loop's schedule: a cosine without warmup.
    cosine = LrSchedule(steps=100, lr=1e-3, lr_min=1e-5)
    assert lr_at(1, cosine) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + np.cos(np.pi / 100)))
    assert lr_at(100, cosine) == pytest.approx(1e-5)


@pytest.mark.parametrize("name", ["espcn_x2", "fsrcnn_x3", "anchornet_x4"])
def test_tiny_training_run_loss_drops(tmp_path: Path, image_dir: Path, name: str) -> None:
    recipe = load_recipe(
        name,
        [*TINY, "train.steps=60", "train.lr=3e-3", "train.val_every=30", "train.ckpt_every=30"],
    )
    result = train(recipe, str(image_dir), out=tmp_path / "run", val=str(image_dir), progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in log if "loss" in e]
    assert losses[-1] < 0.7 * losses[0], losses
    assert result.steps == 60 and result.val_psnr is not None and np.isfinite(result.val_psnr)
    info = read_info(result.model_path)
    assert (info.arch, info.scale, info.recipe) == (recipe.model.arch, recipe.model.scale, name)
    model, _ = load_model(result.model_path)
    x = torch.rand(1, 1, 9, 11)
    assert model(x).shape == (1, 1, 9 * info.scale, 11 * info.scale)
    assert len(list_checkpoints(tmp_path / "run")) <= recipe.train.keep_checkpoints


def test_in_memory_data_and_existing_run_protection(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = [procedural_image("dead_leaves", size=96, rng=rng) for _ in range(3)]
    recipe = load_recipe("espcn_x2", [*TINY, "train.steps=4"])
    out = tmp_path / "run"
    train(recipe, images, out=out, val=None, progress=False)
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(OutputExistsError, match="--resume"):
        train(recipe, images, out=out, val=None, progress=False)
    assert (out / "model.safetensors").read_bytes() == before  # nothing overwritten
    with pytest.raises(ConfigError, match="different recipe"):
        train(
            recipe.replace(["train.lr=0.5"]), images, out=out, val=None, resume=True, progress=False
        )
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(recipe, images, out=tmp_path / "empty", val=None, resume=True, progress=False)


def test_ctrl_c_checkpoints_and_resumes(tmp_path: Path) -> None:
    """A real SIGINT during step 1 lets the step finish, checkpoints it and stops with an
    EdgesrError (exit code 1); --resume then ends where an uninterrupted run ends."""
    rng = np.random.default_rng(2)
    images = [procedural_image("dead_leaves", size=96, rng=rng) for _ in range(3)]
    recipe = load_recipe("espcn_x2", [*TINY, "train.steps=6", "train.ckpt_every=100"])
    ref = tmp_path / "ref"
    train(recipe, images, out=ref, val=None, progress=False)

    class InterruptOnFirstStep(io.StringIO):
        def write(self, text: str) -> int:
            if "] 1/6 " in text:  # the first progress line
                signal.raise_signal(signal.SIGINT)
            return super().write(text)

    run = tmp_path / "run"
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(EdgesrError, match="interrupted at step 1.*--resume"):
        train(recipe, images, out=run, val=None, stream=InterruptOnFirstStep())
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001"]
    assert signal.getsignal(signal.SIGINT) is handler  # the previous handler is back
    train(recipe, images, out=run, val=None, resume=True, progress=False)
    a, b = _weights(ref / "model.safetensors"), _weights(run / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgesr", *args]


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path: Path, image_dir: Path) -> None:
    """A run killed with SIGKILL resumes from its last checkpoint and ends where an
    uninterrupted run ends: same weights (single thread, deterministic CPU kernels)."""
    sets = [*TINY, "train.steps=400", "train.ckpt_every=20", "train.val_every=1000"]
    flags = [f"--set={s}" for s in sets]
    ref = tmp_path / "ref"
    subprocess.run(
        _cli(
            "train",
            "--recipe",
            "espcn_x2",
            "--data",
            str(image_dir),
            "--val",
            "none",
            "--out",
            str(ref),
            "--no-progress",
            *flags,
        ),
        check=True,
        capture_output=True,
    )

    run = tmp_path / "run"
    proc = subprocess.Popen(
        _cli(
            "train",
            "--recipe",
            "espcn_x2",
            "--data",
            str(image_dir),
            "--val",
            "none",
            "--out",
            str(run),
            "--no-progress",
            *flags,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ckpt = latest_checkpoint(run)
        if ckpt is not None and int(ckpt.name.split("_")[1]) >= 60:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(run)
    assert killed_at is not None and not (run / "model.safetensors").exists(), (
        "the run finished before it was killed"
    )
    step = int(killed_at.name.split("_")[1])
    assert step < 400

    # Without --resume the interrupted run is protected.
    again = subprocess.run(
        _cli("train", "--recipe", "espcn_x2", "--data", str(image_dir), "--out", str(run), *flags),
        capture_output=True,
        text=True,
    )
    assert again.returncode == OutputExistsError.exit_code and "--resume" in again.stderr

    done = subprocess.run(
        _cli(
            "train",
            "--recipe",
            "espcn_x2",
            "--data",
            str(image_dir),
            "--val",
            "none",
            "--out",
            str(run),
            "--resume",
            "--no-progress",
            *flags,
        ),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    a, b = _weights(ref / "model.safetensors"), _weights(run / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path: Path, image_dir: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "edgesr", "train", "--recipe", "espcn_x2", "--data", str(image_dir), "--val", str(image_dir),
        "--out", str(out), "--no-progress",
        *[f"--set={s}" for s in [*TINY, "train.steps=30", "train.ckpt_every=10", "train.val_every=15"]],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 30
    state = json.loads((latest_checkpoint(out) / "state.json").read_text())
    assert set(state["sampler"]) == {"0", "1"}  # both ranks' data streams are checkpointed
    assert state["sampler"]["0"] != state["sampler"]["1"]
    model, info = load_model(out)
    assert info.scale == 2 and model(torch.rand(1, 1, 8, 8)).shape == (1, 1, 16, 16)
