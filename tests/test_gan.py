"""GAN training: discriminators, RaGAN and perceptual losses, the two-phase run and its resume."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from edgesr.archs import (
    ARCHS,
    DISCRIMINATORS,
    AnchorNet,
    UNetDiscriminator,
    build_discriminator,
)
from edgesr.data.embedded import procedural_image
from edgesr.errors import ConfigError, EdgesrError, ModelError, OutputExistsError
from edgesr.modelio import WEIGHTS_DIR, load_model, read_info
from edgesr.recipe import GanSpec, dump_recipe, load_recipe
from edgesr.train import train
from edgesr.train.checkpoint import latest_checkpoint, list_checkpoints
from edgesr.train.gan import build_gan_discriminator, ema_update
from edgesr.train.losses import (
    VGG19_ENV,
    VGG19_LAYERS,
    PerceptualLoss,
    phase_loss,
    ragan_d_loss,
    ragan_g_loss,
)

# A tiny x4 RGB AnchorNet and a GAN phase cheap enough for CPU tests.
TINY_GAN = [
    "model.color=rgb",
    "model.params={num_feat: 8, num_blocks: 1}",
    "data.lr_patch=8",
    "data.batch_size=4",
    "train.steps=20",
    "train.threads=1",
    "train.warmup_steps=0",
    "train.mse_finetune_steps=0",
    "train.log_every=5",
    "train.keep_checkpoints=5",
    "gan.steps=10",
    "gan.val_every=5",
    "gan.ckpt_every=4",
    "gan.g_lr=1e-3",
    "gan.d_lr=1e-3",
    "gan.disc_params={num_feat: 8}",
    "gan.perceptual_layers=[conv1_2, conv2_2]",
    "gan.perceptual_layer_weights=[1, 1]",
]


def _recipe(*extra: str):
    return load_recipe("anchornet_x4", [*TINY_GAN, *extra])


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [procedural_image(k, size=96, rng=rng) for k in ("dead_leaves", "texture", "text")]


@pytest.fixture(scope="module")
def ref_run(tmp_path_factory: pytest.TempPathFactory, images: list[np.ndarray]) -> Path:
    """One uninterrupted tiny GAN run, shared by the tests that inspect or compare with it."""
    out = tmp_path_factory.mktemp("gan") / "run"
    train(_recipe(), images, out=out, val=images[:1], progress=False, stream=io.StringIO())
    return out


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _assert_same(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


def _assert_same_run(ref: Path, run: Path, step: int) -> None:
    """Same exported EMA, and same G, D (with spectral-norm vectors) and EMA at ``step``."""
    _assert_same(ref / "model.safetensors", run / "model.safetensors")
    for name in ("g", "d", "ema"):
        ckpt = f"checkpoints/step_{step:08d}/model.{name}.safetensors"
        _assert_same(ref / ckpt, run / ckpt)


# ------------------------------------------------------------------------------ architectures


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(17, 23), (32, 32), (5, 3)])
def test_discriminator_output_shapes(name: str, channels: int, size: tuple[int, int]) -> None:
    d = build_discriminator(name, num_channels=channels, num_feat=8)
    h, w = size
    out = d(torch.rand(2, channels, h, w))
    expected = (2, 1, h, w) if name == "unet" else (2, 1, math.ceil(h / 8), math.ceil(w / 8))
    assert out.shape == expected
    assert torch.isfinite(out).all()


def test_generator_output_shape_odd_size() -> None:
    g = AnchorNet(scale=4, num_channels=3, num_feat=48, num_blocks=6)
    assert 140_000 < sum(p.numel() for p in g.parameters()) < 180_000
    assert g(torch.rand(1, 3, 13, 7)).shape == (1, 3, 52, 28)


def test_unet_discriminator_is_spectrally_normalised() -> None:
    torch.manual_seed(0)
    d = UNetDiscriminator(num_channels=3, num_feat=8)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    normed = [c for c in convs if parametrize.is_parametrized(c, "weight")]
    assert len(normed) == 7  # 3 down, 3 up, 1 refine; input and output convs stay plain
    # Power iteration (one per training forward) drives each weight's spectral norm to 1.
    x = torch.rand(1, 3, 16, 16)
    for _ in range(30):
        d(x)
    for conv in normed:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, rel=0.05)


def test_discriminator_registry() -> None:
    assert not set(DISCRIMINATORS) & set(ARCHS)  # never offered as a deployable net
    with pytest.raises(ConfigError, match="unknown discriminator 'patchgan'.*unet"):
        build_discriminator("patchgan")
    with pytest.raises(ConfigError, match="num_blocks.*valid parameters.*num_feat=32"):
        build_discriminator("unet", num_blocks=3)
    with pytest.raises(ConfigError, match="invalid parameters"):
        build_discriminator("unet", num_feat=0)


# ---------------------------------------------------------------------------------- losses


def test_ragan_losses_hand_computed() -> None:
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])
    # real - mean(fake) = [0, 2]; fake - mean(real) = [-2, 0]
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731  softplus: BCE(z, 1) = sp(-z)
    d_expected = 0.5 * ((sp(-0) + sp(-2)) / 2 + (sp(-2) + sp(0)) / 2)
    g_expected = 0.5 * ((sp(0) + sp(2)) / 2 + (sp(2) + sp(0)) / 2)
    assert float(ragan_d_loss(real, fake)) == pytest.approx(d_expected, rel=1e-6)
    assert float(ragan_g_loss(real, fake)) == pytest.approx(g_expected, rel=1e-6)
    assert d_expected == pytest.approx(0.410038, abs=1e-6)
    assert g_expected == pytest.approx(1.410038, abs=1e-6)


def test_ragan_sign_behaviour() -> None:
    hi, lo = torch.full((2, 1, 4, 4), 4.0), torch.full((2, 1, 4, 4), -4.0)
    # D that tells real from fake: low D loss, high G loss; fooled D: the opposite.
    assert ragan_d_loss(hi, lo) < 0.01 < 4.0 < ragan_g_loss(hi, lo)
    assert ragan_d_loss(lo, hi) > 4.0 > 0.01 > ragan_g_loss(lo, hi)
    equal = torch.zeros(3)
    assert float(ragan_d_loss(equal, equal)) == pytest.approx(math.log(2))
    # G gains by raising its fakes' logits, D by lowering them.
    fake = torch.zeros(3, requires_grad=True)
    ragan_g_loss(torch.ones(3), fake).backward()
    assert (fake.grad < 0).all()
    fake.grad = None
    ragan_d_loss(torch.ones(3), fake).backward()
    assert (fake.grad > 0).all()


def test_perceptual_loss_zero_positive_and_gradients() -> None:
    loss_fn = PerceptualLoss(("conv1_2", "relu2_2", "conv3_1"), (1.0, 0.5, 0.25))
    assert loss_fn.random_weights and not loss_fn.training
    assert all(not p.requires_grad for p in loss_fn.parameters())
    loss_fn.train()  # a fixed feature extractor: stays in eval mode
    assert not loss_fn.training
    torch.manual_seed(0)
    target = torch.rand(2, 3, 20, 20)
    assert float(loss_fn(target.clone(), target)) == 0.0
    x = (target + 0.05 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    loss = loss_fn(x, target)
    assert float(loss.detach()) > 0
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss_fn.parameters())
    # Y input is the same as its grey RGB.
    y, ty = x.detach()[:, :1], target[:, :1]
    assert torch.allclose(loss_fn(y, ty), loss_fn(y.repeat(1, 3, 1, 1), ty.repeat(1, 3, 1, 1)))


def test_perceptual_random_weights_fixed_and_leave_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = PerceptualLoss(), PerceptualLoss()  # default layers, up to conv5_4
    assert torch.equal(torch.random.get_rng_state(), before)
    assert len(a.features) == VGG19_LAYERS.index("conv5_4") + 1 == 35
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a.features[0].weight, PerceptualLoss(seed=1).features[0].weight)
    x, t = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    assert float(a(x, t)) > 0


def _fake_vgg19_state(num_layers: int) -> dict[str, torch.Tensor]:
    """torchvision's key format: features.N.weight/bias for the first convs, plus a classifier."""
    gen = torch.Generator().manual_seed(7)
    state, in_ch = {}, 3
    for i, name in enumerate(VGG19_LAYERS[:num_layers]):
        if name.startswith("conv"):
            out_ch = {1: 64, 2: 128, 3: 256}[int(name[4])]
            state[f"features.{i}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=gen)
            state[f"features.{i}.bias"] = torch.randn(out_ch, generator=gen)
            in_ch = out_ch
    state["classifier.0.weight"] = torch.randn(4, 4, generator=gen)  # ignored
    return state


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_perceptual_loads_local_torchvision_state(tmp_path: Path, suffix: str) -> None:
    state = _fake_vgg19_state(12)
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    loss_fn = PerceptualLoss(("conv1_2", "conv3_1"), (1.0, 1.0), weights=path)
    assert not loss_fn.random_weights and str(path.resolve()) in loss_fn.source
    for key in ("features.0.weight", "features.7.bias", "features.10.weight"):
        assert torch.equal(loss_fn.state_dict()[key], state[key])
    assert len(loss_fn.features) == 11  # truncated after conv3_1


def test_perceptual_weight_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgesr.train.losses import resolve_vgg19_weights

    missing = tmp_path / "nope" / "vgg19-dcbb9e9d.pth"
    with pytest.raises(ConfigError, match=f"{missing}.*gan.vgg19_weights.*never downloads"):
        resolve_vgg19_weights(missing)
    monkeypatch.setenv(VGG19_ENV, str(missing))
    with pytest.raises(ConfigError, match=f"{missing}.*EDGESR_VGG19_WEIGHTS"):
        resolve_vgg19_weights(None)
    monkeypatch.delenv(VGG19_ENV)
    assert resolve_vgg19_weights(None) is None

    wrong_keys = tmp_path / "wrong_keys.pth"
    torch.save({f"body.{k}": v for k, v in _fake_vgg19_state(5).items()}, wrong_keys)
    with pytest.raises(ModelError, match="missing features.0.weight"):
        PerceptualLoss(("conv1_2",), (1.0,), weights=wrong_keys)
    wrong_shape = _fake_vgg19_state(5)
    wrong_shape["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    torch.save(wrong_shape, tmp_path / "wrong_shape.pth")
    with pytest.raises(ModelError, match=r"features.2.weight \(64, 32, 3, 3\)"):
        PerceptualLoss(("conv1_2",), (1.0,), weights=tmp_path / "wrong_shape.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable VGG19"):
        PerceptualLoss(("conv1_2",), (1.0,), weights=tmp_path / "garbage.pth")


def test_ema_update_rule() -> None:
    torch.manual_seed(0)
    model, ema = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    start = [p.detach().clone() for p in ema.parameters()]
    ema_update(ema, model, 1.0)
    assert all(torch.equal(e, s) for e, s in zip(ema.parameters(), start, strict=True))
    ema_update(ema, model, 0.25)
    for e, s, p in zip(ema.parameters(), start, model.parameters(), strict=True):
        torch.testing.assert_close(e, 0.25 * s + 0.75 * p)
    ema_update(ema, model, 0.0)
    assert all(torch.equal(e, p) for e, p in zip(ema.parameters(), model.parameters(), strict=True))


# ---------------------------------------------------------------------------------- recipe


def test_gan_recipe_section() -> None:
    plain = load_recipe("anchornet_x4")
    assert plain.gan is None and "gan" not in plain.to_dict() and "gan:" not in dump_recipe(plain)
    on = plain.replace(["gan.steps=10"])
    assert on.gan == GanSpec(steps=10)
    assert on.hash() != plain.hash()
    assert on.replace(["gan.val_every=7", "gan.ckpt_every=3"]).hash() == on.hash()
    assert on.replace(["gan=null"]).gan is None
    assert load_recipe("anchornet_x4", ["gan.ema_decay=0.99"]).gan.ema_decay == 0.99
    bad = {
        "gan.stepz=3": "unknown key 'gan.stepz'.*did you mean 'gan.steps'",
        "gan.ema_decay=1.0": "gan.ema_decay must be in \\(0, 1\\)",
        "gan.adversarial_weight=-1": "gan.adversarial_weight must not be negative",
        "gan.steps=0": "gan.steps must be at least 1",
        "gan.discriminator=patchgan": "unknown discriminator 'patchgan'",
        "gan.disc_params={depth: 3}": "gan.disc_params.depth",
        "gan.perceptual_layers=[conv6_1]": "unknown VGG19 layer",
        "gan.betas=[0.9]": "gan.betas",
        "gan.batch_size=0": "gan.batch_size must be at least 1",
    }
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            plain.replace([override])


# ------------------------------------------------------------------------------ end to end


def test_gan_run_end_to_end(ref_run: Path, tmp_path: Path) -> None:
    recipe = _recipe()
    summary = json.loads((ref_run / "train_summary.json").read_text())
    assert summary["pretrain"]["steps"] == 20 and summary["gan"]["steps"] == 10
    assert summary["steps"] == 30 and summary["perceptual"].startswith("random-vgg19")
    assert np.isfinite(summary["val_psnr_y"]) and np.isfinite(summary["pretrain"]["val_psnr_y"])
    log = [json.loads(line) for line in (ref_run / "log.jsonl").read_text().splitlines()]
    losses = [e for e in log if "d" in e]
    assert [e["step"] for e in losses] == [5, 10]
    assert {"pixel", "perceptual", "adv_g", "d", "d_real", "d_fake"} <= set(losses[0])
    assert [e["step"] for e in log if "val_psnr" in e] == [5, 10]

    # LATEST names the newest checkpoint, for the single-model and the named-model form.
    assert (ref_run / "checkpoints" / "LATEST").read_text() == "step_00000010"
    assert (ref_run / "pretrain" / "checkpoints" / "LATEST").read_text() == "step_00000020"

    # The adversarial steps moved G (from the pixel model) and D (from its initialisation).
    final = ref_run / "checkpoints" / "step_00000010"
    pre = _tensors(ref_run / "pretrain" / "model.safetensors")
    g, ema = _tensors(final / "model.g.safetensors"), _tensors(final / "model.ema.safetensors")
    assert pre.keys() == g.keys() == ema.keys()
    assert all(not torch.equal(pre[k], g[k]) for k in g if k.endswith("weight"))
    d0 = build_gan_discriminator(recipe).state_dict()
    d = _tensors(final / "model.d.safetensors")
    assert all(not torch.equal(d0[k], d[k]) for k in d0 if k.endswith("original"))
    # The export is the EMA, which lags G.
    exported = _tensors(ref_run / "model.safetensors")
    assert all(torch.equal(exported[k], ema[k]) for k in ema)
    assert any(not torch.equal(ema[k], g[k]) for k in g)

    model, info = load_model(ref_run)
    assert (info.arch, info.scale, info.color, info.recipe_hash) == (
        "anchornet",
        4,
        "rgb",
        recipe.hash(),
    )
    assert read_info(ref_run / "pretrain" / "model.safetensors").recipe_hash == (
        recipe.replace(["gan=null"]).hash()
    )
    assert model(torch.rand(1, 3, 9, 7)).shape == (1, 3, 36, 28)

    import onnxruntime as ort

    from edgesr.export.onnx_export import export_onnx

    report = export_onnx(model, tmp_path / "gan.onnx", info=info)
    assert report.verified
    x = torch.rand(2, 3, 21, 17)
    session = ort.InferenceSession(str(tmp_path / "gan.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-5)


def test_resume_from_mid_run_checkpoint_is_bit_identical(
    ref_run: Path, tmp_path: Path, images: list[np.ndarray]
) -> None:
    """A crash after the step-4 checkpoint: what is on disk then, resumed, ends as the ref."""
    run = tmp_path / "run"
    shutil.copytree(ref_run, run)
    for name in ("model.safetensors", "train_summary.json", "checkpoints/LATEST"):
        (run / name).unlink()
    for step in (8, 10):
        shutil.rmtree(run / "checkpoints" / f"step_{step:08d}")
    assert latest_checkpoint(run).name == "step_00000004"
    with pytest.raises(OutputExistsError, match="--resume"):
        train(_recipe(), images, out=run, val=images[:1], progress=False)
    with pytest.raises(ConfigError, match="gan.adversarial_weight changed"):
        train(
            _recipe("gan.adversarial_weight=0.5"),
            images,
            out=run,
            val=images[:1],
            resume=True,
            progress=False,
        )
    train(_recipe(), images, out=run, val=images[:1], resume=True, progress=False)
    _assert_same_run(ref_run, run, 10)


def test_ctrl_c_in_gan_phase_checkpoints_and_resumes(
    ref_run: Path, tmp_path: Path, images: list[np.ndarray]
) -> None:
    """A real SIGINT during the first GAN step stops at the step's end with a checkpoint."""

    class InterruptOnGanProgress(io.StringIO):
        def write(self, text: str) -> int:
            if "] 1/10 " in text:  # the GAN phase's first progress line
                signal.raise_signal(signal.SIGINT)
            return super().write(text)

    run = tmp_path / "run"
    with pytest.raises(EdgesrError, match="interrupted at GAN step 1.*--resume"):
        train(_recipe(), images, out=run, val=images[:1], stream=InterruptOnGanProgress())
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001"]
    assert signal.getsignal(signal.SIGINT) is not None  # the previous handler is back
    train(_recipe(), images, out=run, val=images[:1], resume=True, progress=False)
    _assert_same_run(ref_run, run, 10)


def test_longer_gan_steps_on_resume_match_one_run(tmp_path: Path, images: list[np.ndarray]) -> None:
    # Constant learning rates (lr_min = lr): a 6-step run extended to 10 is a 10-step run.
    const = ["gan.lr_min=1e-3", "gan.val_every=100", "gan.ckpt_every=100"]
    one = tmp_path / "one"
    train(_recipe(*const), images, out=one, val=None, progress=False)
    two = tmp_path / "two"
    train(_recipe(*const, "gan.steps=6"), images, out=two, val=None, progress=False)
    train(_recipe(*const), images, out=two, val=None, resume=True, progress=False)
    _assert_same_run(one, two, 10)


def test_run_dir_protection_and_phase1_resume(tmp_path: Path, images: list[np.ndarray]) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(_recipe(), images, out=out, val=None, resume=True, progress=False)
    # A run stopped in phase 1 before any checkpoint: --resume redoes phase 1, then phase 2.
    out.mkdir()
    train(_recipe("gan.steps=2"), images, out=out / "ref", val=None, progress=False)
    (out / "ref" / "pretrain" / "model.safetensors").unlink()
    shutil.rmtree(out / "ref" / "pretrain" / "checkpoints")
    shutil.rmtree(out / "ref" / "checkpoints")
    train(_recipe("gan.steps=2"), images, out=out / "ref", val=None, resume=True, progress=False)
    assert (out / "ref" / "pretrain" / "model.safetensors").is_file()
    assert latest_checkpoint(out / "ref").name == "step_00000002"
    before = (out / "ref" / "model.safetensors").read_bytes()
    with pytest.raises(OutputExistsError):
        train(_recipe("gan.steps=2"), images, out=out / "ref", val=None, progress=False)
    assert (out / "ref" / "model.safetensors").read_bytes() == before
    train(_recipe("gan.steps=2"), images, out=out / "ref", val=None, force=True, progress=False)
    assert json.loads((out / "ref" / "train_summary.json").read_text())["gan"]["steps"] == 2


def test_wrong_vgg_path_fails_before_training(tmp_path: Path, images: list[np.ndarray]) -> None:
    missing = tmp_path / "vgg19-dcbb9e9d.pth"
    with pytest.raises(ConfigError, match=str(missing)):
        train(
            _recipe(f"gan.vgg19_weights={missing}"),
            images,
            out=tmp_path / "run",
            progress=False,
        )
    assert not (tmp_path / "run").exists()


def test_vgg_weights_from_env_are_used_and_recorded(
    tmp_path: Path, images: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(_fake_vgg19_state(9), weights)  # through conv2_2, all the tiny recipe uses
    monkeypatch.setenv(VGG19_ENV, str(weights))
    stream = io.StringIO()
    train(_recipe("gan.steps=1"), images, out=tmp_path / "run", val=None, stream=stream)
    assert f"perceptual loss uses vgg19 {weights.resolve()}" in stream.getvalue()
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["perceptual"] == f"vgg19 {weights.resolve()}"
    assert (
        read_info(tmp_path / "run" / "model.safetensors").extra["perceptual"]
        == (summary["perceptual"])
    )
    # Resuming with a different perceptual network would change what is learned.
    monkeypatch.delenv(VGG19_ENV)
    with pytest.raises(ConfigError, match="perceptual loss used vgg19"):
        train(_recipe("gan.steps=2"), images, out=tmp_path / "run", val=None, resume=True)


@pytest.mark.slow
def test_two_process_gan_under_torchrun(tmp_path: Path, images: list[np.ndarray]) -> None:
    """Both phases data-parallel: two ranks, each half the batch, one G/D/EMA, rank 0 writes."""
    data = tmp_path / "hr"
    data.mkdir()
    for i, img in enumerate(images):
        cv2.imwrite(str(data / f"{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "edgesr", "train", "--recipe", "anchornet_x4", "--data", str(data), "--val", str(data),
        "--out", str(out), "--no-progress", *[f"--set={s}" for s in TINY_GAN],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["gan"]["steps"] == 10
    assert summary["pretrain"]["steps"] == 20
    state = json.loads((latest_checkpoint(out) / "state.json").read_text())
    assert set(state["sampler"]) == {"0", "1"}  # both ranks' patch streams are checkpointed
    assert state["sampler"]["0"] != state["sampler"]["1"]
    model, info = load_model(out)
    assert read_info(out / "model.safetensors").extra["world_size"] == "2"
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_phase_loss_sees_only_a_grid_at_its_period() -> None:
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 64, 64)
    noise = hr + 0.05 * torch.randn_like(hr)  # error without a pattern
    tile = 0.05 * torch.randn(1, 3, 4, 4)
    grid = hr + tile.repeat(1, 1, 16, 16)  # the same error pattern in every 4x4 cell
    offset = hr + 0.05  # a global offset is the pixel loss's business
    assert phase_loss(grid, hr, 4) > 10 * phase_loss(noise, hr, 4)
    assert phase_loss(offset, hr, 4) < 1e-6
    # Every cell the same: the loss is exactly the pattern's mean magnitude around its mean.
    expected = (tile - tile.mean(dim=(2, 3), keepdim=True)).abs().mean()
    torch.testing.assert_close(phase_loss(grid, hr, 4), expected)
    # A 3-pixel grid is not a 4-pixel one; sizes that are not whole periods are cropped.
    grid3 = hr[..., :63, :63] + (0.05 * torch.randn(1, 3, 3, 3)).repeat(1, 1, 21, 21)
    assert phase_loss(grid3, hr[..., :63, :63], 3) > 10 * phase_loss(grid3, hr[..., :63, :63], 4)


def test_shipped_gan_generator_has_no_upsampling_grid() -> None:
    """The shipped GAN generator adds texture, not a 4-pixel grid: on the embedded photos its
    output's periodic_grid_db stays within 3 dB of its own pixel-loss starting point (the grid
    it had before the phase loss scored 25 dB against 12)."""
    from edgesr.evaluate import resolve_eval_data, super_resolve
    from edgesr.metrics import periodic_grid_db
    from edgesr.runtime.runners import TorchRunner

    pairs = [p for p in resolve_eval_data("embedded", scale=4) if p.name.startswith("skimage/")]
    scores = {}
    for name in ("srgan_lite_x4.pixel", "srgan_lite_x4"):
        net, info = load_model(WEIGHTS_DIR / f"{name}.safetensors")
        runner = TorchRunner(net.eval(), scale=4, color=info.color, name=name)
        runner.activate()
        scores[name] = np.mean(
            [
                periodic_grid_db(super_resolve(runner, p.lr_rgb)[0], period=4, crop_border=4)
                for p in pairs
            ]
        )
    assert scores["srgan_lite_x4"] < scores["srgan_lite_x4.pixel"] + 3.0, scores
