"""`edgesr compress` end to end on a tiny net, and its bad-input paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_int8_same_on_every_cpu

from edgesr.data.embedded import procedural_image
from edgesr.data.io import write_image
from edgesr.errors import ConfigError, DataError, ModelError, OutputExistsError
from edgesr.recipe import load_recipe
from edgesr.train import train

FAST = [
    "compress.kd_steps=30",
    "compress.qat_steps=10",
    "compress.qdq_qat_steps=12",
    "compress.calib_images=4",
    "compress.latency_runs=3",
    "compress.latency_size=[48, 64]",
    "compress.batch_size=4",
    "data.lr_patch=12",
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgesr", *args], capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(5)
    for i, kind in enumerate(["dead_leaves", "text", "grating", "texture"]):
        write_image(folder / f"{kind}_{i}.png", procedural_image(kind, size=96, rng=rng))
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, images: Path) -> Path:
    """A briefly trained ESPCN x2 (the teacher), trained with edgesr itself."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    recipe = load_recipe(
        "espcn_x2",
        [
            "data.lr_patch=12",
            "data.batch_size=8",
            "train.steps=40",
            "train.threads=1",
            "train.warmup_steps=0",
        ],
    )
    train(recipe, str(images), out=out, val=None, progress=False)
    return out


def _flags(sets: list[str]) -> list[str]:
    return [x for s in sets for x in ("--set", s)]


def _compress(
    out: Path, trained: Path, images: Path, sets: list[str]
) -> subprocess.CompletedProcess[str]:
    """`edgesr compress` of the test teacher, with the test images for KD, eval and calibration."""
    folder = str(images)
    return run(
        "compress", "--recipe", "espcn_x2", "--from", str(trained), "--data", folder,
        "--eval", folder, "--calib", folder, "--out", str(out), *_flags(sets),
    )  # fmt: skip


@pytest.mark.parametrize(
    "extra,code,needle",
    [
        (["--recipe", "espcn_x9"], ConfigError.exit_code, "unknown recipe"),
        (
            ["--recipe", "espcn_x2", "--from", "/nonexistent/run"],
            ModelError.exit_code,
            "does not exist",
        ),
        (
            ["--recipe", "espcn_x2", "--set", "compress.prune_ratio=1.5"],
            ConfigError.exit_code,
            "prune_ratio must be in [0, 1)",
        ),
        (
            ["--recipe", "espcn_x2", "--set", "compress.prune_ratio=-0.1"],
            ConfigError.exit_code,
            "prune_ratio must be in [0, 1)",
        ),
        (
            ["--recipe", "espcn_x2", "--set", "compress.prune_layer_ratios.conv2=0.5"],
            ConfigError.exit_code,
            "no prunable width named 'conv2'",
        ),
        (
            ["--recipe", "espcn_x2", "--calib", "/nonexistent/calib"],
            DataError.exit_code,
            "/nonexistent/calib",
        ),
        (
            ["--recipe", "espcn_x2", "--budget", "no-such-budget"],
            ConfigError.exit_code,
            "no-such-budget",
        ),
    ],
)
def test_bad_input_exits_cleanly_and_writes_nothing(
    tmp_path: Path, trained: Path, extra: list[str], code: int, needle: str
) -> None:
    out = tmp_path / "out"
    args = ["compress", *extra, "--out", str(out)]
    if "--from" not in extra:
        args += ["--from", str(trained)]
    proc = run(*args)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_empty_and_unreadable_calibration_folders(tmp_path: Path, trained: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run(
        "compress",
        "--recipe",
        "espcn_x2",
        "--from",
        str(trained),
        "--calib",
        str(empty),
        "--out",
        str(tmp_path / "o1"),
    )
    assert proc.returncode == DataError.exit_code and str(empty) in proc.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "frame.png").write_bytes(b"not a png")
    proc = run(
        "compress",
        "--recipe",
        "espcn_x2",
        "--from",
        str(trained),
        "--calib",
        str(bad),
        "--out",
        str(tmp_path / "o2"),
    )
    assert proc.returncode == DataError.exit_code and "Traceback" not in proc.stderr
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def _check_int8_models(out: Path, stages: dict, images: Path, int8_paths) -> None:
    """Both INT8 models compute the same on every CPU; the ORT-CPU one by construction."""
    from edgesr.compress.calibration import load_calibration
    from edgesr.runtime.saturation import int8_saturation

    x = load_calibration(str(images), scale=2, color="y", num_images=1)[0]
    names = ("int8-ort", "int8-ort-float-first", "int8-qdq", "pruned-int8-ort", "pruned-int8-qdq")
    int8 = [s for s in names if s in stages]
    assert int8
    for stage in int8:
        assert_int8_same_on_every_cpu(int8_paths, out / stages[stage]["onnx"], x)
    for stage in (s for s in int8 if stages[s]["target"] == "onnxruntime-cpu"):
        path = out / stages[stage]["onnx"]
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        # 7-bit weights; 8-bit in an INT8 first conv, behind the 7-bit image grid (input levels
        # 127), which the stage note states. A float first conv (mixed precision) keeps 255.
        u7 = "7-bit image x 8-bit weights" in stages[stage]["notes"]
        assert meta["edgesr.int8_input_levels"] == ("127" if u7 else "255")
        assert meta["edgesr.int8_portable"] == "true" and int8_saturation(path).free


