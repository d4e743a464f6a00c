"""The benchmark scripts run end to end on small real models (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
