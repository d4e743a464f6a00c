"""`edgesr upscale` on real image files and folders, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgesr.cli import main
from edgesr.errors import ConfigError, DataError, DependencyError, ModelError, OutputExistsError
from edgesr.upscale import open_upscaler
from edgesr.upscale.images import read_picture


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:161, 150:221])  # 61x71 RGB


@pytest.fixture(scope="module")
def espcn():
    with open_upscaler(recipe="espcn_x2", threads=1) as up:
        yield up


def bgr(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def test_png_beside_the_input_and_no_overwrite(tmp_path: Path, photo, capsys) -> None:
    src = tmp_path / "shot.png"
    cv2.imwrite(str(src), bgr(photo))
    assert main(["upscale", str(src), "--recipe", "espcn_x2"]) == 0
    out = tmp_path / "shot_x2.png"
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img.shape == (122, 142, 3) and img.dtype == np.uint8
    # Same colours as a bicubic upscale (a Y model keeps bicubic chroma), sharper detail.
    bic = cv2.resize(bgr(photo), (142, 122), interpolation=cv2.INTER_CUBIC).astype(int)
    assert np.abs(img.astype(int) - bic).mean() < 6
    printed = capsys.readouterr().out
    assert "upscaled 1 image" in printed and "ms p99" in printed and "images/s" in printed
    before = out.read_bytes()
    assert main(["upscale", str(src), "--recipe", "espcn_x2"]) == OutputExistsError.exit_code
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["upscale", str(src), "--recipe", "espcn_x2", "--force"]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_jpeg_rgba_grey_and_16_bit_keep_their_kind(tmp_path: Path, photo) -> None:
    rng = np.random.default_rng(0)
    alpha = rng.integers(0, 256, photo.shape[:2], dtype=np.uint8)
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    deep = photo.astype(np.uint16) * 257 + rng.integers(0, 257, photo.shape, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.jpg"), bgr(photo))
    cv2.imwrite(str(tmp_path / "b.png"), np.dstack([bgr(photo), alpha]))
    cv2.imwrite(str(tmp_path / "c.png"), grey)
    cv2.imwrite(str(tmp_path / "d.tif"), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    for name in ("a.jpg", "b.png", "c.png", "d.tif"):
        code = main(
            ["upscale", str(tmp_path / name), "--recipe", "srgan_lite_x4", "--threads", "1"]
        )
        assert code == 0, name
    read = {
        n: cv2.imread(str(tmp_path / n), cv2.IMREAD_UNCHANGED)
        for n in ("a_x4.jpg", "b_x4.png", "c_x4.png", "d_x4.tif")
    }
    assert read["a_x4.jpg"].shape == (244, 284, 3)
    assert read["b_x4.png"].shape == (244, 284, 4)
    up_alpha = cv2.resize(alpha, (284, 244), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(read["b_x4.png"][:, :, 3], up_alpha)  # bicubic, not through the net
    assert read["c_x4.png"].shape == (244, 284)  # grey in, grey out (RGB model: replicated)
    assert read["d_x4.tif"].shape == (244, 284, 3) and read["d_x4.tif"].dtype == np.uint16
    # 16 bit is upscaled in float: the output uses the levels between 8-bit steps ...
    assert np.count_nonzero(read["d_x4.tif"] % 257) > 0.9 * read["d_x4.tif"].size
    # ... and agrees with the 8-bit result of the same picture.
    eight = cv2.imread(str(tmp_path / "b_x4.png"))[:, :, :3].astype(float)
    assert np.abs(read["d_x4.tif"] / 257.0 - eight).mean() < 1.0


def test_folder_mirrors_the_tree_and_skips_bad_files(tmp_path: Path, photo, capsys) -> None:
    src = tmp_path / "shots"
    (src / "day" / "noon").mkdir(parents=True)
    cv2.imwrite(str(src / "one.png"), bgr(photo))
    cv2.imwrite(str(src / "day" / "noon" / "two.jpg"), bgr(photo[:40, :50]))
    cv2.imwrite(str(src / "thin.png"), bgr(np.full((1, 500, 3), 128, np.uint8)))  # 1 px wide
    cv2.imwrite(str(src / "tiny.png"), bgr(photo[:2, :2]))
    good = (src / "one.png").read_bytes()
    (src / "day" / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("not an image")
    assert main(["upscale", str(src), "--recipe", "anchornet_x2", "--threads", "1"]) == 0
    dst = tmp_path / "shots_x2"
    written = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert written == ["day/noon/two.jpg", "one.png"]
    assert cv2.imread(str(dst / "day" / "noon" / "two.jpg")).shape == (80, 100, 3)
    out = capsys.readouterr().out
    for bad in ("thin.png", "tiny.png", "cut.png", "empty.jpg"):
        assert any(bad in line and "warning" in line for line in out.splitlines()), bad
    assert "upscaled 2 images, 4 skipped" in out
    # Existing outputs are refused before anything is written; --force replaces them.
    assert main(["upscale", str(src), "--recipe", "anchornet_x2"]) == OutputExistsError.exit_code
    assert main(["upscale", str(src), "--recipe", "anchornet_x2", "--force"]) == 0
    # An output folder inside the input would feed the next run its own outputs.
    code = main(["upscale", str(src), "--recipe", "anchornet_x2", "--out", str(src / "up")])
    assert code == ConfigError.exit_code


@pytest.mark.parametrize(
    "make",
    [
        lambda p: cv2.imwrite(str(p), np.zeros((1, 500, 3), np.uint8)),
        lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\nbroken"),
        lambda p: None,  # missing
    ],
    ids=["one-pixel-high", "broken", "missing"],
)
def test_a_single_bad_image_is_an_error(tmp_path: Path, make, capsys) -> None:
    src = tmp_path / "bad.png"
    make(src)
    assert main(["upscale", str(src), "--recipe", "espcn_x2"]) == DataError.exit_code
    err = capsys.readouterr().err
    assert str(src) in err and "Traceback" not in err


def test_model_and_option_errors(tmp_path: Path, photo, capsys) -> None:
    src = tmp_path / "p.png"
    cv2.imwrite(str(src), bgr(photo))
    weights = Path(__file__).resolve().parents[1] / "edgesr" / "weights" / "espcn_x4.safetensors"
    # The model file says x4; the recipe asks for x2.
    code = main(["upscale", str(src), "--recipe", "espcn_x2", "--model", str(weights)])
    assert code == ModelError.exit_code
    assert "x4" in capsys.readouterr().err
    assert main(["upscale", str(src)]) == ConfigError.exit_code  # no model at all
    assert main(["upscale", str(src), "--recipe", "espcn_x2", "--size", "8x8"]) == 2
    assert main(["upscale", str(tmp_path / "x.docx"), "--recipe", "espcn_x2"]) == 3
    code = main(["upscale", str(src), "--recipe", "espcn_x2", "--backend", "tensorrt"])
    assert code == ConfigError.exit_code  # a checkpoint is not an engine
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 16)
    code = main(["upscale", str(src), "--model", str(engine), "--backend", "tensorrt"])
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert code == DependencyError.exit_code
        assert "pip install" in capsys.readouterr().err
    else:
        assert code == ModelError.exit_code


def test_backends_give_the_same_image(tmp_path: Path, photo) -> None:
    """torch and ONNX Runtime within one Y level; the C runtime (if built) as ORT, exactly."""
    from edgesr.runtime.capi import find_library

    src = tmp_path / "p.png"
    cv2.imwrite(str(src), bgr(photo))
    outs = {}
    for backend in ("torch", "onnxruntime", "c"):
        dst = tmp_path / f"{backend}.png"
        code = main(
            ["upscale", str(src), "--recipe", "fsrcnn_x2", "--backend", backend, "--out", str(dst)]
        )
        if backend == "c" and find_library() is None:
            assert code == DependencyError.exit_code
            continue
        assert code == 0
        outs[backend] = cv2.imread(str(dst)).astype(int)
    assert np.abs(outs["torch"] - outs["onnxruntime"]).max() <= 2  # 1 Y level -> <= 2 in RGB
    if "c" in outs:
        assert np.array_equal(outs["c"], outs["onnxruntime"])


def test_explicit_tiles_give_the_same_file(tmp_path: Path, photo) -> None:
    src = tmp_path / "p.png"
    cv2.imwrite(str(src), bgr(photo))
    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    assert main(["upscale", str(src), "--recipe", "espcn_x2", "--out", str(whole)]) == 0
    args = ["--recipe", "espcn_x2", "--tile", "16", "--out", str(tiled)]
    assert main(["upscale", str(src), *args]) == 0
    assert np.array_equal(cv2.imread(str(whole)), cv2.imread(str(tiled)))


def test_rgb_and_y_paths_agree(espcn, photo) -> None:
    """upscale_rgb of a Y model puts exactly upscale_y's plane into the output's Y."""
    from edgesr.runtime.upscaler import _rgb_to_ycc

    y_in = np.floor(_rgb_to_ycc(photo)[:, :, 0] * 255 + 0.5).astype(np.uint8)
    rgb = espcn.upscale_rgb(photo)
    y_out = _rgb_to_ycc(rgb)[:, :, 0] * 255
    # RGB is rounded after the YCbCr -> RGB step, so its Y is within half an RGB step.
    assert np.abs(y_out - espcn.upscale_y(y_in).astype(float)).mean() < 0.6


def test_nv12_stays_in_yuv_and_accepts_strided_planes(espcn, photo) -> None:
    from edgesr.runtime.upscaler import _rgb_to_ycc

    ycc = np.floor(_rgb_to_ycc(photo[:60, :70]) * 255 + 0.5).astype(np.uint8)
    y = ycc[:, :, 0].copy()
    uv = ycc[::2, ::2, 1:].copy()  # 30x35x2
    y_out, uv_out = espcn.upscale_nv12(y, uv)
    assert y_out.shape == (120, 140) and uv_out.shape == (60, 70, 2)
    assert y_out.flags.c_contiguous and uv_out.flags.c_contiguous
    assert np.array_equal(y_out, espcn.upscale_y(y))  # Y straight through the net
    # Planes inside bigger buffers (row pitch > width), as camera drivers hand them over.
    y_buf = np.zeros((60, 96), np.uint8)
    y_buf[:, :70] = y
    uv_buf = np.zeros((30, 48, 2), np.uint8)
    uv_buf[:, :35] = uv
    y2, uv2 = espcn.upscale_nv12(y_buf[:, :70], uv_buf[:, :35])
    assert np.array_equal(y2, y_out) and np.array_equal(uv2, uv_out)
    with pytest.raises(DataError, match="even"):
        espcn.upscale_nv12(y[:59], uv)
    rgb_model = open_upscaler(recipe="srgan_lite_x4", threads=1)
    with rgb_model, pytest.raises(ConfigError, match="RGB model"):
        rgb_model.upscale_y(y)


def test_nv12_through_an_rgb_model(photo) -> None:
    from edgesr.runtime.upscaler import _rgb_to_ycc

    rgb = photo[:60, :70]
    ycc = np.floor(_rgb_to_ycc(rgb) * 255 + 0.5).astype(np.uint8)
    with open_upscaler(recipe="srgan_lite_x4", threads=1) as up:
        y_out, uv_out = up.upscale_nv12(ycc[:, :, 0].copy(), ycc[::2, ::2, 1:].copy())
        ref = np.floor(_rgb_to_ycc(up.upscale_rgb(rgb)) * 255 + 0.5).astype(np.uint8)
        assert len(up.times) == 2 and up.times.summary()["model_mean_ms"] > 0
    assert y_out.shape == (240, 280) and uv_out.shape == (120, 140, 2)
    # Chroma subsampling of the input costs a little; the frame is the same picture.
    assert np.abs(y_out.astype(int) - ref[:, :, 0]).mean() < 2
    assert np.abs(uv_out.astype(int) - ref[::2, ::2, 1:]).mean() < 3


def test_read_picture_keeps_depth_and_alpha(tmp_path: Path) -> None:
    img = np.zeros((8, 9, 4), np.uint16)
    img[..., 3] = 40000
    cv2.imwrite(str(tmp_path / "x.png"), img)
    pic = read_picture(tmp_path / "x.png")
    assert pic.depth == 16 and pic.alpha is not None and int(pic.alpha[0, 0]) == 40000


def test_raw_yuv_input_is_dispatched(tmp_path: Path, capsys) -> None:
    """A .nv12 file goes to the raw-stream code, with the stream options it takes."""
    rng = np.random.default_rng(0)
    src = tmp_path / "clip.nv12"
    src.write_bytes(rng.integers(0, 256, 2 * 48 * 64 * 3 // 2, dtype=np.uint8).tobytes())
    args = ["upscale", str(src), "--recipe", "espcn_x2", "--size", "64x48"]
    assert main([*args, "--codec", "h264"]) == ConfigError.exit_code
    assert "--codec does not apply to a raw input" in capsys.readouterr().err
    assert main(args) == 0
    assert (tmp_path / "clip_x2.nv12").stat().st_size == 2 * 96 * 128 * 3 // 2