@pytest.mark.slow
def test_compress_end_to_end(tmp_path: Path, trained: Path, images: Path, int8_paths) -> None:
    out = tmp_path / "compress"
    proc = _compress(out, trained, images, FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # No third-party noise without --verbose: NNCF logs and progress bars, Python warnings,
    # torch's glog-style lines (W1207 ...), C-level "libpng warning:".
    said = proc.stdout + proc.stderr
    assert "INFO:nncf" not in said and "Statistics collection" not in said, said[-3000:]
    noise = [
        line
        for line in said.splitlines()
        if "Warning:" in line or "warning:" in line or (line[:1] in "IWE" and line[1:5].isdigit())
    ]
    assert not noise, said[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    stages = {s["stage"]: s for s in manifest["stages"]}
    # The front: INT8 of the unpruned net, then pruned + distilled and its INT8, both layouts.
    assert list(stages) == [
        "fp32",
        "int8-ort",
        "int8-ort-float-first",
        "int8-qdq",
        "pruned",
        "distilled",
        "pruned-int8-ort",
        "pruned-int8-qdq",
    ]
    for s in stages.values():
        assert (out / s["onnx"]).is_file() and np.isfinite(s["psnr_y"])
        # TensorRT-layout models are timed on the device, not on this CPU.
        timed = s["latency_p50_ms"] is not None
        assert timed == (s["target"] != "tensorrt"), s
        assert not timed or s["latency_p50_ms"] > 0
    assert manifest["front"] and set(manifest["front"]) <= {
        s for s, row in stages.items() if row["target"] != "tensorrt"
    }
    assert stages["pruned"]["params"] < 0.5 * stages["fp32"]["params"]

    def conv_out_channels(path: Path) -> list[int]:
        model = onnx.load(str(path))
        inits = {i.name: i for i in model.graph.initializer}
        return [
            inits[n.input[1]].dims[0]
            for n in model.graph.node
            if n.op_type == "Conv" and n.input[1] in inits
        ]

    assert conv_out_channels(out / stages["pruned"]["onnx"]) == [32, 16, 4]
    assert conv_out_channels(out / stages["fp32"]["onnx"]) == [64, 32, 4]

    from edgesr.export.onnx_passes import ort_graph_ops

    ops = ort_graph_ops(out / stages["pruned-int8-ort"]["onnx"])
    # ORT CPU runs the int8 convs as QLinearConv (the NHWC kernels are com.microsoft.QLinearConv).
    assert sum(n for op, n in ops.items() if op.endswith("QLinearConv")) >= 3, ops
    assert "Conv" not in ops, ops  # no conv left in float
    assert "DepthToSpace" not in ops, ops  # the pixel shuffle runs on the u8 pixels
    for stage in ("int8-ort", "pruned-int8-ort"):
        meta = {p.key: p.value for p in onnx.load(str(out / stages[stage]["onnx"])).metadata_props}
        assert meta["edgesr.int8_pixel_shuffle"] == "u8"
        # ESPCN's input feeds its first conv alone: the default 7-bit image x 8-bit weights.
        assert "first conv: 7-bit image x 8-bit weights" in stages[stage]["notes"]
    # The front's quality point: int8-ort with its first conv in float, the rest QLinearConv.
    assert "(float convs: conv1)" in stages["int8-ort-float-first"]["notes"]
    ops = ort_graph_ops(out / stages["int8-ort-float-first"]["onnx"])
    assert sum(n for op, n in ops.items() if op.endswith("Conv") and "QLinear" not in op) == 1
    assert sum(n for op, n in ops.items() if op.endswith("QLinearConv")) == 2, ops
    # Equalization was measured both ways on the validation images and the better one kept.
    assert set(manifest["equalization"]) == {
        "int8-ort",
        "int8-ort-float-first",
        "int8-qdq",
        "pruned-int8-ort",
        "pruned-int8-qdq",
    }
    for target, eq in manifest["equalization"].items():
        assert eq["mode"] == "auto" and eq["validation"] == "embedded"
        assert eq["signed_activations"] == target.endswith("int8-qdq")
        assert eq["applied"] == (eq["ptq_psnr_y"]["equalized"] > eq["ptq_psnr_y"]["plain"])
        assert set(eq["weight_range_spread"]) == {"conv1", "conv2"}
        assert ("channels equalized" in stages[target]["notes"]) == eq["applied"]
        # The TensorRT layout trains its own number of QAT steps (compress.qdq_qat_steps).
        steps = 12 if target.endswith("int8-qdq") else 10
        assert f" {steps} QAT steps" in stages[target]["notes"], stages[target]["notes"]
    qdq = onnx.load(str(out / stages["int8-qdq"]["onnx"]))
    kinds = {n.op_type for n in qdq.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= kinds
    table = (out / "manifest.md").read_text()
    assert "| int8-ort |" in table and "| pruned-int8-ort |" in table and "Pick for" in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == len(set(rows))  # no row twice
    _check_int8_models(out, stages, images, int8_paths)

    # An existing run is never overwritten silently.
    before = (out / "manifest.json").read_text()
    again = run(
        "compress", "--recipe", "espcn_x2", "--from", str(trained), "--out", str(out), *_flags(FAST)
    )
    assert again.returncode == OutputExistsError.exit_code and "--force" in again.stderr
    assert (out / "manifest.json").read_text() == before

    # The run feeds export: the ORT target takes the fastest ORT-CPU INT8 stage.
    exp = tmp_path / "export"
    proc = run(
        "export",
        "--recipe",
        "espcn_x2",
        "--from",
        str(out),
        "--target",
        "onnxruntime-cpu",
        "--out",
        str(exp),
    )
    assert proc.returncode == 0, proc.stderr
    assert (exp / "espcn_x2.pruned-int8-ort.onnx").is_file()

    # ... and the TensorRT target takes its Q/DQ model: zero points as constants, a device
    # build script with its sidecar, and an engine where a TensorRT-family builder is installed.
    trt = tmp_path / "export-trt"
    proc = run(
        "export", "--recipe", "espcn_x2", "--from", str(out), "--target", "tensorrt",
        "--out", str(trt),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    qdq = onnx.load(str(trt / "espcn_x2.pruned-int8-qdq.onnx"))
    assert "Identity" not in {n.op_type for n in qdq.graph.node}
    sidecar = json.loads((trt / "device" / "espcn_x2.pruned-int8-qdq.sidecar.json").read_text())
    assert (sidecar["scale"], sidecar["color"]) == (2, "y_bt601")


def test_compress_mixed_precision_keeps_chosen_convs_float(
    tmp_path: Path, trained: Path, images: Path, int8_paths
) -> None:
    out = tmp_path / "mixed"
    sets = [*FAST, "compress.prune_ratio=0", "compress.int8_max_drop_db=0.0"]
    proc = _compress(out, trained, images, sets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["mixed_precision"]) == ["fp32"]  # prune_ratio 0: INT8 of FP32 only
    mixed = manifest["mixed_precision"]["fp32"]
    assert mixed["max_drop_db"] == 0.0 and mixed["validation"] == "embedded"
    floats = mixed["float_layers"]
    if mixed["all_int8_ptq_drop_db"] > 0:
        assert set(mixed["sensitivity_ptq_drop_db"]) == {"conv1", "conv2", "conv3"}
        assert 1 <= len(floats) <= 2
    stages = {s["stage"]: s for s in manifest["stages"]}
    from edgesr.export.onnx_passes import ort_graph_ops

    ops = ort_graph_ops(out / stages["int8-ort"]["onnx"])
    float_convs = sum(n for op, n in ops.items() if op.endswith("Conv") and "QLinear" not in op)
    assert float_convs == len(floats), ops
    assert sum(n for op, n in ops.items() if op.endswith("QLinearConv")) == 3 - len(floats)
    _check_int8_models(out, stages, images, int8_paths)


def test_compress_from_python_without_a_latency_function(
    tmp_path: Path, trained: Path, images: Path
) -> None:
    """The stage alone: compress() scores models but times nothing unless given a latency
    function; the table, the report and the budget check say so instead of failing."""
    from edgesr.check.budget import check_compress_run
    from edgesr.check.report import write_report
    from edgesr.compress import compress
    from edgesr.compress.stages import Latency
    from edgesr.modelio import load_model

    recipe = load_recipe("espcn_x2", [*FAST, "compress.int8=false"])
    model, info = load_model(trained)
    result = compress(
        model, str(images), recipe=recipe, info=info, out=tmp_path / "a", eval_data=str(images)
    )
    assert [s.stage for s in result.stages] == ["fp32", "pruned", "distilled"]
    assert all(s.latency_p50_ms is None and s.speedup_vs_fp32 is None for s in result.stages)
    assert "| — | — |" in result.table()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["latency"] is None
    page = write_report(tmp_path / "a").read_text()
    assert "<td>—</td>" in page
    budget = tmp_path / "budget.yaml"
    budget.write_text(
        "schema: 1\nname: t\nscale: 2\nbackend: onnxruntime\nframe: {input: 64x48}\n"
        "limits:\n  latency_p50: 100 ms\n  model_size: 1 MiB\n"
    )
    check = check_compress_run(tmp_path / "a", budget, write=False)[-1]
    assert "latency p50" in check.table() and "MISSING" in check.table(), check.table()

    # With one, every model is timed in a single call, and speed-ups are against FP32.
    calls: list[list[Path]] = []

    def fake_clock(paths):
        calls.append(list(paths))
        return [Latency(p50_ms=10.0 / (i + 1), p90_ms=11.0 / (i + 1)) for i in range(len(paths))]

    result = compress(
        model,
        str(images),
        recipe=recipe,
        info=info,
        out=tmp_path / "b",
        eval_data=str(images),
        latency=fake_clock,
    )
    assert len(calls) == 1 and [p.name for p in calls[0]] == [
        "fp32.onnx",
        "pruned.onnx",
        "distilled.onnx",
    ]
    assert [s.speedup_vs_fp32 for s in result.stages] == [1.0, 2.0, 3.0]

    # Under a budget the orchestration picks the best PSNR that passes, else the fastest.
    from edgesr.pipeline.compress import pick_stage

    def picked(limit_ms: float, extra: str = "") -> tuple[str, int]:
        budget.write_text(
            "schema: 1\nname: t\nscale: 2\nbackend: onnxruntime\nframe: {input: 48x64}\n"
            f"limits:\n  latency_p50: {limit_ms} ms\n{extra}"
        )
        stage, check, passing = pick_stage(result, check_compress_run(tmp_path / "b", budget))
        assert (check.exit_code == 0) == (passing > 0)
        return stage, passing

    assert picked(100) == (max(result.stages, key=lambda s: s.psnr_y).stage, 3)
    assert picked(4) == ("distilled", 1)
    assert picked(1) == ("distilled", 0)
    # p99 is not in a compress manifest: no stage passes, the best that fails nothing is picked.
    best = max(result.stages, key=lambda s: s.psnr_y).stage
    assert picked(100, "  latency_p99: 100 ms\n") == (best, 0)


def test_per_width_ratios_prune_only_the_named_width(
    tmp_path: Path, trained: Path, images: Path
) -> None:
    from edgesr.compress import compress
    from edgesr.modelio import load_model

    sets = [*FAST, "compress.int8=false", "compress.prune_ratio=0"]
    recipe = load_recipe("espcn_x2", [*sets, "compress.prune_layer_ratios.num_feat2=0.5"])
    model, info = load_model(trained)
    result = compress(model, str(images), recipe=recipe, info=info, out=tmp_path / "r")
    assert [s.stage for s in result.stages] == ["fp32", "pruned", "distilled"]
    pruned, _ = load_model(tmp_path / "r" / "distilled.safetensors")
    assert (pruned.conv1.out_channels, pruned.conv2.out_channels) == (64, 16)
    assert "num_feat2 0.5" in result.stages[1].notes and "conv1 64->64" in result.stages[1].notes


def test_stage_table_splits_photos_from_synthetic_images() -> None:
    """On the embedded set (3 photos, synthetic images), the table shows the photos' Δ next to
    the mean and names the near-noiseless images that inflate the mean's loss."""
    from edgesr.compress.stages import CompressResult, StageResult, _by_kind

    def row(stage: str, photo: float, gradient: float) -> StageResult:
        images = {
            "skimage/coffee": photo,
            "procedural/val_text_0001": 27.0,
            "procedural/val_gradient_0006": gradient,
        }
        return StageResult(
            stage=stage, target="any", onnx=f"{stage}.onnx", weights=None, params=1, gmacs=0.1,
            file_bytes=1024, psnr_y=sum(images.values()) / 3, ssim_y=0.9,
            psnr_y_by_kind=_by_kind(images), psnr_y_images=images,
        )  # fmt: skip

    fp32, int8 = row("fp32", 28.5, 56.5), row("int8-ort", 28.4, 50.9)
    int8.delta_psnr_vs_fp32 = int8.psnr_y - fp32.psnr_y
    table = CompressResult(run_dir=Path("."), stages=[fp32, int8]).table()
    assert "Δ photos" in table
    assert "| -1.90 | -0.10 |" in table  # mean over all vs the photo alone
    assert "1 photos and 2 synthetic images" in table and "val_gradient_0006" in table
    # The front ranks by the photos: a model better on the synthetic mean but worse on photos,
    # and slower, is not on it.
    other = row("distilled", 28.2, 56.0)
    for stage, ms in ((fp32, 10.0), (int8, 5.0), (other, 6.0)):
        stage.latency_p50_ms = ms
    result = CompressResult(run_dir=Path("."), stages=[fp32, int8, other])
    assert other.psnr_y > int8.psnr_y
    assert [s.stage for s in result.front()] == ["int8-ort", "fp32"]
    assert "best PSNR on photos" in result.guide()
    # A busy machine: neither the table nor the guide prints a ratio it cannot stand behind.
    fp32.speedup_vs_fp32, int8.speedup_vs_fp32, other.speedup_vs_fp32 = 1.0, 0.96, 1.2
    assert "0.96x FP32 speed" in result.guide()
    for stage in (fp32, int8, other):
        stage.latency_warning = "other processes used 1.2 cores of 2 while timing"
    assert "0.96x" not in result.guide() and "0.96x" not in result.table()
    assert "speed-up unreliable*" in result.guide() and "unreliable*" in result.table()
    # A folder of the user's own images is one kind: no split, no note.
    assert _by_kind({"a.png": 30.0, "b.png": 31.0}) == {}
