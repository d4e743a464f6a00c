"""The benchmark scripts run end to end on small real models (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_standin_benchmarks

pytest.importorskip("onnxruntime")

BENCH = Path(__file__).parent / "benchmarks"


def test_bench_latency_times_each_model_in_its_own_process(tmp_path: Path) -> None:
    from edgesr.archs import ESPCN
    from edgesr.export.onnx_export import export_onnx
    from edgesr.modelio import ModelInfo

    paths = []
    for name, feat in (("fp32", 16), ("small", 8)):
        net = ESPCN(scale=2, num_channels=1, num_feat=feat, num_feat2=8, act="relu").eval()
        info = ModelInfo("espcn", 2, "y", {"num_feat": feat}, "test", "0")
        export_onnx(net, tmp_path / f"{name}.onnx", info=info)
        paths.append(tmp_path / f"{name}.onnx")
    out = tmp_path / "lat.json"
    cmd = [sys.executable, str(BENCH / "bench_latency.py"), *map(str, paths)]
    cmd += ["--size", "24x32", "--threads", "1", "--rounds", "2", "--frames", "3"]
    proc = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["baseline"] == "fp32" and [r["model"] for r in result["rows"]] == [
        "fp32",
        "small",
    ]
    for row in result["rows"]:
        assert len(row["round_medians_ms"]) == 2 and row["p50_ms"] > 0
    assert result["rows"][0]["speedup_vs_fp32"] == 1.0
    # An earlier result is never overwritten.
    again = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr
    assert json.loads(out.read_text()) == result


def test_bench_front_scores_every_stage_on_held_out_sets(tmp_path: Path) -> None:
    """bench_front on a small real compress run and a stand-in benchmark root."""

    from edgesr.archs import ESPCN
    from edgesr.compress import compress
    from edgesr.modelio import ModelInfo
    from edgesr.recipe import load_recipe

    root = write_standin_benchmarks(
        tmp_path / "bench",
        {"Set5": ["baby", "bird"], "Set14": ["comic", "ppt3", "lenna"]},
        kinds=("text", "shapes", "dead_leaves"),
        size=64,
    )
    net = ESPCN(scale=2, num_channels=1, num_feat=16, num_feat2=8, act="relu").eval()
    info = ModelInfo("espcn", 2, "y", {"num_feat": 16, "num_feat2": 8, "act": "relu"}, "t", "0")
    recipe = load_recipe(
        "espcn_x2",
        ["compress.int8=false", "compress.kd_steps=5", "compress.batch_size=2", "data.lr_patch=12"],
    )
    run = tmp_path / "run"
    compress(
        net, str(root / "Set14"), recipe=recipe, info=info, out=run, eval_data=str(root / "Set5")
    )
    out = tmp_path / "front.json"
    cmd = [sys.executable, str(BENCH / "bench_front.py"), str(run), "--data-root", str(root)]
    cmd += ["--threads", "1", "--rounds", "2", "--runs-per-round", "2", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert list(result["psnr_y"]) == ["fp32", "pruned", "distilled"]
    assert result["sets"]["lineart"] == ["comic", "ppt3"]
    assert set(result["psnr_y"]["fp32"]) == {"Set5", "Set14", "lineart", "photos", "synthetic"}
    assert all(v == 0.0 for v in result["delta_vs_fp32"]["fp32"].values())
    assert result["latency"]["fp32"]["speedup"] == 1.0
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr


def test_bench_prune_widths_compresses_scores_and_times_each_width(tmp_path: Path) -> None:
    """bench_prune_widths on the shipped espcn_x2 with tiny schedules and a stand-in root."""
    root = write_standin_benchmarks(
        tmp_path / "bench",
        {"Set5": ["baby"], "Set14": ["comic", "ppt3"]},
        kinds=("text", "shapes"),
        seed=1,
    )
    fast = [
        "compress.kd_steps=3",
        "compress.qat_steps=2",
        "compress.calib_images=2",
        "compress.batch_size=2",
        "compress.latency_size=[24, 32]",
        f"compress.eval={root / 'Set5'}",
        "data.lr_patch=12",
    ]
    out, result = tmp_path / "widths", tmp_path / "widths.json"
    cmd = [sys.executable, str(BENCH / "bench_prune_widths.py"), "--recipe", "espcn_x2"]
    cmd += ["--keep", "num_feat=32,num_feat2=16", "--keep", "num_feat=48,num_feat2=8"]
    cmd += ["--out", str(out), "--data-root", str(root), "--json", str(result)]
    cmd += ["--threads", "1", "--rounds", "2", "--runs-per-round", "2"]
    cmd += [x for s in fast for x in ("--set", s)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(result.read_text())
    assert list(got["widths"]) == ["num_feat-32_num_feat2-16", "num_feat-48_num_feat2-8"]
    wide, narrow = got["widths"].values()
    assert narrow["keep"] == {"num_feat": 48, "num_feat2": 8}
    assert narrow["gmacs"] < wide["gmacs"]  # 48 / 8 has fewer MACs than 32 / 16 at x2
    for row in got["widths"].values():
        assert set(row["delta_int8"]) == {"Set5", "Set14", "lineart", "photos", "synthetic"}
        assert row["speedup"] > 0
    manifest = json.loads((out / "num_feat-48_num_feat2-8" / "manifest.json").read_text())
    assert [s["stage"] for s in manifest["stages"]] == [
        "fp32",
        "pruned",
        "distilled",
        "pruned-int8-ort",
    ]
    # Existing runs are not replaced (nor is the JSON: that is checked first, so leave it out).
    again = [c for c in cmd if c not in ("--json", str(result))]
    proc = subprocess.run(again, capture_output=True, text=True)
    assert proc.returncode != 0 and "num_feat-32_num_feat2-16 exists" in proc.stderr
