from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgesr.data.io import IMAGE_EXTENSIONS, WRITE_EXTENSIONS, read_image, write_image
from edgesr.errors import ConfigError, DataError


def _pattern(h: int = 12, w: int = 17) -> np.ndarray:
    """An RGB image whose three channels all differ, so a BGR/RGB swap cannot pass."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 15) % 256, (y * 21) % 256, (x * y * 7 + 40) % 256], -1).astype(np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(
    width: int, height: int, bit_depth: int, colour_type: int, rows: bytes, extra=b""
) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + extra
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff", ".webp"])
def test_lossless_rgb_formats_round_trip_exactly(tmp_path: Path, ext: str) -> None:
    rgb = _pattern()
    path = tmp_path / f"img{ext}"
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []  # >100 = lossless
    assert cv2.imwrite(str(path), rgb[:, :, ::-1], params)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (12, 17, 3)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_reads_as_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 220  # strongly red: a channel swap would make it blue
    path = tmp_path / "red.JPG"
    assert cv2.imwrite(str(path), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 98])
    out = read_image(path)
    assert out.shape == (16, 16, 3)
    assert abs(int(out[..., 0].mean()) - 220) <= 3
    assert out[..., 2].mean() < 5


def test_greyscale_is_replicated_to_three_channels(tmp_path: Path) -> None:
    grey = _pattern()[:, :, 0]
    path = tmp_path / "grey.png"
    assert cv2.imwrite(str(path), grey)
    out = read_image(path)
    assert out.shape == (12, 17, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_rgba_drops_alpha_and_keeps_colour_under_transparent_pixels(tmp_path: Path) -> None:
    rgb = _pattern()
    alpha = np.zeros(rgb.shape[:2], np.uint8)  # fully transparent: compositing would lose it all
    alpha[:, :5] = 255
    bgra = np.dstack([rgb[:, :, ::-1], alpha])
    path = tmp_path / "rgba.png"
    assert cv2.imwrite(str(path), bgra)
    np.testing.assert_array_equal(read_image(path), rgb)


def test_16_bit_is_rounded_to_8_bit_and_float_keeps_precision(tmp_path: Path) -> None:
    values = np.array([0, 128, 129, 257, 32768, 65534, 65535], np.uint16)
    img16 = np.repeat(values[None, :, None], 3, axis=2)
    img16[..., 0] = values[::-1]  # make R differ from B so a swap is caught
    for ext in (".png", ".tif"):
        path = tmp_path / f"deep{ext}"
        assert cv2.imwrite(str(path), img16[:, :, ::-1])
        u8 = read_image(path)
        # round(v * 255 / 65535): 128 -> 0 (0.498), 129 -> 1 (0.502), 32768 -> 128 (127.502)
        np.testing.assert_array_equal(u8[0, :, 2], [0, 0, 1, 1, 128, 255, 255])
        np.testing.assert_array_equal(u8[0, :, 0], [255, 255, 128, 1, 1, 0, 0])
        f32 = read_image(path, dtype=np.float32)
        assert f32.dtype == np.float32
        np.testing.assert_allclose(f32[0, :, 2], values / 65535.0, rtol=0, atol=1e-7)
        # The float path keeps 16-bit steps that 8-bit would merge.
        assert f32[0, 5, 2] != f32[0, 6, 2]


def test_float_dtype_from_8_bit(tmp_path: Path) -> None:
    rgb = _pattern()
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    out = read_image(path, dtype=np.float64)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, rgb / 255.0, atol=1e-7)
    with pytest.raises(ConfigError, match="dtype"):
        read_image(path, dtype=np.int16)


def test_palette_png_is_expanded_to_rgb(tmp_path: Path) -> None:
    palette = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])
    rows = b"\x00" + bytes([0, 1]) + b"\x00" + bytes([2, 1])  # filter byte + 2 indices per row
    path = tmp_path / "palette.png"
    path.write_bytes(_png(2, 2, 8, 3, rows, extra=_png_chunk(b"PLTE", palette)))
    out = read_image(path)
    expected = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [0, 255, 0]]], np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_non_ascii_path(tmp_path: Path) -> None:
    folder = tmp_path / "données_画像"
    folder.mkdir()
    path = folder / "ü-bild.png"
    rgb = _pattern()
    write_image(path, rgb)
    np.testing.assert_array_equal(read_image(path), rgb)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.png", b"", "empty"),
        ("notes.png", b"these are notes, not pixels\n", "not a decodable image"),
        ("zero.png", _png(0, 0, 8, 2, b""), "not a decodable image"),
        ("wide0.png", _png(0, 4, 8, 0, b"\x00" * 4), "not a decodable image"),
    ],
)
def test_bad_files_raise_data_error_naming_file(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=reason) as err:
        read_image(path)
    assert name in str(err.value)


def test_truncated_png_and_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for ext, cut in ((".png", 0.5), (".png", 0.98), (".jpg", 0.5), (".jpg", 0.995)):
        ok, buf = cv2.imencode(ext, img)
        assert ok
        data = buf.tobytes()
        path = tmp_path / f"cut_{cut}{ext}"
        path.write_bytes(data[: int(len(data) * cut)])
        with pytest.raises(DataError, match="truncated|not a decodable") as err:
            read_image(path)
        assert path.name in str(err.value)
        # The intact file reads fine, so the check is not rejecting everything.
        good = tmp_path / f"good{ext}"
        good.write_bytes(data)
        assert read_image(good).shape == (64, 64, 3)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DataError, match="folder"):
        read_image(tmp_path)


def test_write_uint8_round_trip_and_no_temp_files_left(tmp_path: Path) -> None:
    rgb = _pattern()
    for ext in (".png", ".bmp", ".tif"):
        path = tmp_path / "sub" / f"out{ext}"  # parent is created
        write_image(path, rgb)
        np.testing.assert_array_equal(read_image(path), rgb)
        # Written as RGB on disk (OpenCV's own reader returns BGR).
        np.testing.assert_array_equal(cv2.imread(str(path))[:, :, ::-1], rgb)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["out.bmp", "out.png", "out.tif"]


def test_write_float_clips_and_rounds(tmp_path: Path) -> None:
    img = np.array([[[-0.5, 0.5, 1.5], [0.2, 0.999, np.nan]]], np.float32)
    path = tmp_path / "f.png"
    write_image(path, img)
    np.testing.assert_array_equal(read_image(path), [[[0, 128, 255], [51, 255, 0]]])


def test_write_grey_and_jpeg(tmp_path: Path) -> None:
    grey = _pattern()[:, :, 1]
    write_image(tmp_path / "g.png", grey)
    out = read_image(tmp_path / "g.png")
    np.testing.assert_array_equal(out[:, :, 0], grey)
    np.testing.assert_array_equal(out[:, :, 2], grey)
    flat = np.full((16, 16, 3), (200, 40, 90), np.uint8)
    write_image(tmp_path / "c.jpeg", flat)
    assert np.abs(read_image(tmp_path / "c.jpeg").astype(int) - flat).max() <= 4


def test_write_rejects_bad_extension_and_arrays(tmp_path: Path) -> None:
    rgb = _pattern()
    with pytest.raises(ConfigError, match=r"\.gif"):
        write_image(tmp_path / "x.gif", rgb)
    with pytest.raises(ConfigError, match="extension"):
        write_image(tmp_path / "noext", rgb)
    with pytest.raises(DataError, match="shape"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(DataError, match="int32"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 3), np.int32))
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_when_replace_fails(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "keep.png"
    old = _pattern()
    write_image(path, old)

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(DataError, match="No space left"):
        write_image(path, np.zeros_like(old))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_image(path), old)  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]  # no temp file left


def test_overwrite_replaces_content(tmp_path: Path) -> None:
    path = tmp_path / "o.png"
    write_image(path, np.zeros((5, 5, 3), np.uint8))
    write_image(path, np.full((3, 4, 3), 7, np.uint8))
    out = read_image(path)
    assert out.shape == (3, 4, 3) and int(out.max()) == 7


def test_extension_lists() -> None:
    for ext in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        assert ext in IMAGE_EXTENSIONS
        assert ext in WRITE_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)
