"""Tests of knowledge distillation: the loss goes down, alpha really weighs the two targets."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgesr.archs import ESPCN, AnchorNet
from edgesr.compress.distill import distill
from edgesr.compress.prune import prune_channels
from edgesr.data.embedded import procedural_image
from edgesr.data.pairs import PatchSampler, as_loaded_images, make_pairs
from edgesr.errors import ConfigError, DataError, EdgesrError, ModelError

SCALE = 2


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # One intra-op thread: on a shared 2-core box, small convs with 2 threads spin-wait.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _perturb(model: nn.Module, rel: float) -> nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * p.abs().mean().clamp_min(0.02) * rel)
    return model


@pytest.fixture(scope="module")
def sampler() -> PatchSampler:
    rng = np.random.default_rng(0)
    images = [
        procedural_image(kind, size=96, rng=rng) for kind in ("dead_leaves", "text", "texture")
    ]
    pairs = make_pairs(as_loaded_images(images), scale=SCALE)
    return PatchSampler(pairs, scale=SCALE, color="y", lr_patch=16, batch_size=4, seed=0)


@pytest.fixture
def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 16, 16, generator=g))
        for _ in range(3)
    ]


def _teacher() -> nn.Module:
    return _perturb(AnchorNet(scale=SCALE, rep=False), rel=0.3).eval()


def _same_params(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_kd_loss_decreases_for_pruned_student(sampler: PatchSampler) -> None:
    teacher = _teacher()
    student = _perturb(prune_channels(teacher, ratio=0.5).model, rel=0.5)
    logs: list[dict] = []
    res = distill(
        student, teacher, sampler, steps=100, lr=2e-3, alpha=0.5, log_every=25, on_log=logs.append
    )
    assert res.model is student and res.steps == 100
    assert [h[0] for h in res.history] == list(range(1, 101))
    kd = np.array([h[2] for h in res.history])
    total = np.array([h[1] for h in res.history])
    assert kd[-10:].mean() < 0.5 * kd[:10].mean()
    assert total[-10:].mean() < total[:10].mean()
    # Log entries: every 25 steps, cosine schedule down to lr_min at the last step.
    assert [e["step"] for e in logs] == [25, 50, 75, 100]
    assert logs[-1]["lr"] == pytest.approx(1e-6)
    assert all(a["lr"] > b["lr"] for a, b in zip(logs, logs[1:], strict=False))
    assert logs[-1]["loss"] == pytest.approx(total[75:].mean())


def test_alpha_one_ignores_hr(batches) -> None:
    teacher = _teacher()
    base = _perturb(prune_channels(teacher, ratio=0.5).model, rel=0.5)
    other_hr = [(lr, torch.rand_like(hr)) for lr, hr in batches]
    runs = {}
    for name, data, alpha in [
        ("a", batches, 1.0),
        ("b", other_hr, 1.0),
        ("c", other_hr, 0.5),
    ]:
        runs[name] = distill(copy.deepcopy(base), teacher, data, steps=6, lr=1e-2, alpha=alpha)
    assert _same_params(runs["a"].model, runs["b"].model)
    # The HR target does matter when alpha < 1, so the equality above is not vacuous.
    assert not _same_params(runs["a"].model, runs["c"].model)
    # LR-only batches are fine with alpha=1; the HR loss is then unknown.
    lr_only = distill(
        copy.deepcopy(base), teacher, [lr for lr, _ in batches], steps=6, lr=1e-2, alpha=1.0
    )
    assert _same_params(lr_only.model, runs["a"].model)
    assert all(np.isnan(h[3]) for h in lr_only.history)


def test_alpha_zero_ignores_teacher(batches) -> None:
    base = _perturb(ESPCN(scale=SCALE, num_feat=8, num_feat2=8), rel=0.5)
    teacher_a, teacher_b = _teacher(), _teacher()
    a = distill(copy.deepcopy(base), teacher_a, batches, steps=6, lr=1e-2, alpha=0.0)
    b = distill(copy.deepcopy(base), teacher_b, batches, steps=6, lr=1e-2, alpha=0.0)
    c = distill(copy.deepcopy(base), teacher_b, batches, steps=6, lr=1e-2, alpha=0.5)
    assert _same_params(a.model, b.model)
    assert not _same_params(a.model, c.model)
    # Logged kd differs (different teachers) while the training did not.
    assert a.history[0][2] != b.history[0][2]


def test_teacher_untouched_and_modes_restored(batches) -> None:
    teacher = _teacher().train()
    before = copy.deepcopy(teacher)
    student = ESPCN(scale=SCALE, num_feat=8, num_feat2=8).eval()
    seen = []
    teacher.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    distill(student, teacher, batches, steps=3, lr=1e-2)
    assert seen == [False] * 3  # the teacher ran in eval mode
    assert teacher.training and not student.training  # modes given back
    assert _same_params(teacher, before)
    assert all(p.grad is None for p in teacher.parameters())


def test_non_finite_loss_raises_before_the_update(batches) -> None:
    teacher = _teacher()
    with torch.no_grad():
        teacher.tail.bias.fill_(float("nan"))
    student = ESPCN(scale=SCALE, num_feat=8, num_feat2=8)
    before = copy.deepcopy(student)
    with pytest.raises(EdgesrError, match="diverged at step 1.*lower lr"):
        distill(student, teacher, batches, steps=5)
    assert _same_params(student, before)


def test_bad_arguments_raise(batches) -> None:
    teacher, student = _teacher(), ESPCN(scale=SCALE, num_feat=8, num_feat2=8)
    for kw, match in [
        ({"steps": 0}, "steps"),
        ({"steps": 2, "alpha": 1.5}, "alpha"),
        ({"steps": 2, "loss": "ssim"}, "unknown loss"),
        ({"steps": 2, "lr": 0.0}, "lr"),
        ({"steps": 2, "lr_min": 1.0}, "lr_min"),
    ]:
        with pytest.raises(ConfigError, match=match):
            distill(student, teacher, batches, **kw)
    with pytest.raises(ModelError, match="teacher output"):
        distill(ESPCN(scale=3, num_feat=8, num_feat2=8), teacher, batches, steps=2)
    with pytest.raises(DataError, match="ran out of batches"):
        distill(student, teacher, iter(batches), steps=5)
    with pytest.raises(DataError, match="alpha=1"):
        distill(student, teacher, [lr for lr, _ in batches], steps=2, alpha=0.5)


def test_batch_fn_is_applied(batches) -> None:
    teacher, student = _teacher(), ESPCN(scale=SCALE, num_feat=8, num_feat2=8)
    calls = []

    def crop(lr: torch.Tensor, hr: torch.Tensor):
        calls.append(lr.shape)
        return lr[..., :4, :4], hr[..., :8, :8]

    distill(student, teacher, batches, steps=4, batch_fn=crop)
    assert len(calls) == 4  # and the 4x4 crops went through: shapes matched the 8x8 HR


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_distill_nncf_quantized_pruned_student(sampler: PatchSampler) -> None:
    """The INT8 path: a fake-quantized (NNCF) pruned student distils like a plain one."""
    nncf = pytest.importorskip("nncf")
    teacher = _teacher()
    student = _perturb(prune_channels(teacher, ratio=0.5).model, rel=0.5)
    calib = [sampler.next_batch()[0] for _ in range(4)]
    qstudent = nncf.quantize(student, nncf.Dataset(calib), subset_size=4)
    res = distill(qstudent, teacher, sampler, steps=60, lr=2e-3, alpha=1.0)
    kd = np.array([h[2] for h in res.history])
    assert np.isfinite(kd).all()
    assert kd[-10:].mean() < 0.5 * kd[:10].mean()


def test_sampler_with_seed_is_an_independent_stream(sampler: PatchSampler) -> None:
    """compress gives every stage its own stream: one stage drawing more leaves the next alone."""
    a, b = sampler.with_seed(5), sampler.with_seed(5)
    for _ in range(3):
        a.next_batch()  # a stage before b draws 3 batches...
    first_b = b.next_batch()[0]
    again = sampler.with_seed(5).next_batch()[0]
    assert torch.equal(first_b, again)  # ...and b's stream does not move
    assert not torch.equal(first_b, sampler.with_seed(6).next_batch()[0])
    assert a.lr is sampler.lr and len(a) == len(sampler)  # images shared, not copied
