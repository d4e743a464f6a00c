"""Tiled inference: bit-identical to whole frames for every shipped net, seams blended."""

from __future__ import annotations

import numpy as np
import pytest

from edgesr.errors import ConfigError
from edgesr.runtime.runners import CallableRunner
from edgesr.runtime.tiling import onnx_receptive_radius, plan_tiles, torch_receptive_radius
from edgesr.upscale import Upscaler, open_upscaler

RECIPES = ["espcn_x4", "fsrcnn_x3", "anchornet_x2", "srgan_lite_x4"]
# ESPCN: 5x5 (2) + 3x3 (1) + 3x3 (1); FSRCNN: 5x5 (2) + 4 x 3x3 (4) + the 9x9 stride-3
# deconvolution (2); AnchorNet x2: 3 convs 3x3; srgan_lite: 7 convs 3x3 (48x5 body).
RADIUS = {"espcn_x4": 4, "fsrcnn_x3": 8, "anchornet_x2": 4, "srgan_lite_x4": 7}


@pytest.fixture(scope="module")
def upscalers():
    opened: dict[tuple[str, str], Upscaler] = {}

    def get(recipe: str, backend: str) -> Upscaler:
        if (recipe, backend) not in opened:
            opened[recipe, backend] = open_upscaler(recipe=recipe, backend=backend, threads=1)
        return opened[recipe, backend]

    yield get
    for up in opened.values():
        up.close()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[120:219, 160:283])  # 99x123: odd sizes


@pytest.mark.parametrize("recipe", RECIPES)
def test_receptive_radius_from_the_architecture(upscalers, recipe: str) -> None:
    torch_up, ort_up = upscalers(recipe, "torch"), upscalers(recipe, "onnxruntime")
    assert torch_receptive_radius(torch_up.runner.model) == RADIUS[recipe]
    assert onnx_receptive_radius(ort_up.runner.path) == RADIUS[recipe]
    assert torch_up.receptive_radius == ort_up.receptive_radius == RADIUS[recipe]


def test_radius_grows_with_depth() -> None:
    from edgesr.archs import build_arch

    shallow = build_arch("anchornet", scale=2, num_channels=1, num_blocks=1, rep=False)
    deep = build_arch("anchornet", scale=2, num_channels=1, num_blocks=6, rep=False)
    assert torch_receptive_radius(deep) - torch_receptive_radius(shallow) == 5


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize("recipe", RECIPES)
def test_tiled_output_is_bit_identical(upscalers, recipe: str, backend: str) -> None:
    up = upscalers(recipe, backend)
    rng = np.random.default_rng(1)
    # Odd sizes; noise is the hardest input (every pixel differs from its neighbours).
    lr = rng.random((up.runner.num_channels, 37, 53), dtype=np.float32)
    up.tile, up.overlap = 0, up.receptive_radius
    whole = up.infer(lr)
    # tile < radius, odd tiles with uneven remainders, tile = a frame side, tile > frame.
    for tile in (5, 16, 37, 200):
        up.tile = tile
        tiled = up.infer(lr)
        assert tiled.shape == whole.shape
        assert np.array_equal(tiled, whole), (tile, float(np.abs(tiled - whole).max()))
    up.tile = None


def test_tiles_are_crops_that_stop_at_frame_borders() -> None:
    tiles = plan_tiles(37, 53, tile=16, overlap=4)
    assert len(tiles) == 3 * 4
    covered = np.zeros((37, 53), int)
    for t in tiles:
        y0, y1, x0, x1 = t.core
        covered[y0:y1, x0:x1] += 1
        r0, r1, q0, q1 = t.crop
        assert r0 == max(0, y0 - 4) and r1 == min(37, y1 + 4)
        assert q0 == max(0, x0 - 4) and q1 == min(53, x1 + 4)
    assert (covered == 1).all()
    # No sliver tile at the end: cores are balanced.
    assert {t.core[1] - t.core[0] for t in tiles} <= {12, 13}


@pytest.mark.parametrize("recipe", RECIPES)
def test_backends_agree_within_one_grey_level(upscalers, photo: np.ndarray, recipe: str) -> None:
    """On the net's own output (Y plane or RGB): a 1-level Y step can be 2 in RGB."""
    torch_up, ort_up = upscalers(recipe, "torch"), upscalers(recipe, "onnxruntime")
    if torch_up.color == "y":
        y = np.ascontiguousarray(photo[:, :, 1])
        a, b = torch_up.upscale_y(y), ort_up.upscale_y(y)
    else:
        a, b = torch_up.upscale_rgb(photo), ort_up.upscale_rgb(photo)
    assert a.shape[:2] == (99 * torch_up.scale, 123 * torch_up.scale)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def _pointwise_runner(scale: int) -> CallableRunner:
    def fn(x: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(np.sin(7 * x) + x, scale, axis=2), scale, axis=3)

    return CallableRunner(fn, scale=scale, color="y", name="pointwise")


