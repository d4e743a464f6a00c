"""Budgets: strict loading with units, the check's verdicts and margins, result matching, CLI
exit codes (0 pass, 10 fail, 11 missing)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_profile import export_tiny_onnx

from edgesr.check.budget import (
    BUDGET_DIR,
    LIMITS,
    Budget,
    BudgetFailed,
    MeasurementMissing,
    available_budgets,
    budget_from_dict,
    check_budget,
    check_compress_run,
    load_budget,
    load_check_json,
    measurements_from_results,
    parse_allowances,
    read_results,
)
from edgesr.cli import main
from edgesr.errors import ConfigError, DataError, EdgesrError, ModelError
from edgesr.profile import minimal as core

BASE: dict[str, Any] = {
    "schema": 1,
    "name": "test-budget",
    "scale": 2,
    "backend": "onnxruntime",
    "frame": {"output": "32x48"},
    "eval_data": "embedded",
    "limits": {
        "latency_p50": "12 ms",
        "latency_p99": "20 ms",
        "throughput": "50 fps",
        "power": "5 W",
        "energy_per_frame": "60 mJ",
        "psnr_y": "30 dB",
        "psnr_gain": "0.5 dB",
        "ssim_y": 0.8,
        "model_size": "1 MiB",
    },
}


def budget(**changes: Any) -> Budget:
    raw = {**BASE, **changes}
    if "limits" in changes:
        raw["limits"] = changes["limits"]
    return budget_from_dict(raw, origin="test.yaml")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_onnx(tmp_path_factory.mktemp("m") / "tiny.onnx")


def profile_doc(
    model: Path,
    *,
    ms: float = 10.0,
    size: tuple[int, int] = (16, 24),
    backend: str = "onnxruntime",
    power: dict[str, Any] | None = None,
    quality: dict[str, Any] | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A real edgesr.profile/1 document with controlled numbers (built by the profiler's code)."""
    times = [ms / 1000.0] * 19 + [ms * 1.5 / 1000.0]
    if power is None:
        power = core.integrate([(0.0, 4.0), (1.0, 4.0)], counter=False, frames=100)
    return core.build_result(
        identity=identity or core.model_identity(model),
        backend=backend,
        backend_detail={},
        size=size,
        batch=1,
        channels=1,
        scale=2,
        threads=None,
        warmup=1,
        times_s=times,
        power=power,
        environment=core.collect_environment(),
        quality=quality,
    )


GOOD_QUALITY = {"data": "embedded", "psnr_y": 31.0, "ssim_y": 0.9, "bicubic": {"psnr_y": 30.0}}


# --------------------------------------------------------------------------------------------
# Loading


def test_shipped_budgets_load() -> None:
    names = available_budgets()
    assert {"jetson-orin-nano-1080p30", "cpu-2core-1080p", "phone-npu-1080p30"} <= set(names)
    for name in names:
        b = load_budget(name)
        assert b.name == name and b.limits and b.source.endswith(f"{name}.yaml")
        assert b.frame is not None and b.frame.lr_size(b.scale) is not None
    orin = load_budget(BUDGET_DIR / "jetson-orin-nano-1080p30.yaml")
    assert orin.backend == "tensorrt" and orin.frame.lr_size(4) == (270, 480)
    assert orin.limit("energy_per_frame").value == pytest.approx(0.25)
    assert orin.limit("model_size").value == 2 * 2**20


@pytest.mark.parametrize(
    "key,text,value",
    [
        ("latency_p99", "33.3 ms", 33.3),
        ("latency_p99", "0.5 s", 500.0),
        ("latency_p99", "250us", 0.25),
        ("power", "500 mW", 0.5),
        ("energy_per_frame", "150 mJ", 0.15),
        ("energy_per_frame", "2 J", 2.0),
        ("model_size", "512 KiB", 512 * 1024),
        ("model_size", "1.5 MB", 1.5e6),
        ("throughput", "30 fps", 30.0),
        ("psnr_y", "30.5 dB", 30.5),
        ("ssim_y", 0.85, 0.85),
        ("ssim_y", "0.85", 0.85),
    ],
)
def test_units(key: str, text: Any, value: float) -> None:
    b = budget(limits={key: text})
    assert b.limit(key).value == pytest.approx(value)


