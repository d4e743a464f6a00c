from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgesr.data.folders import (
    DataWarning,
    Div2kPaths,
    LoadedImage,
    find_div2k,
    list_images,
    load_hr_folder,
    load_images,
    load_pairs,
    mod_crop,
)
from edgesr.errors import ConfigError, DataError


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


# --- list_images -------------------------------------------------------------------------------


def test_list_images_sorted_case_insensitive_skips_hidden(tmp_path: Path) -> None:
    _save(tmp_path / "b.png", _img(4, 4))
    _save(tmp_path / "A.PNG", _img(4, 4))
    _save(tmp_path / "sub" / "c.JPG", _img(4, 4))
    _save(tmp_path / "sub" / "deeper" / "d.tif", _img(4, 4))
    _save(tmp_path / ".hidden.png", _img(4, 4))
    _save(tmp_path / ".ipynb_checkpoints" / "e.png", _img(4, 4))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "folder.png").mkdir()  # a folder with an image-like name is not an image

    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["A.PNG", "b.png", "sub/c.JPG", "sub/deeper/d.tif"]
    flat = [p.name for p in list_images(tmp_path, recursive=False)]
    assert flat == ["A.PNG", "b.png"]


def test_list_images_errors_name_the_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as err:
        list_images(missing)
    assert str(missing) in str(err.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    with pytest.raises(DataError, match=r"no images \(png/jpg") as err:
        list_images(empty)
    assert str(empty) in str(err.value)

    with pytest.raises(DataError, match="not a folder"):
        list_images(empty / "readme.txt")


# --- mod_crop ----------------------------------------------------------------------------------


def test_mod_crop_top_left_anchored() -> None:
    img = np.arange(10 * 13 * 3).reshape(10, 13, 3)
    out = mod_crop(img, 4)
    assert out.shape == (8, 12, 3)
    np.testing.assert_array_equal(out, img[:8, :12])
    assert mod_crop(img[:, :, 0], 3).shape == (9, 12)
    assert mod_crop(img, 1).shape == img.shape
    with pytest.raises(ConfigError):
        mod_crop(img, 0)
    with pytest.raises(DataError, match="smaller than the scale"):
        mod_crop(img[:3], 4)


# --- load_images / load_hr_folder --------------------------------------------------------------


def test_load_images_skips_bad_files_with_warnings(tmp_path: Path) -> None:
    good = _save(tmp_path / "good.png", _img(20, 30, 1))
    small = _save(tmp_path / "small.png", _img(8, 30, 2))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("not an image")

    with pytest.warns(DataWarning) as record:
        loaded = load_images([empty, good, text, small], min_size=10, root=tmp_path)
    messages = [str(w.message) for w in record]
    assert len(messages) == 3
    assert any("empty.png" in m and "empty" in m for m in messages)
    assert any("text.png" in m and "decodable" in m for m in messages)
    assert any("small.png" in m and "8x30" in m and "10" in m for m in messages)

    assert [im.name for im in loaded] == ["good"]
    assert isinstance(loaded[0], LoadedImage)
    assert loaded[0].path == good and loaded[0].size == (20, 30)
    np.testing.assert_array_equal(loaded[0].rgb, _img(20, 30, 1))


def test_load_images_all_bad_raises_naming_folder_and_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "broken_set"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.jpg").write_text("hello")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError) as err:
            load_images(list_images(folder))
    msg = str(err.value)
    assert str(folder) in msg and "none of the 2" in msg
    assert "a.png" in msg and "empty" in msg and "b.jpg" in msg


def test_load_images_on_bad_modes(tmp_path: Path) -> None:
    good = _save(tmp_path / "good.png", _img(6, 6))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    with pytest.raises(DataError, match="bad.png"):
        load_images([good, bad], on_bad="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "ignore" must not warn
        assert [im.name for im in load_images([good, bad], on_bad="ignore")] == ["good"]
    with pytest.raises(ConfigError):
        load_images([good], on_bad="explode")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no image files"):
        load_images([])


def test_load_hr_folder_names_are_relative_paths(tmp_path: Path) -> None:
    _save(tmp_path / "x" / "one.png", _img(5, 7, 1))
    _save(tmp_path / "two.bmp", _img(6, 4, 2))
    loaded = load_hr_folder(tmp_path)
    assert [im.name for im in loaded] == ["two", "x/one"]
    assert [im.rgb.shape for im in loaded] == [(6, 4, 3), (5, 7, 3)]


# --- DIV2K -------------------------------------------------------------------------------------


def _div2k(root: Path, scale: int = 4, hr_size=(40, 56), n: int = 2) -> Path:
    """A miniature DIV2K tree: train/valid HR plus bicubic LR for one scale."""
    for split, first in (("train", 1), ("valid", 801)):
        for i in range(first, first + n):
            hr = _img(*hr_size, seed=i)
            _save(root / f"DIV2K_{split}_HR" / f"{i:04d}.png", hr)
            lr = cv2.resize(
                hr, (hr_size[1] // scale, hr_size[0] // scale), interpolation=cv2.INTER_AREA
            )
            _save(root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}" / f"{i:04d}x{scale}.png", lr)
    return root


def test_find_div2k_from_root_and_from_hr_folder(tmp_path: Path) -> None:
    root = _div2k(tmp_path / "DIV2K")
    p = find_div2k(root, scale=4)
    assert p == Div2kPaths(
        hr_dir=root / "DIV2K_train_HR",
        lr_dir=root / "DIV2K_train_LR_bicubic" / "X4",
        split="train",
        scale=4,
    )
    assert find_div2k(root).lr_dir is None
    assert find_div2k(root, scale=3).lr_dir is None  # no X3 folder: LR is made on the fly
    v = find_div2k(root, split="val", scale=4)
    assert v.hr_dir.name == "DIV2K_valid_HR" and v.lr_dir == root / "DIV2K_valid_LR_bicubic" / "X4"
    # The parent of the DIV2K folder works too, and so does the HR folder itself.
    assert find_div2k(tmp_path).hr_dir == root / "DIV2K_train_HR"
    hr_itself = find_div2k(root / "DIV2K_valid_HR", scale=4)
    assert hr_itself.split == "valid" and hr_itself.lr_dir == root / "DIV2K_valid_LR_bicubic" / "X4"


def test_find_div2k_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="DIV2K_train_HR"):
        find_div2k(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        find_div2k(tmp_path / "missing")
    with pytest.raises(ConfigError, match="split"):
        find_div2k(tmp_path, split="test")


def test_load_hr_folder_uses_div2k_train_hr_only(tmp_path: Path) -> None:
    root = _div2k(tmp_path, n=3)
    loaded = load_hr_folder(root)
    # Not the valid split, not the LR images.
    assert [im.name for im in loaded] == ["0001", "0002", "0003"]
    assert all(im.rgb.shape == (40, 56, 3) for im in loaded)


def test_load_pairs_div2k_naming(tmp_path: Path) -> None:
    root = _div2k(tmp_path)
    pairs = load_pairs(root / "DIV2K_train_HR", root / "DIV2K_train_LR_bicubic" / "X4", 4)
    assert [(hr.name, lr.name) for hr, lr in pairs] == [("0001", "0001"), ("0002", "0002")]
    hr, lr = pairs[0]
    assert hr.rgb.shape == (40, 56, 3) and lr.rgb.shape == (10, 14, 3)
    assert lr.path is not None and lr.path.name == "0001x4.png"
    np.testing.assert_array_equal(hr.rgb, _img(40, 56, seed=1))
    # The LR_bicubic root (X4 inside it) and auto-discovery from the DIV2K root both work.
    assert len(load_pairs(root / "DIV2K_train_HR", root / "DIV2K_train_LR_bicubic", 4)) == 2
    assert [hr.name for hr, _ in load_pairs(root, None, 4)] == ["0001", "0002"]


def test_load_pairs_same_name_with_mod_crop(tmp_path: Path) -> None:
    hr_img = _img(50, 67, seed=5)  # mod-crop to 48x64 for x4
    _save(tmp_path / "hr" / "bird.png", hr_img)
    _save(tmp_path / "lr" / "bird.png", _img(12, 16, seed=6))
    [(hr, lr)] = load_pairs(tmp_path / "hr", tmp_path / "lr", 4)
    assert hr.rgb.shape == (48, 64, 3) and lr.rgb.shape == (12, 16, 3)
    np.testing.assert_array_equal(hr.rgb, hr_img[:48, :64])  # top-left anchored


def test_load_pairs_size_mismatch_names_both_sizes(tmp_path: Path) -> None:
    _save(tmp_path / "hr" / "a.png", _img(48, 64))
    _save(tmp_path / "lr" / "ax4.png", _img(16, 21))  # an x3 LR in an x4 folder
    with pytest.raises(DataError) as err:
        load_pairs(tmp_path / "hr", tmp_path / "lr", 4)
    msg = str(err.value)
    assert "16x21" in msg and "48x64" in msg and "12x16" in msg and "ax4.png" in msg


def test_load_pairs_missing_partner(tmp_path: Path) -> None:
    _save(tmp_path / "hr" / "a.png", _img(8, 8))
    _save(tmp_path / "hr" / "b.png", _img(8, 8))
    _save(tmp_path / "lr" / "a.png", _img(4, 4))
    with pytest.raises(DataError, match=r"1 HR images .* no LR partner.*: b") as err:
        load_pairs(tmp_path / "hr", tmp_path / "lr", 2)
    assert str(tmp_path / "lr") in str(err.value)
    with pytest.raises(DataError, match="pass lr_folder"):
        load_pairs(tmp_path / "hr", None, 2)
    # A DIV2K tree without the X3 download says where LR was expected.
    root = _div2k(tmp_path / "d")
    with pytest.raises(DataError, match=r"no pre-made LR .*X3"):
        load_pairs(root, None, 3)
