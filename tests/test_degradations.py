from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import yaml

from edgesr.data import degradations as dg
from edgesr.data.embedded import procedural_image
from edgesr.data.folders import LoadedImage, mod_crop
from edgesr.data.pairs import (
    PatchSampler,
    _dihedral,
    make_degraded_pairs,
    make_pairs,
    to_model_space,
)
from edgesr.errors import ConfigError, DataError
from edgesr.recipe import CameraDegradation, dump_recipe, load_recipe

SPEC = CameraDegradation()


def _image(kind: str = "dead_leaves", size: int = 96, seed: int = 0) -> np.ndarray:
    return procedural_image(kind, size=size, rng=np.random.default_rng(seed))


def _hr(size: int = 96, seed: int = 0) -> np.ndarray:
    return _image(size=size, seed=seed).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def images() -> list[LoadedImage]:
    rng = np.random.default_rng(0)
    kinds = [("dead_leaves", 128), ("text", 96), ("texture", 160), ("grating", 72)]
    return [
        LoadedImage(f"img_{i}", None, procedural_image(k, size=s, rng=rng))
        for i, (k, s) in enumerate(kinds)
    ]


# --------------------------------------------------------------------------------------------
# degrade


def test_same_seed_same_lr_other_seed_other_lr() -> None:
    hr = _hr()
    for seed in range(6):
        a = dg.degrade(hr, scale=4, rng=np.random.default_rng(seed), spec=SPEC)
        b = dg.degrade(hr, scale=4, rng=np.random.default_rng(seed), spec=SPEC)
        assert np.array_equal(a, b)
    outs = [dg.degrade(hr, scale=4, rng=np.random.default_rng(s), spec=SPEC) for s in range(6)]
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert not np.array_equal(outs[i], outs[j])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lr_shape_dtype_range_and_8bit_grid(scale: int) -> None:
    hr = _image(size=120)[:, : 96 - 96 % scale]  # non-square
    hr = hr[: hr.shape[0] - hr.shape[0] % scale]
    rng = np.random.default_rng(scale)
    for _ in range(25):
        lr = dg.degrade(hr, scale=scale, rng=rng, spec=SPEC)  # uint8 input accepted too
        assert lr.shape == (hr.shape[0] // scale, hr.shape[1] // scale, 3)
        assert lr.dtype == np.float32
        assert lr.min() >= 0.0 and lr.max() <= 1.0
        levels = lr * 255.0
        assert np.abs(levels - np.rint(levels)).max() < 1e-3
        assert np.array_equal(lr, np.rint(levels).astype(np.uint8) / np.float32(255.0))


def test_every_pipeline_branch_keeps_the_contract() -> None:
    # Each probability pushed to 0 and 1 so both sides of every branch run.
    hr = _hr(48)
    for second, sinc, final in [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)]:
        spec = dataclasses.replace(
            SPEC, second_order_prob=second, sinc_prob=sinc, final_sinc_prob=final
        )
        for noise in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]:
            spec_n = dataclasses.replace(spec, noise_probs=noise)
            lr = dg.degrade(hr, scale=2, rng=np.random.default_rng(3), spec=spec_n)
            assert lr.shape == (24, 24, 3) and lr.dtype == np.float32


def test_degrade_rejects_misaligned_size() -> None:
    with pytest.raises(DataError, match="mod-crop"):
        dg.degrade(_hr(50), scale=4, rng=np.random.default_rng(0), spec=SPEC)


def test_degraded_lr_still_follows_the_hr() -> None:
    # Strong degradations, but the LR must stay the (aligned) picture of its HR.
    hr = _hr(96, seed=4)
    ref = dg.resize(hr, (24, 24), "area").mean(axis=2).ravel()
    unrelated = dg.resize(_hr(96, seed=5), (24, 24), "area").mean(axis=2).ravel()
    rng = np.random.default_rng(0)
    lrs = [dg.degrade(hr, scale=4, rng=rng, spec=SPEC).mean(axis=2).ravel() for _ in range(20)]
    corr = [np.corrcoef(lr, ref)[0, 1] for lr in lrs]
    corr_unrelated = [np.corrcoef(lr, unrelated)[0, 1] for lr in lrs]
    assert np.median(corr) > 0.5
    assert np.median(corr) > np.median(corr_unrelated) + 0.4