def test_blend_weights_sum_to_one() -> None:
    """A net without spatial context gives the same image however it is tiled and blended:
    only true if the two ramps across every seam (and the four at a corner) sum to one."""
    rng = np.random.default_rng(2)
    lr = rng.random((1, 41, 59), dtype=np.float32)
    up = Upscaler(_pointwise_runner(3), radius=6, tile=0)
    whole = up.infer(lr)
    up.tile, up.overlap = 12, 3  # overlap < radius: the blending path
    blended = up.infer(lr)
    np.testing.assert_allclose(blended, whole, rtol=0, atol=2e-6)
    up.receptive_radius, up.overlap = 20, 7  # blending wider than half a tile: refused
    with pytest.raises(ConfigError, match="overlap"):
        up.infer(lr)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_small_overlap_blends_seams_away(upscalers, photo: np.ndarray) -> None:
    """PSNR of tiled vs whole-frame output: exact at overlap >= radius, and blending beats hard
    seams; the error sits only on the seams and the blended seams are not visible."""
    up = upscalers("espcn_x4", "onnxruntime")
    up.tile = 0
    whole = up.upscale_rgb(photo)
    psnr = {}
    for overlap in (0, 1, 2, 4):
        up.tile, up.overlap = 24, overlap
        psnr[overlap] = _psnr(up.upscale_rgb(photo), whole)
    up.tile, up.overlap = None, up.receptive_radius
    assert psnr[4] == float("inf")
    assert psnr[1] > psnr[0] + 3 and psnr[2] > psnr[1]
    assert psnr[2] > 45  # measured 49.8 dB (overlap 0: 37.2, 1: 43.7)


def test_tiled_upscale_of_a_photo_shows_no_seam(upscalers, photo: np.ndarray) -> None:
    """Along each seam column the blended output's step between neighbouring columns is no
    larger than elsewhere in the image (hard seams with overlap 0 are)."""
    up = upscalers("anchornet_x2", "onnxruntime")
    tiles = plan_tiles(*photo.shape[:2], tile=32, overlap=1)
    seams = sorted({t.core[2] * 2 for t in tiles if t.core[2] > 0})

    def seam_step(overlap: int) -> float:
        up.tile, up.overlap = 32, overlap
        out = up.upscale_rgb(photo).astype(np.float64)
        step = np.abs(np.diff(out, axis=1)).mean(axis=(0, 2))  # per column boundary
        return float(np.mean([step[s - 1] for s in seams]) / np.median(step))

    hard, blended = seam_step(0), seam_step(1)
    up.tile, up.overlap = None, up.receptive_radius
    # Measured: hard seams 1.50x the median column step, blended 1.11x.
    assert hard > 1.35
    assert blended < 1.2


def test_bench_tiling_runs() -> None:
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).parent / "benchmarks" / "bench_tiling.py"
    cmd = [sys.executable, str(bench), "--recipes", "espcn_x2", "--tile", "32", "--threads", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "espcn_x2" in out.stdout and out.stdout.rstrip().endswith("identical")


def _im2col_onnx(path) -> None:
    """A 5x5 conv written as Pad + 25 shifted Slices + Concat + 1x1 conv (how edgesr's INT8 ORT
    models write their first conv), then DepthToSpace x2, with edgesr metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    big = np.iinfo(np.int64).max
    nodes = [helper.make_node("Pad", ["lr", "pads"], ["padded"])]
    inits = [numpy_helper.from_array(np.array([0, 0, 2, 2, 0, 0, 2, 2], np.int64), "pads")]
    taps = []
    for dy in range(5):
        for dx in range(5):
            name = f"t{dy}{dx}"
            ends = [dy - 4 if dy < 4 else big, dx - 4 if dx < 4 else big]
            inits += [
                numpy_helper.from_array(np.array([dy, dx], np.int64), f"{name}_s"),
                numpy_helper.from_array(np.array(ends, np.int64), f"{name}_e"),
            ]
            nodes.append(
                helper.make_node("Slice", ["padded", f"{name}_s", f"{name}_e", "axes"], [name])
            )
            taps.append(name)
    inits += [
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        numpy_helper.from_array(rng.normal(0, 0.2, (4, 25, 1, 1)).astype(np.float32), "w"),
    ]
    nodes += [
        helper.make_node("Concat", taps, ["cols"], axis=1),
        helper.make_node("Conv", ["cols", "w"], ["feat"], kernel_shape=[1, 1]),
        helper.make_node("DepthToSpace", ["feat"], ["sr"], blocksize=2, mode="CRD"),
    ]
    graph = helper.make_graph(
        nodes,
        "im2col",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, 1, "sH", "sW"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (("edgesr.scale", "2"), ("edgesr.color", "y_bt601")):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def test_explicit_im2col_counts_its_padding(tmp_path) -> None:
    path = tmp_path / "im2col.onnx"
    _im2col_onnx(path)
    assert onnx_receptive_radius(path) == 2  # the Pad; the 1x1 conv reaches nothing
    with open_upscaler(model=path, threads=1) as up:
        lr = np.random.default_rng(1).random((1, 29, 31), dtype=np.float32)
        up.tile = 0
        whole = up.infer(lr)
        up.tile = 8
        assert np.array_equal(up.infer(lr), whole)
        up.overlap = 1  # below the radius: no longer exact, so the radius matters
        assert not np.array_equal(up.infer(lr), whole)


def test_a_misread_radius_is_widened_by_the_probe(upscalers) -> None:
    """Opening a model checks the graph's radius on a tiled random frame; too small a radius
    (a graph pattern the walk misses) is widened with a warning, never used silently."""
    up = upscalers("espcn_x4", "onnxruntime")
    with pytest.warns(UserWarning, match="reaches further"):
        assert up._probe_radius(1) == 4
    assert up._probe_radius(4) == 4
