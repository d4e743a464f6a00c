from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from edgesr.data import embedded
from edgesr.data.embedded import (
    EMBEDDED_DESCRIPTION,
    PROCEDURAL_KINDS,
    SKIMAGE_TRAIN,
    SKIMAGE_VAL,
    add_sensor_noise,
    embedded_images,
    procedural_image,
)
from edgesr.errors import ConfigError


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the embedded dataset tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    embedded._clear_caches()  # force a real build under the patch
    yield
    embedded._clear_caches()


def _digest(img: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest()


def test_default_train_and_val_sets(no_network) -> None:
    train = embedded_images()  # the full default: also a speed sanity check for the suite
    val = embedded_images(split="val")
    skimage_dir = embedded._skimage_dir()
    present_train = [n for n in SKIMAGE_TRAIN if (skimage_dir / n).is_file()]
    present_val = [n for n in SKIMAGE_VAL if (skimage_dir / n).is_file()]
    assert len(train) == len(present_train) + 32
    assert len(val) == len(present_val) + 8
    assert len(present_train) >= 10  # skimage ships these photos in its wheel

    for im in train + val:
        assert im.rgb.dtype == np.uint8 and im.rgb.ndim == 3 and im.rgb.shape[2] == 3
        assert min(im.rgb.shape[:2]) >= 128
        assert im.name.startswith(("skimage/", "procedural/"))
        if im.name.startswith("skimage/"):
            assert im.path is not None and im.path.parent == skimage_dir
        else:
            assert im.path is None and 256 <= im.rgb.shape[0] <= 512
        assert im.rgb.std() > 2.0, im.name  # nothing blank

    names_train, names_val = {im.name for im in train}, {im.name for im in val}
    assert len(names_train) == len(train) and len(names_val) == len(val)
    assert not names_train & names_val
    assert not {_digest(im.rgb) for im in train} & {_digest(im.rgb) for im in val}
    assert "skimage/astronaut" in names_train and "skimage/coffee" in names_val
    kinds_seen = {k for k in PROCEDURAL_KINDS if any(f"/{k}_" in n for n in names_train)}
    assert kinds_seen == set(PROCEDURAL_KINDS)
    assert any(n.endswith("_noisy") for n in names_train)
    # The astronaut is read as the real photo, not a placeholder.
    astro = next(im for im in train if im.name == "skimage/astronaut")
    assert astro.rgb.shape == (512, 512, 3)


def test_deterministic_for_a_seed_and_cached_as_copies() -> None:
    a = embedded_images(seed=3, num_procedural=4)
    b = embedded_images(seed=3, num_procedural=4)
    c = embedded_images(seed=4, num_procedural=4)
    proc = [im for im in a if im.path is None]
    assert [im.name for im in a] == [im.name for im in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.rgb, y.rgb)
    proc_c = [im for im in c if im.path is None]
    assert all(
        _digest(x.rgb) != _digest(y.rgb) for x, y in zip(proc, proc_c, strict=True)
    )  # another seed, other images
    # Callers get writable copies: scribbling on one does not touch the cache.
    a[0].rgb[:] = 0
    assert embedded_images(seed=3, num_procedural=4)[0].rgb.max() > 0
    # Image i does not depend on how many were asked for.
    more = embedded_images(seed=3, num_procedural=6)
    np.testing.assert_array_equal(more[len(a) - 1].rgb, a[-1].rgb)


def test_missing_skimage_files_are_skipped(tmp_path: Path, monkeypatch) -> None:
    shutil.copy(embedded._skimage_dir() / "astronaut.png", tmp_path / "astronaut.png")
    monkeypatch.setattr(embedded, "_skimage_dir", lambda: tmp_path)
    embedded._clear_caches()
    try:
        images = embedded_images(num_procedural=2)
        names = [im.name.removesuffix("_noisy") for im in images]
        assert names == ["skimage/astronaut", "procedural/dead_leaves_0000", "procedural/text_0001"]
        assert images[0].path == tmp_path / "astronaut.png"
        val = embedded_images(split="val", num_procedural=1)  # no val photo present
        assert [im.path for im in val] == [None]
    finally:
        embedded._clear_caches()


@pytest.mark.parametrize("kind", PROCEDURAL_KINDS)
def test_each_procedural_kind(kind: str) -> None:
    img = procedural_image(kind, size=128, rng=np.random.default_rng(7))
    again = procedural_image(kind, size=128, rng=np.random.default_rng(7))
    other = procedural_image(kind, size=128, rng=np.random.default_rng(8))
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, again)
    assert not np.array_equal(img, other)
    assert img.std() > 3.0


def _high_freq_share(img: np.ndarray) -> float:
    """Share of spectral energy above 0.45 cycles/px: where aliasing of fine detail lands."""
    g = img.astype(np.float64).mean(2)
    g -= g.mean()
    power = np.abs(np.fft.fft2(g)) ** 2
    f = np.fft.fftfreq(g.shape[0])
    radius = np.sqrt(f[None, :] ** 2 + f[:, None] ** 2)
    return float(power[radius > 0.45].sum() / power.sum())


def test_zone_plate_is_anti_aliased() -> None:
    zp = procedural_image("zone_plate", size=256, rng=np.random.default_rng(0))
    # A naive chirp sampled straight onto the grid, running past Nyquist, for contrast.
    x = np.arange(256) + 0.5
    r2 = (x[None, :] - 128) ** 2 + (x[:, None] - 128) ** 2
    naive = np.repeat((127.5 + 127.5 * np.cos(np.pi * 0.9 / 256 * r2))[..., None], 3, 2)
    assert _high_freq_share(naive) > 0.05
    assert _high_freq_share(zp) < 0.01


def test_edges_are_anti_aliased_not_binary() -> None:
    img = procedural_image("slanted_edge", size=128, rng=np.random.default_rng(1))
    # Two flat colours per tile plus the in-between values along the slanted edges.
    grey = img.astype(int).sum(2)
    counts = np.unique(grey, return_counts=True)[1]
    assert (counts < 10).sum() >= 20  # many rare, partial-coverage levels


def test_dead_leaves_covers_canvas_with_many_shapes() -> None:
    img = procedural_image("dead_leaves", size=256, rng=np.random.default_rng(2))
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 2000
    # The first-drawn background must not dominate: ~3x coverage leaves it a few percent.
    _, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
    assert counts.max() / counts.sum() < 0.2


def test_sensor_noise_is_mild_and_unbiased() -> None:
    flat = np.full((128, 128, 3), 120, np.uint8)
    noisy = add_sensor_noise(flat, np.random.default_rng(0))
    diff = noisy.astype(float) - 120
    assert 0.3 < diff.std() < 8.0
    assert abs(diff.mean()) < 0.3
    # Explicit levels: shot variance 0.01 * (120/255) dominates, so std ~ 0.069 * 255 ~ 17.5.
    loud = add_sensor_noise(flat, np.random.default_rng(0), shot=0.01, read=0.0)
    assert 15 < (loud.astype(float) - 120).std() < 20


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown procedural kind"):
        procedural_image("mandelbrot", size=64, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="size"):
        procedural_image("text", size=4, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="split"):
        embedded_images(split="test")
    with pytest.raises(ConfigError, match="num_procedural"):
        embedded_images(num_procedural=-1)
    with pytest.raises(ConfigError, match="seed"):
        embedded_images(seed=-1)


def test_description_mentions_what_is_inside() -> None:
    for word in ("scikit-image", "dead-leaves", "zone plate", "text", "no download"):
        assert word in EMBEDDED_DESCRIPTION