# --------------------------------------------------------------------------------------------
# kernels


def test_random_kernels_are_odd_normalized_and_in_range() -> None:
    rng = np.random.default_rng(0)
    spec = dataclasses.replace(SPEC, sinc_prob=0.3)
    sizes = set()
    for i in range(300):
        k = dg.random_kernel(rng, spec, second=bool(i % 2))
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert 7 <= k.shape[0] <= 21
        assert k.dtype == np.float32
        assert k.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.array_equal(k, k[::-1, ::-1])  # point-symmetric: correlation == convolution
        sizes.add(k.shape[0])
    assert sizes == set(range(7, 22, 2))


def test_named_kernels() -> None:
    for k in [
        dg.gaussian_kernel(15, 2.0, 2.0),
        dg.gaussian_kernel(15, 3.0, 0.8, math.pi / 6),
        dg.generalized_gaussian_kernel(15, 2.0, 1.0, 0.3, 0.5),
        dg.plateau_kernel(15, 2.0, 1.0, 0.3, 1.5),
        dg.sinc_kernel(15, math.pi / 3),
    ]:
        assert k.shape == (15, 15) and k.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.unravel_index(np.argmax(k), k.shape) == (7, 7)
    iso = dg.gaussian_kernel(15, 2.0, 2.0)
    assert np.allclose(iso, iso.T)
    aniso = dg.gaussian_kernel(15, 3.0, 0.8, 0.0)  # wide along x, narrow along y
    assert aniso[7, 11] > 10 * aniso[11, 7]
    # The truncated sinc rings: negative lobes, the overshoot it is there to produce.
    assert dg.sinc_kernel(21, math.pi / 3).min() < -1e-3
    with pytest.raises(DataError, match="odd"):
        dg.gaussian_kernel(8, 1.0, 1.0)