@pytest.mark.parametrize(
    "changes,needle",
    [
        (
            {"limits": {"latency_p99": "33 mW"}},
            "has unit 'mW', which is not accepted here; accepted units: ms, s, us, µs",
        ),
        ({"limits": {"power": 5}}, "needs a unit: write it like '5 W' (accepted units: W, mW)"),
        ({"limits": {"latency_p99": "-3 ms"}}, "must be a positive limit"),
        ({"limits": {"model_size": "0 MiB"}}, "must be a positive limit"),
        ({"limits": {"ssim_y": 1.5}}, "is a ratio in (0, 1]"),
        ({"limits": {"psnr_y": "thirty dB"}}, "must be a number with a unit"),
        (
            {"limits": {"lattency_p99": "3 ms"}},
            "unknown key 'limits.lattency_p99' (did you mean 'limits.latency_p99'?); valid keys "
            "under 'limits': latency_p50, latency_p90",
        ),
        ({"limits": {}}, "'limits' must be a non-empty mapping"),
        ({"limts": {}}, "unknown key 'limts' (did you mean 'limits'?); valid keys: schema, name"),
        ({"schema": 2}, "'schema: 2' is not supported"),
        ({"backend": "nnapi"}, "must be one of torch, onnxruntime, c, tensorrt"),
        ({"frame": {"output": "1080p", "input": "270x480"}}, "needs exactly one of"),
        ({"frame": {"outptu": "1080p"}}, "unknown key 'frame.outptu'"),
        ({"frame": {"output": "huge"}}, "must be HEIGHTxWIDTH"),
        ({"scale": 5}, "must be 2, 3, 4 or 8"),
        ({"threads": 0}, "must be a positive integer"),
        ({"scale": None}, "depend on the upscaling factor; set 'scale'"),
        ({"frame": None}, "latency and power limits hold at a frame size"),
    ],
)
def test_malformed_budgets(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        budget(**changes)
    assert needle in str(err.value) and "test.yaml" in str(err.value)


def test_budget_files_and_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean jetson-orin-nano-1080p30"):
        load_budget("jetson-orin-nano-1080p3")
    with pytest.raises(ConfigError, match="does not exist"):
        load_budget(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: 1\nlimits: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_budget(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_budget(bad)
    named = tmp_path / "my-device.yml"
    named.write_text("schema: 1\nlimits: {model_size: 1 MiB}\n")
    assert load_budget(named).name == "my-device"  # the file name when the budget has none


def test_output_frame_must_divide_by_the_scale() -> None:
    b = budget(frame={"output": "1080p"})
    assert b.frame.lr_size(4) == (270, 480) and b.frame.lr_size(None) is None
    with pytest.raises(ConfigError, match="not a multiple of the model.s x3"):
        budget(frame={"output": "1000x1000"}).frame.lr_size(3)


# --------------------------------------------------------------------------------------------
# Verdicts


def test_all_lines_pass_with_margins(tiny: Path) -> None:
    m = measurements_from_results([("p.json", profile_doc(tiny, quality=GOOD_QUALITY))])
    result = check_budget(budget(), m)
    assert result.verdict == "pass" and result.exit_code == 0
    lines = {line.key: line for line in result.lines}
    assert lines["scale"].status == "pass"
    assert lines["latency_p50"].measured == pytest.approx(10.0)
    assert lines["latency_p50"].margin == pytest.approx(2.0)
    assert lines["latency_p50"].margin_pct == pytest.approx(100 * 2 / 12)
    assert lines["psnr_gain"].measured == pytest.approx(1.0)
    assert lines["power"].measured == pytest.approx(4.0)
    assert lines["energy_per_frame"].measured == pytest.approx(0.04)
    assert lines["energy_per_frame"].margin_text() == "+20.0 mJ (+33.3%)"
    assert lines["model_size"].measured == tiny.stat().st_size
    result.raise_for_verdict()
    table = result.table()
    assert "latency p50" in table and "verdict: PASS" in table
    assert "onnxruntime at LR 16x24" in table


def test_failing_line_exit_10(tiny: Path) -> None:
    m = measurements_from_results([("p.json", profile_doc(tiny, ms=25.0, quality=GOOD_QUALITY))])
    result = check_budget(budget(), m)
    assert result.verdict == "fail" and result.exit_code == BudgetFailed.exit_code == 10
    failed = {line.key for line in result.failed}
    assert failed == {"latency_p50", "latency_p99", "throughput"}
    p99 = next(x for x in result.lines if x.key == "latency_p99")
    assert p99.margin < 0 and p99.margin_text().startswith("-")
    with pytest.raises(BudgetFailed, match="3 line.s. fail .*latency p50 25.00 ms vs 12 ms"):
        result.raise_for_verdict()


def test_missing_power_exit_11_unless_allowed(tiny: Path) -> None:
    doc = profile_doc(
        tiny, power=core.not_measured("no usable power sensor (rapl: ...)"), quality=GOOD_QUALITY
    )
    m = measurements_from_results([("p.json", doc)])
    result = check_budget(budget(), m)
    assert result.verdict == "missing" and result.exit_code == MeasurementMissing.exit_code == 11
    assert {x.key for x in result.missing} == {"power", "energy_per_frame"}
    assert "no usable power sensor" in result.missing[0].note
    with pytest.raises(MeasurementMissing, match="--allow-unmeasured power"):
        result.raise_for_verdict()
    waived = check_budget(budget(), m, allow_unmeasured=["power"])
    assert waived.verdict == "pass" and {x.status for x in waived.lines} == {"pass", "waived"}
    assert check_budget(budget(), m, allow_unmeasured=["energy_per_frame,power"]).verdict == "pass"
    slow = measurements_from_results(
        [("p.json", {**doc, "latency": {**doc["latency"], "p99_ms": 99.0}})]
    )
    assert check_budget(budget(), slow).exit_code == 10  # a failure outranks a gap


def test_measurement_conditions_must_match(tiny: Path) -> None:
    doc = profile_doc(tiny, size=(270, 480), backend="tensorrt", quality=GOOD_QUALITY)
    result = check_budget(budget(), measurements_from_results([("orin.json", doc)]))
    missing = {x.key: x.note for x in result.missing}
    assert set(missing) == {"latency_p50", "latency_p99", "throughput", "power", "energy_per_frame"}
    assert "needs a batch-1 profile on onnxruntime, LR 16x24" in missing["latency_p50"]
    assert "have: tensorrt at LR 270x480 [orin.json]" in missing["latency_p50"]
    wrong_scale = check_budget(
        budget(scale=4, frame={"output": "64x96"}), measurements_from_results([("p.json", doc)])
    )
    assert next(x for x in wrong_scale.lines if x.key == "scale").status == "fail"
    elsewhere = {**GOOD_QUALITY, "data": "/data/Set5"}
    q = check_budget(
        budget(), measurements_from_results([("p.json", profile_doc(tiny, quality=elsewhere))])
    )
    assert (
        "needs PSNR/SSIM measured on 'embedded'"
        in next(x for x in q.lines if x.key == "psnr_y").note
    )
    same_set = check_budget(
        budget(eval_data="Set5"),
        measurements_from_results([("p.json", profile_doc(tiny, quality=elsewhere))]),
    )
    assert next(x for x in same_set.lines if x.key == "psnr_y").status == "pass"


def test_results_from_another_model_are_refused(tiny: Path, tmp_path: Path) -> None:
    other = export_tiny_onnx(
        tmp_path / "other.onnx", mode="nearest", recipe_hash="ffffeeeeddddcccc"
    )
    same_recipe = export_tiny_onnx(tmp_path / "pruned.onnx", mode="nearest")
    doc = profile_doc(other)
    with pytest.raises(ModelError, match="results from another model .different recipe hash"):
        measurements_from_results([("other.json", doc)], model=core.model_identity(tiny))
    with pytest.raises(ModelError, match="a different model file"):
        measurements_from_results(
            [("p.json", profile_doc(same_recipe))], model=core.model_identity(tiny)
        )
    with pytest.raises(ModelError, match="results are about different models"):
        measurements_from_results([("a.json", profile_doc(tiny)), ("b.json", doc)])
    # A device profile of an engine built from this ONNX belongs to it.
    engine = {
        **core.model_identity(other),
        "sha256": "e" * 64,
        "source_sha256": core.sha256_file(tiny),
    }
    m = measurements_from_results(
        [("orin.json", profile_doc(tiny, identity=engine))], model=core.model_identity(tiny)
    )
    assert m.model_size == tiny.stat().st_size and m.latency[0].source == "orin.json"


def test_evaluation_json_supplies_quality(tiny: Path, tmp_path: Path) -> None:
    from edgesr.evaluate import EvalReport, ImageScore, write_report_json

    report = EvalReport(
        2, "tiny.onnx", [ImageScore("a", 31.0, 0.91)], [ImageScore("a", 30.0, 0.88)]
    )
    path = write_report_json(report, tmp_path / "eval.json")
    docs = read_results([path])
    m = measurements_from_results(
        [("p.json", profile_doc(tiny)), *docs], model=core.model_identity(tiny)
    )
    result = check_budget(budget(), m)
    lines = {x.key: x for x in result.lines}
    assert lines["psnr_gain"].measured == pytest.approx(1.0) and lines["ssim_y"].status == "pass"
    assert any("does not record its images" in n for n in result.notes)
    x4 = write_report_json(EvalReport(4, "big", [ImageScore("a", 1, 0.1)]), tmp_path / "x4.json")
    with pytest.raises(ModelError, match="evaluates a x4 model"):
        measurements_from_results(read_results([x4]), model=core.model_identity(tiny))


def test_bad_result_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2")
    with pytest.raises(DataError, match="not readable JSON"):
        read_results([junk])
    junk.write_text(json.dumps({"hello": 1}))
    with pytest.raises(DataError, match="neither a profile"):
        read_results([junk])
    junk.write_text(json.dumps({"schema": "edgesr.profile/1", "model": {}}))
    with pytest.raises(DataError, match="'model' lacks sha256, file_bytes"):
        read_results([junk])
    with pytest.raises(DataError, match="does not exist"):
        read_results([tmp_path / "nope.json"])


def test_allowances() -> None:
    assert parse_allowances(["power"]) == {"power", "energy_per_frame"}
    assert parse_allowances(["latency_p99,size"]) == {"latency_p99", "model_size"}
    assert parse_allowances(["all"]) == set(LIMITS) | {"scale"}
    with pytest.raises(ConfigError, match="'powr' is not a limit or group .did you mean 'power'"):
        parse_allowances(["powr"])


# --------------------------------------------------------------------------------------------
# Compress runs and the CLI


def fake_run(run_dir: Path, tiny: Path) -> Path:
    import shutil

    run_dir.mkdir()
    shutil.copy(tiny, run_dir / "fp32.onnx")
    stage = {
        "stage": "fp32",
        "target": "any",
        "onnx": "fp32.onnx",
        "weights": None,
        "params": 36,
        "gmacs": 0.001,
        "file_bytes": tiny.stat().st_size,
        "psnr_y": 31.0,
        "ssim_y": 0.9,
        "latency_p50_ms": 9.0,
        "latency_p90_ms": 10.0,
        "speedup_vs_fp32": 1.0,
        "delta_psnr_vs_fp32": 0.0,
    }
    manifest = {
        "recipe": "tiny_x2",
        "eval_data": "embedded",
        "latency": {"backend": "onnxruntime-cpu", "size": [16, 24], "threads": 2, "runs": 20},
        "bicubic": {"psnr_y": 30.0, "ssim_y": 0.85},
        "stages": [stage, {**stage, "stage": "int8", "latency_p50_ms": 4.0, "latency_p90_ms": 5.0}],
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def test_check_compress_run_writes_check_json(tiny: Path, tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", tiny)
    checks = check_compress_run(run, budget(), allow_unmeasured=["power"])
    assert [c.subject for c in checks] == ["fp32", "int8"]
    lines = {x.key: x for x in checks[1].lines}
    assert lines["latency_p50"].status == "pass" and lines["latency_p50"].measured == 4.0
    assert lines["latency_p99"].status == "missing"
    assert "has no p99_ms" in lines["latency_p99"].note
    assert lines["power"].status == "waived"
    doc = load_check_json(run / "check.json")
    assert doc["verdict"] == "missing" and doc["exit_code"] == 11 and len(doc["checks"]) == 2
    with pytest.raises(ConfigError, match="no manifest.json"):
        check_compress_run(tmp_path, budget())


def test_check_compress_run_with_an_untimed_tensorrt_stage(tiny: Path, tmp_path: Path) -> None:
    """A TensorRT-layout stage carries no CPU latency: its latency line is missing, not a crash."""
    run = fake_run(tmp_path / "run", tiny)
    manifest = json.loads((run / "manifest.json").read_text())
    trt = {**manifest["stages"][0], "stage": "int8-qdq", "target": "tensorrt"}
    manifest["stages"].append({**trt, "latency_p50_ms": None, "latency_p90_ms": None})
    (run / "manifest.json").write_text(json.dumps(manifest))
    checks = check_compress_run(run, budget(), allow_unmeasured=["power"], write=False)
    assert [c.subject for c in checks] == ["fp32", "int8", "int8-qdq"]
    assert {x.key: x for x in checks[2].lines}["latency_p50"].status == "missing"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`check` in a subprocess: the real entry point, exit code and streams."""
    return subprocess.run(
        [sys.executable, "-m", "edgesr", "check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def check_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """`check` in this process (same parser and error mapping, no interpreter start-up)."""

    def run(*args: str) -> Ran:
        code = main(["check", *args])
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


def test_cli_exit_codes(tiny: Path, tmp_path: Path, check_cli: Callable[..., Ran]) -> None:
    yaml_path = tmp_path / "b.yaml"
    yaml_path.write_text(json.dumps(BASE))  # JSON is YAML
    good = tmp_path / "good.json"
    good.write_text(json.dumps(profile_doc(tiny, quality=GOOD_QUALITY)))
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(profile_doc(tiny, ms=30.0, quality=GOOD_QUALITY)))
    blind = tmp_path / "blind.json"
    blind.write_text(
        json.dumps(profile_doc(tiny, power=core.not_measured("no sensor"), quality=GOOD_QUALITY))
    )
    other = export_tiny_onnx(tmp_path / "other.onnx", recipe_hash="9999999999999999")
    out = tmp_path / "verdict.json"

    ok = cli(
        "--budget", str(yaml_path), "--results", str(good), "--model", str(tiny), "--json", str(out)
    )
    assert ok.returncode == 0, ok.stderr
    assert "verdict: PASS" in ok.stdout and load_check_json(out)["checks"][0]["verdict"] == "pass"
    fail = check_cli("--budget", str(yaml_path), "--results", str(slow))
    assert fail.returncode == 10 and "verdict: FAIL" in fail.stdout and "latency p99" in fail.stderr
    gap = check_cli("--budget", str(yaml_path), "--results", str(blind))
    assert gap.returncode == 11 and "--allow-unmeasured power" in gap.stderr
    waived = check_cli(
        "--budget", str(yaml_path), "--results", str(blind), "--allow-unmeasured", "power"
    )
    assert waived.returncode == 0, waived.stderr
    mismatch = check_cli("--budget", str(yaml_path), "--results", str(good), "--model", str(other))
    assert mismatch.returncode == ModelError.exit_code and "another model" in mismatch.stderr
    malformed = tmp_path / "m.yaml"
    malformed.write_text(
        "schema: 1\nname: x\nlimits: {latency_p99: 33 furlongs}\nframe: {input: 8x8}\n"
    )
    bad = check_cli("--budget", str(malformed), "--results", str(good))
    assert bad.returncode == ConfigError.exit_code and "accepted units: ms" in bad.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("nope")
    assert (
        check_cli("--budget", str(yaml_path), "--results", str(junk)).returncode
        == DataError.exit_code
    )
    assert check_cli("--budget", str(yaml_path)).returncode == ConfigError.exit_code
    assert (
        check_cli("--budget", str(yaml_path), "--results", str(good), "--json", str(out)).returncode
        == 5
    )
    listing = check_cli("--list")
    assert listing.returncode == 0 and "jetson-orin-nano-1080p30" in listing.stdout
    for proc in (ok, fail, gap, mismatch, bad):
        assert "Traceback" not in proc.stderr


def test_cli_measures_the_model_here(
    tiny: Path, tmp_path: Path, check_cli: Callable[..., Ran]
) -> None:
    from edgesr.data.embedded import procedural_image
    from edgesr.data.io import write_image

    data = tmp_path / "hr"
    rng = np.random.default_rng(2)
    for i, kind in enumerate(("zone_plate", "text")):
        write_image(data / f"{kind}{i}.png", procedural_image(kind, size=48, rng=rng))
    spec = {
        "schema": 1,
        "name": "local",
        "scale": 2,
        "backend": "onnxruntime",
        "frame": {"input": "16x16"},
        "limits": {
            "latency_p99": "2 s",
            "psnr_y": "15 dB",
            "model_size": "1 MiB",
            "power": "100 W",
        },
    }
    path = tmp_path / "local.yaml"
    path.write_text(json.dumps(spec))
    proc = check_cli(
        "--budget",
        str(path),
        "--model",
        str(tiny),
        "--data",
        str(data),
        "--runs",
        "3",
        "--allow-unmeasured",
        "power",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "measuring tiny.onnx on onnxruntime at LR 16x16" in proc.stdout
    assert "PSNR-Y" in proc.stdout and "WAIVED" in proc.stdout
    strict = check_cli(
        "--budget", str(path), "--model", str(tiny), "--data", str(data), "--runs", "3"
    )
    assert strict.returncode == 11 and "no usable power sensor" in strict.stdout


def test_error_classes() -> None:
    assert issubclass(BudgetFailed, EdgesrError) and issubclass(MeasurementMissing, EdgesrError)
    codes = {BudgetFailed.exit_code, MeasurementMissing.exit_code}
    assert codes == {10, 11}
