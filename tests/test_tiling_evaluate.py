"""`edgesr evaluate` on large images: tiled net, strip-wise metrics, same numbers; bad images."""

from __future__ import annotations

import resource
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from edgesr.data.folders import DataWarning, LoadedImage
from edgesr.data.imresize import imresize, imresize_rows
from edgesr.data.io import write_image
from edgesr.data.pairs import make_pairs
from edgesr.evaluate import evaluate, super_resolve
from edgesr.evaluate.strips import score_in_strips
from edgesr.upscale import open_upscaler


@pytest.fixture(scope="module")
def images() -> list[LoadedImage]:
    from skimage import data

    return [
        LoadedImage("astronaut", None, data.astronaut()[:301, :397]),
        LoadedImage("coffee", None, np.ascontiguousarray(data.coffee()[50:250, 100:360])),
    ]


@pytest.mark.parametrize("recipe", ["espcn_x4", "srgan_lite_x4"])
def test_tiled_evaluation_gives_identical_numbers(images, recipe: str) -> None:
    up = open_upscaler(recipe=recipe, backend="onnxruntime", threads=1)
    whole = evaluate(up.runner, images, tile=0)
    tiled = evaluate(up.runner, images, tile=24)
    assert whole.to_dict() == tiled.to_dict()  # every PSNR and SSIM, bit for bit
    up.close()


def test_strips_give_the_whole_image_numbers_and_pixels(images) -> None:
    up = open_upscaler(recipe="espcn_x4", backend="onnxruntime", threads=1)
    whole = evaluate(up.runner, images, tile=0)
    up.runner.activate()
    for pair, score, bic in zip(
        make_pairs(images, scale=4), whole.images, whole.bicubic_images, strict=True
    ):
        (psnr, ssim), (bpsnr, bssim), rgb = score_in_strips(
            up, pair, scale=4, want_rgb=True, strip_rows=37
        )
        # Only the order of the final sums differs from the whole-image computation.
        assert psnr == pytest.approx(score.psnr_y, rel=1e-12)
        assert ssim == pytest.approx(score.ssim_y, rel=1e-12)
        assert (bpsnr, bssim) == pytest.approx((bic.psnr_y, bic.ssim_y), rel=1e-12)
        assert np.array_equal(rgb, super_resolve(up.runner, pair.lr_rgb)[1])
    up.close()


@pytest.mark.parametrize(
    "shape,scale", [((101, 77, 3), 0.25), ((40, 33, 3), 4.0), ((57, 61), 1 / 3), ((30, 50, 3), 2)]
)
def test_imresize_rows_is_a_slice_of_imresize(shape, scale) -> None:
    rng = np.random.default_rng(0)
    for img in (
        rng.integers(0, 256, shape, dtype=np.uint8),
        rng.random(shape, dtype=np.float32),
    ):
        full = imresize(img, scale)
        parts = [
            imresize_rows(img, scale, (a, min(full.shape[0], a + 7)))
            for a in range(0, full.shape[0], 7)
        ]
        assert np.array_equal(np.concatenate(parts), full)


def test_too_thin_images_are_skipped_with_their_name(tmp_path: Path, images) -> None:
    """A 1x500 image in an evaluation or training folder used to abort the run."""
    from edgesr.cli import main

    write_image(tmp_path / "good.png", images[1].rgb)
    write_image(tmp_path / "strip.png", np.full((1, 500, 3), 90, np.uint8))
    with pytest.warns(DataWarning, match="strip.png"):
        report = evaluate("bicubic", tmp_path, scale=4)
    assert [s.name for s in report.images] == ["good"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert (
            main(["evaluate", "--model", "bicubic", "--scale", "4", "--data", str(tmp_path)]) == 0
        )
    # Training builds its pairs the same way.
    thin = LoadedImage("thin", tmp_path / "strip.png", np.zeros((500, 3, 3), np.uint8))
    with pytest.warns(DataWarning, match="strip.png"):
        pairs = make_pairs([thin, images[0]], scale=4)
    assert [p.name for p in pairs] == ["astronaut"]


def test_train_runs_past_a_thin_image(tmp_path: Path, images) -> None:
    from edgesr.cli import main

    data_dir = tmp_path / "hr"
    write_image(data_dir / "photo.png", images[0].rgb)
    write_image(data_dir / "sub" / "strip.png", np.full((500, 1, 3), 90, np.uint8))
    args = ["train", "--recipe", "espcn_x4", "--data", str(data_dir), "--val", "none"]
    args += ["--out", str(tmp_path / "run"), "--set", "train.steps=2", "--no-progress"]
    with pytest.warns(DataWarning, match="strip.png"):
        assert main(args) == 0
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.slow
def test_8000x8000_photo_evaluates_under_3_gb(tmp_path: Path) -> None:
    """Peak RSS of `edgesr evaluate` (shipped ESPCN x4, PyTorch) on one 8000x8000 photo."""
    import cv2
    from skimage import data

    big = cv2.resize(data.astronaut(), (8000, 8000), interpolation=cv2.INTER_CUBIC)
    big = cv2.add(big, np.random.default_rng(0).integers(0, 8, big.shape, dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "big.png"), big, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del big
    code = (
        "import resource, sys\n"
        "from edgesr.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "sys.exit(rc)\n"
    )
    args = ["evaluate", "--recipe", "espcn_x4", "--data", str(tmp_path), "--threads", "2"]
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr
    peak_gb = int(out.stdout.split("peak_kb")[1].split()[0]) / 2**20
    assert peak_gb < 3.0, out.stdout  # measured 1.4 GB; the whole-image path needs ~9 GB
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss > 0