def test_sinc_kernel_matches_the_bessel_formula() -> None:
    special = pytest.importorskip("scipy.special")
    cutoff, size = 0.4 * math.pi, 13
    r = np.arange(size) - size // 2
    rad = np.hypot(*np.meshgrid(r, r))
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = cutoff * special.j1(cutoff * rad) / (2 * np.pi * rad)
    ref[size // 2, size // 2] = cutoff**2 / (4 * np.pi)
    assert np.allclose(dg.sinc_kernel(size, cutoff), ref / ref.sum(), atol=1e-6)


def _high_freq_energy(img: np.ndarray) -> float:
    spec = np.abs(np.fft.fftshift(np.fft.fft2(img.mean(axis=2)))) ** 2
    h, w = spec.shape
    yy, xx = np.mgrid[:h, :w]
    far = np.hypot(yy - h // 2, xx - w // 2) > min(h, w) / 4
    return float(spec[far].sum())


def test_blur_reduces_high_frequency_energy() -> None:
    img = _hr(96, seed=1)
    base = _high_freq_energy(img)
    rng = np.random.default_rng(0)
    spec = dataclasses.replace(SPEC, sinc_prob=0.0)
    energies = [
        _high_freq_energy(dg.apply_kernel(img, dg.random_kernel(rng, spec))) for _ in range(20)
    ]
    assert max(energies) <= base * 1.001  # sigma near 0.2 is almost a delta: never more
    assert np.median(energies) < 0.5 * base
    assert _high_freq_energy(dg.apply_kernel(img, dg.gaussian_kernel(15, 2.5, 2.5))) < 0.05 * base


# --------------------------------------------------------------------------------------------
# noise


@pytest.mark.parametrize("gray", [False, True])
def test_poisson_gaussian_variance_is_affine_in_the_signal(gray: bool) -> None:
    a, b = 4e-3, 2e-4
    rng = np.random.default_rng(0)
    levels = [0.05, 0.2, 0.4, 0.6, 0.8]
    measured = []
    for x in levels:
        flat = np.full((256, 256, 3), x, np.float32)
        noisy = dg.poisson_gaussian_noise(flat, a, b, rng=rng, gray=gray)
        assert abs(noisy.mean() - x) < 2e-3  # unbiased
        measured.append(noisy.var())
        if gray:
            assert np.array_equal(noisy[..., 0], noisy[..., 2])
    for x, v in zip(levels, measured, strict=True):
        assert v == pytest.approx(a * x + b, rel=0.06)
    slope, intercept = np.polyfit(levels, measured, 1)
    assert slope == pytest.approx(a, rel=0.06)
    assert intercept == pytest.approx(b, abs=1e-4)


def test_poisson_and_gaussian_noise_variances() -> None:
    rng = np.random.default_rng(1)
    flat = np.full((256, 256, 3), 0.5, np.float32)
    assert dg.poisson_noise(flat, 2e-3, rng=rng).var() == pytest.approx(1e-3, rel=0.06)
    # Few photons (0.5 / 0.05 = 10 expected): truly Poisson, whole counts of a.
    few = dg.poisson_noise(flat, 0.05, rng=rng)
    assert few.var() == pytest.approx(0.025, rel=0.06)
    counts = few / 0.05
    assert np.abs(counts - np.rint(counts)).max() < 1e-3
    g = dg.gaussian_noise(flat, 0.05, rng=rng)
    assert g.var() == pytest.approx(0.0025, rel=0.06)
    assert not np.array_equal(g[..., 0], g[..., 1])
    gg = dg.gaussian_noise(flat, 0.05, rng=rng, gray=True)
    assert np.array_equal(gg[..., 0], gg[..., 1])


def test_sensor_noise_in_linear_light_is_stronger_in_the_shadows() -> None:
    rng = np.random.default_rng(2)
    a, b = 1e-3, 1e-6

    def std(x: float, linear: bool) -> float:
        flat = np.full((128, 128, 3), x, np.float32)
        return float(dg.poisson_gaussian_noise(flat, a, b, rng=rng, linear=linear).std())

    # Relative noise (std / level) in display values: far larger in the shadows when applied
    # in linear light, as on a real sensor.
    ratio_linear = (std(0.1, True) / 0.1) / (std(0.8, True) / 0.8)
    ratio_plain = (std(0.1, False) / 0.1) / (std(0.8, False) / 0.8)
    assert ratio_linear > 1.5 * ratio_plain


# --------------------------------------------------------------------------------------------
# JPEG and resizing


def _block_ratio(img: np.ndarray) -> float:
    """Mean jump across 8x8 block borders over the mean jump inside blocks (columns and rows)."""
    y = img.mean(axis=2).astype(np.float64)
    dx = np.abs(np.diff(y, axis=1))
    dy = np.abs(np.diff(y, axis=0))
    border_x = (np.arange(dx.shape[1]) % 8) == 7
    border_y = (np.arange(dy.shape[0]) % 8) == 7
    inside = np.concatenate([dx[:, ~border_x].ravel(), dy[~border_y].ravel()]).mean()
    border = np.concatenate([dx[:, border_x].ravel(), dy[border_y].ravel()]).mean()
    return float(border / inside)


def test_low_quality_jpeg_makes_8x8_blocks() -> None:
    # A smooth image: any structure on the 8-pixel grid is the codec's.
    yy, xx = np.mgrid[:128, :128].astype(np.float32)
    smooth = np.stack(
        [0.5 + 0.4 * np.sin(xx / 11 + yy / 17), 0.5 + 0.3 * np.cos(yy / 13), 0.4 + xx / 400], -1
    ).astype(np.float32)
    assert _block_ratio(smooth) == pytest.approx(1.0, abs=0.1)
    low = dg.jpeg_compress(smooth, 10)
    assert low.dtype == np.float32 and low.shape == smooth.shape
    assert _block_ratio(low) > 2.0
    assert _block_ratio(dg.jpeg_compress(smooth, 100)) < 1.3
    # Lower quality loses more.
    err = [np.abs(dg.jpeg_compress(smooth, q) - smooth).mean() for q in (10, 50, 95)]
    assert err[0] > err[1] > err[2]


def test_pipeline_always_ends_in_jpeg_at_the_lr_size() -> None:
    # Everything else switched off: whichever order the final step takes, the LR is a JPEG.
    only_jpeg = dataclasses.replace(
        SPEC,
        blur_sigma=(0.01, 0.01),
        blur_sigma2=(0.01, 0.01),
        sinc_prob=0.0,
        final_sinc_prob=0.0,
        resize_probs=(0, 0, 1),
        resize_probs2=(0, 0, 1),
        noise_probs=(1, 0, 0),
        gaussian_sigma=(0.0, 0.0),
        jpeg_quality=(10, 10),
    )
    yy, xx = np.mgrid[:128, :128].astype(np.float32)
    smooth = np.stack([0.5 + 0.4 * np.sin(xx / 11 + yy / 17)] * 3, -1).astype(np.float32)
    for seed in range(8):
        lr = dg.degrade(smooth, scale=1, rng=np.random.default_rng(seed), spec=only_jpeg)
        assert _block_ratio(lr) > 2.0


def test_resize_modes_and_random_resize() -> None:
    img = _hr(64)
    for mode in dg.RESIZE_MODES:
        assert dg.resize(img, (20, 30), mode).shape == (20, 30, 3)
    rng = np.random.default_rng(0)
    shapes = {
        dg.random_resize(img, rng, SPEC, probs=(1, 1, 1), scale_range=(0.5, 1.5)).shape[0]
        for _ in range(60)
    }
    assert min(shapes) < 64 < max(shapes) and 64 in shapes
    assert all(32 <= s <= 96 for s in shapes)
    for _ in range(20):  # stage-2 style: relative to a given base size
        out = dg.random_resize(
            img, rng, SPEC, probs=(0, 1, 0), scale_range=(0.5, 1.5), base=(10, 10)
        )
        assert 5 <= out.shape[0] <= 10


# --------------------------------------------------------------------------------------------
# PatchSampler


def _camera_sampler(images: list[LoadedImage], color: str, seed: int = 0, **kw) -> PatchSampler:
    return PatchSampler(
        make_pairs(images, scale=4),
        scale=4,
        color=color,
        lr_patch=12,
        batch_size=6,
        seed=seed,
        degradation="camera",
        **kw,
    )


@pytest.mark.parametrize("color,channels", [("y", 1), ("rgb", 3)])
def test_camera_sampler_shapes(images: list[LoadedImage], color: str, channels: int) -> None:
    lr, hr = _camera_sampler(images, color).next_batch()
    assert tuple(lr.shape) == (6, channels, 12, 12)
    assert tuple(hr.shape) == (6, channels, 48, 48)
    assert lr.dtype == hr.dtype == torch.float32
    assert float(lr.min()) >= 0.0 and float(lr.max()) <= 1.0
    if color == "rgb":  # RGB LR stays on the camera's 8-bit grid
        levels = lr.numpy() * 255
        assert np.abs(levels - np.rint(levels)).max() < 1e-3


def test_camera_sampler_is_deterministic_and_resumable(images: list[LoadedImage]) -> None:
    a, b = _camera_sampler(images, "y", seed=3), _camera_sampler(images, "y", seed=3)
    for _ in range(2):
        (la, ha), (lb, hb) = a.next_batch(), b.next_batch()
        assert np.array_equal(la.numpy(), lb.numpy()) and np.array_equal(ha.numpy(), hb.numpy())
    other = _camera_sampler(images, "y", seed=4).next_batch()[0]
    assert not np.array_equal(other.numpy(), _camera_sampler(images, "y", seed=3).next_batch()[0])

    state = a.state_dict()
    expected = a.next_batch()
    c = _camera_sampler(images, "y", seed=99)
    c.load_state_dict(state)
    got = c.next_batch()
    assert np.array_equal(got[0].numpy(), expected[0].numpy())
    assert np.array_equal(got[1].numpy(), expected[1].numpy())


def test_camera_sampler_hr_patches_come_from_the_images(images: list[LoadedImage]) -> None:
    s = _camera_sampler(images, "rgb", seed=1, augment=False)
    _, hr = s.next_batch()
    crops = hr.numpy().transpose(0, 2, 3, 1)
    full = [to_model_space(im.rgb, "rgb") for im in images]
    for crop in crops:
        found = False
        for img in full:
            h, w = img.shape[:2]
            for y in range(0, h - 47, 4):  # HR crops start at multiples of the scale
                for x in range(0, w - 47, 4):
                    if np.array_equal(img[y : y + 48, x : x + 48], crop):
                        found = True
                        break
                if found:
                    break
            if found:
                break
        assert found


def _old_bicubic_batches(pairs, *, scale, color, lr_patch, batch_size, seed, n):
    """The sampler's bicubic algorithm as it was before camera degradations existed."""
    lrs = [to_model_space(p.lr_rgb, color) for p in pairs]
    hrs = [to_model_space(p.hr_rgb, color) for p in pairs]
    pos = np.array([(a.shape[0] - lr_patch + 1) * (a.shape[1] - lr_patch + 1) for a in lrs])
    weights = pos / pos.sum()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        idx = rng.choice(len(lrs), size=batch_size, p=weights)
        lb, hb = [], []
        for i in idx:
            y = int(rng.integers(0, lrs[i].shape[0] - lr_patch + 1))
            x = int(rng.integers(0, lrs[i].shape[1] - lr_patch + 1))
            lp = lrs[i][y : y + lr_patch, x : x + lr_patch]
            hp = hrs[i][y * scale : (y + lr_patch) * scale, x * scale : (x + lr_patch) * scale]
            k = int(rng.integers(0, 8))
            lb.append(_dihedral(lp, k))
            hb.append(_dihedral(hp, k))
        out.append((np.stack(lb).transpose(0, 3, 1, 2), np.stack(hb).transpose(0, 3, 1, 2)))
    return out


@pytest.mark.parametrize("color", ["y", "rgb"])
def test_bicubic_sampler_is_unchanged(images: list[LoadedImage], color: str) -> None:
    pairs = make_pairs(images, scale=3)
    ref = _old_bicubic_batches(pairs, scale=3, color=color, lr_patch=10, batch_size=5, seed=7, n=3)
    odd_camera = dataclasses.replace(SPEC, jpeg_quality=(5, 10))  # ignored by bicubic
    for kw in ({}, {"degradation": "bicubic", "camera": odd_camera}):
        s = PatchSampler(pairs, scale=3, color=color, lr_patch=10, batch_size=5, seed=7, **kw)
        for lr_ref, hr_ref in ref:
            lr, hr = s.next_batch()
            assert np.array_equal(lr.numpy(), lr_ref) and np.array_equal(hr.numpy(), hr_ref)


def test_sampler_rejects_bad_degradation_settings(images: list[LoadedImage]) -> None:
    pairs = make_pairs(images, scale=2)
    kw = dict(scale=2, color="y", lr_patch=8, batch_size=2)
    with pytest.raises(ConfigError, match="'bicubic' or 'camera'"):
        PatchSampler(pairs, degradation="real", **kw)
    bad = dataclasses.replace(SPEC, jpeg_quality=(90, 30))
    with pytest.raises(ConfigError, match="jpeg_quality"):
        PatchSampler(pairs, degradation="camera", camera=bad, **kw)


def test_scale_augment_adds_bicubic_downscaled_copies(images: list[LoadedImage]) -> None:
    from edgesr.data.imresize import imresize

    base = make_pairs(images, scale=3)
    more = make_pairs(images, scale=3, rescales=(0.8, 0.6))
    assert len(more) == 3 * len(base)
    img = images[0]
    got = {p.name: p for p in more}
    small = got[f"{img.name}@0.6"]
    # The copy is the MATLAB-bicubic downscaled HR, mod-cropped, with its own bicubic LR.
    assert np.array_equal(small.hr_rgb, mod_crop(imresize(img.rgb, 0.6), 3))
    assert np.array_equal(small.lr_rgb, imresize(small.hr_rgb, 1 / 3))
    assert np.array_equal(got[img.name].hr_rgb, base[0].hr_rgb)  # the original is unchanged
    for bad in ("data.scale_augment=[1.0]", "data.scale_augment=[0]"):
        with pytest.raises(ConfigError, match=r"scale_augment factors must be in \(0, 1\)"):
            load_recipe("fsrcnn_x3", [bad])
    with pytest.raises(ConfigError, match="'bicubic' only"):
        load_recipe("fsrcnn_x3", ["data.scale_augment=[0.8]", "data.degradation=camera"])


# --------------------------------------------------------------------------------------------
# make_degraded_pairs


def test_make_degraded_pairs(images: list[LoadedImage]) -> None:
    a = make_degraded_pairs(images, scale=4, spec=SPEC, seed=5)
    b = make_degraded_pairs(images, scale=4, spec=SPEC, seed=5)
    c = make_degraded_pairs(images, scale=4, spec=SPEC, seed=6)
    assert len(a) == len(images)
    for pa, pb, pc, img in zip(a, b, c, images, strict=True):
        assert pa.name == img.name
        assert pa.hr_rgb.shape[0] % 4 == 0 and pa.hr_rgb.shape[1] % 4 == 0
        assert pa.lr_rgb.dtype == np.uint8
        assert pa.lr_rgb.shape == (pa.hr_rgb.shape[0] // 4, pa.hr_rgb.shape[1] // 4, 3)
        assert np.array_equal(pa.lr_rgb, pb.lr_rgb)
        assert not np.array_equal(pa.lr_rgb, pc.lr_rgb)
    # Per-image generators: image i is the same whatever the other images are.
    solo = make_degraded_pairs(images[:2], scale=4, spec=SPEC, seed=5)
    assert np.array_equal(solo[1].lr_rgb, a[1].lr_rgb)
    # ... and derived from the index too: the same picture twice gets two different LRs.
    twice = make_degraded_pairs([images[0], images[0]], scale=4, spec=SPEC, seed=5)
    assert not np.array_equal(twice[0].lr_rgb, twice[1].lr_rgb)


# --------------------------------------------------------------------------------------------
# recipe


def test_recipe_camera_overrides_load() -> None:
    r = load_recipe(
        "espcn_x4",
        [
            "data.degradation=camera",
            "data.camera.jpeg_quality=[30,95]",
            "data.camera.sensor_a=[1e-4, 2e-3]",
            "data.camera.second_order_prob=0.25",
        ],
    )
    assert r.data.degradation == "camera"
    assert r.data.camera.jpeg_quality == (30, 95)
    assert r.data.camera.sensor_a == (1e-4, 2e-3)
    assert r.data.camera.second_order_prob == 0.25
    assert r.replace([]).data.camera == r.data.camera
    again = yaml.safe_load(dump_recipe(r))
    assert again["data"]["camera"]["jpeg_quality"] == [30, 95]


def test_bicubic_recipes_keep_their_hash() -> None:
    # Shipped weights carry the recipe hash; unused default camera knobs must not change it.
    r = load_recipe("espcn_x4")
    assert "camera" not in r.to_dict()["data"]
    assert r.hash() == "e69e9f47c174a224"
    assert load_recipe("espcn_x4", ["data.degradation=camera"]).hash() != r.hash()
    tuned = load_recipe("espcn_x4", ["data.camera.jpeg_quality=[40, 90]"])
    assert tuned.to_dict()["data"]["camera"]["jpeg_quality"] == [40, 90]


def test_recipe_camera_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_recipe("espcn_x4", ["data.camera.jpeg_qualty=[30,95]"])
    msg = str(info.value)
    assert "data.camera.jpeg_qualty" in msg and "did you mean 'data.camera.jpeg_quality'" in msg
    for key in ("kernel_size", "sensor_a", "sensor_b", "second_order_prob", "final_sinc_prob"):
        assert key in msg
    for bad, expected in [
        ("data.camera.jpeg_quality=[95,30]", r"data\.camera\.jpeg_quality has min > max.*swap"),
        ("data.camera.blur_sigma=[3,0.2]", r"data\.camera\.blur_sigma has min > max"),
        ("data.camera.jpeg_quality=[0,101]", r"data\.camera\.jpeg_quality must be \[min, max\]"),
        ("data.camera.sinc_prob=1.5", r"data\.camera\.sinc_prob is a probability"),
        ("data.camera.second_order_prob=-0.1", r"second_order_prob is a probability"),
        ("data.camera.noise_probs=[1,0]", r"noise_probs must be 3 non-negative weights"),
        ("data.camera.kernel_size=[8,8]", r"kernel_size holds no odd size"),
        ("data.camera.sensor_b=[0,1e-4]", r"sensor_b must be \[min, max\] with min > 0"),
        ("data.degradation=realistic", r"one of 'bicubic', 'camera'"),
    ]:
        with pytest.raises(ConfigError, match=expected):
            load_recipe("espcn_x4", [bad])
