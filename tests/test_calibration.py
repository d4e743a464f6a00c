from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from edgesr.compress.calibration import (
    available_calibration_sets,
    calibration_dir,
    load_calibration,
    load_calibration_set,
)
from edgesr.data.embedded import SKIMAGE_VAL, procedural_image
from edgesr.data.folders import DataWarning
from edgesr.data.io import write_image
from edgesr.errors import ConfigError, DataError


def _write_frames(folder: Path, count: int, size: int = 128) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"frame_{i:03d}.png"
        write_image(path, procedural_image("shapes", size=size, rng=np.random.default_rng(i)))
        paths.append(path)
    return paths


def test_shipped_sets_are_found_and_valid():
    assert (calibration_dir() / "README.md").is_file()
    names = available_calibration_sets()
    assert "embedded" in names
    for name in names:
        cset = load_calibration_set(name)
        assert cset.name == name and cset.description
        assert cset.domain in ("hr", "lr")


def test_embedded_frames_are_model_ready_and_deterministic():
    frames = load_calibration("embedded", scale=4, color="y", num_images=6, crop=32)
    assert len(frames) == 6
    for f in frames:
        assert f.dtype == np.float32 and f.ndim == 4 and f.shape[:2] == (1, 1)
        assert f.shape[2] <= 32 and f.shape[3] <= 32
        # Y of BT.601 studio range from 8-bit RGB.
        assert f.min() >= 16 / 255 - 1e-6 and f.max() <= 235 / 255 + 1e-6
    again = load_calibration("embedded", scale=4, color="y", num_images=6, crop=32)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))
    other_seed = load_calibration("embedded", scale=4, color="y", num_images=6, crop=32, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(frames, other_seed, strict=True))
    rgb = load_calibration("embedded", scale=2, color="rgb", num_images=2, crop=16)
    assert all(f.shape[:2] == (1, 3) for f in rgb)


def test_embedded_set_leaves_out_validation_images(monkeypatch):
    import edgesr.compress.calibration as calibration

    seen: list[str] = []
    original = calibration._embedded_rgb

    def spy(cset):
        items = original(cset)
        seen.extend(name for name, _ in items)
        return items

    monkeypatch.setattr(calibration, "_embedded_rgb", spy)
    load_calibration("embedded", scale=4, color="y", num_images=1, crop=16)
    held_out = {f"skimage/{n.rsplit('.', 1)[0]}" for n in SKIMAGE_VAL}
    assert seen and not held_out & set(seen)
    assert not any("val_" in name for name in seen)


def test_folder_hr_domain_is_downscaled(tmp_path):
    _write_frames(tmp_path / "cam", 3, size=128)
    frames = load_calibration(tmp_path / "cam", scale=4, color="y", crop=0)
    assert len(frames) == 3
    assert all(f.shape == (1, 1, 32, 32) for f in frames)


def test_folder_lr_domain_uses_frames_as_they_are(tmp_path):
    _write_frames(tmp_path / "cam", 2, size=128)
    frames = load_calibration(tmp_path / "cam", scale=4, color="rgb", crop=40, domain="lr")
    assert all(f.shape == (1, 3, 40, 40) for f in frames)


def test_yaml_set_with_relative_folder(tmp_path):
    _write_frames(tmp_path / "captures" / "day1", 4, size=96)
    yaml_path = tmp_path / "mycam.yaml"
    yaml_path.write_text(
        "name: mycam\ndescription: test captures\nsource: captures\ndomain: lr\n"
        "num_images: 3\ncrop: 24\nseed: 5\n"
    )
    frames = load_calibration(yaml_path, scale=2, color="y")
    assert len(frames) == 3 and all(f.shape == (1, 1, 24, 24) for f in frames)


def test_empty_folder_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty_calib"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_calibration(empty, scale=4, color="y")
    message = str(info.value)
    assert str(empty) in message and "embedded" in message
    assert info.value.exit_code != 0


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_calibration(tmp_path / "nowhere" / "frames", scale=4, color="y")


def test_unreadable_files_are_a_clear_error(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"img{i}.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError) as info:
        load_calibration(bad, scale=2, color="y")
    assert str(bad) in str(info.value) and "can be read" in str(info.value)


def test_some_unreadable_files_are_skipped_with_a_warning(tmp_path):
    folder = tmp_path / "mixed"
    _write_frames(folder, 2, size=64)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = load_calibration(folder, scale=2, color="y", num_images=3)
    assert len(frames) == 3  # two images, the first revisited for a third crop
    assert any(issubclass(w.category, DataWarning) for w in caught)


def test_bad_set_definitions(tmp_path):
    wrong_key = tmp_path / "a.yaml"
    wrong_key.write_text("name: a\nsource: embedded\nnum_frames: 3\n")
    with pytest.raises(ConfigError, match="num_frames"):
        load_calibration_set(wrong_key)
    wrong_domain = tmp_path / "b.yaml"
    wrong_domain.write_text("name: b\nsource: embedded\ndomain: raw\n")
    with pytest.raises(ConfigError, match="domain"):
        load_calibration_set(wrong_domain)
    with pytest.raises(DataError, match="embedded"):
        load_calibration("no_such_set", scale=4, color="y")
    with pytest.raises(ConfigError):
        load_calibration("embedded", scale=4, color="y", num_images=0)
