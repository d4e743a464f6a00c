"""Profiling: the device core (minimal.py), the full profiler, backends, environment, CLI.

``export_tiny_onnx`` is also used by test_budget.py and test_report.py: a real torch.onnx
export of a fixed interpolation net (bilinear or nearest, as a conv + pixel shuffle), with the
edgesr metadata an exported model carries.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from edgesr.errors import ConfigError, DataError, DependencyError, ModelError
from edgesr.profile import (
    ProfileOptions,
    identify,
    load_profile_json,
    profile_model,
    validate_profile,
)
from edgesr.profile import minimal as core
from edgesr.profile.env import collect_environment
from edgesr.profile.latency import stats_from_times, time_runner
from edgesr.runtime.runners import CallableRunner, OnnxRuntimeRunner

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "nncf", "onnx", "cv2", "yaml", "skimage", "matplotlib")


def interpolation_kernels(scale: int, mode: str) -> np.ndarray:
    """[scale*scale, 1, 3, 3] taps that make each sub-pixel phase by interpolation."""

    def taps(d: float) -> list[float]:
        if mode == "nearest":
            return [0.0, 1.0, 0.0]
        return [-d, 1 + d, 0.0] if d < 0 else [0.0, 1 - d, d]

    kernels = []
    for a in range(scale):
        for b in range(scale):
            da, db = (a + 0.5) / scale - 0.5, (b + 0.5) / scale - 0.5
            kernels.append(np.outer(taps(da), taps(db)))
    return np.asarray(kernels, dtype=np.float32)[:, None]


def export_tiny_onnx(
    path: Path,
    *,
    scale: int = 2,
    color: str = "y",
    mode: str = "bilinear",
    recipe: str = "tiny_x2",
    recipe_hash: str = "0123456789abcdef",
    precision: str = "fp32",
    extra: dict[str, str] | None = None,
) -> Path:
    import onnx
    import torch

    channels = 1 if color == "y" else 3
    conv = torch.nn.Conv2d(
        channels,
        channels * scale * scale,
        3,
        padding=1,
        groups=channels,
        bias=False,
        padding_mode="replicate",
    )
    with torch.no_grad():
        conv.weight.copy_(
            torch.from_numpy(np.tile(interpolation_kernels(scale, mode), (channels, 1, 1, 1)))
        )
    net = torch.nn.Sequential(conv, torch.nn.PixelShuffle(scale)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            torch.rand(1, channels, 16, 16),
            str(path),
            input_names=["lr"],
            output_names=["sr"],
            dynamic_axes={"lr": {0: "n", 2: "h", 3: "w"}, "sr": {0: "n", 2: "H", 3: "W"}},
            dynamo=False,
        )
    model = onnx.load(str(path))
    props = {
        "edgesr.scale": str(scale),
        "edgesr.color": "y_bt601" if color == "y" else "rgb",
        "edgesr.recipe": recipe,
        "edgesr.recipe_hash": recipe_hash,
        "edgesr.precision": precision,
        **(extra or {}),
    }
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


def run_module(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


# --------------------------------------------------------------------------------------------
# Statistics, sizes, identity


def test_summarize_times_matches_numpy_and_latency_stats() -> None:
    rng = np.random.default_rng(1)
    times = list(rng.uniform(0.01, 0.02, size=101))
    s = core.summarize_times(times, batch=2)
    ms = np.asarray(times) * 1000
    for q in (50, 90, 99):
        assert s[f"p{q}_ms"] == pytest.approx(np.percentile(ms, q))
    assert s["mean_ms"] == pytest.approx(ms.mean()) and s["std_ms"] == pytest.approx(ms.std())
    assert s["throughput_fps"] == pytest.approx(2000 / ms.mean())
    assert (s["min_ms"], s["max_ms"], s["runs"]) == (
        pytest.approx(ms.min()),
        pytest.approx(ms.max()),
        101,
    )
    stats = stats_from_times(times, size=(8, 8), batch=2)
    assert stats.p99_ms == s["p99_ms"] and stats.max_ms == s["max_ms"]
    assert stats.to_dict()["throughput_fps"] == pytest.approx(s["throughput_fps"])
    with pytest.raises(core.UsageError):
        core.summarize_times([])


@pytest.mark.parametrize(
    "text,expected", [("270x480", (270, 480)), ("16X8", (16, 8)), ("4,5", (4, 5))]
)
def test_parse_size(text: str, expected: tuple[int, int]) -> None:
    assert core.parse_size(text) == expected


@pytest.mark.parametrize("text", ["270", "axb", "0x10", "1x2x3"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(core.UsageError, match="HEIGHTxWIDTH|positive"):
        core.parse_size(text)


def test_onnx_metadata_read_without_onnx_package_matches_onnx(tiny: Path, tmp_path: Path) -> None:
    import onnx

    expected = {p.key: p.value for p in onnx.load(str(tiny)).metadata_props}
    assert core.read_onnx_metadata(tiny) == expected
    ident = core.model_identity(tiny)
    assert ident["sha256"] == hashlib.sha256(tiny.read_bytes()).hexdigest()
    assert (ident["scale"], ident["color"], ident["recipe"], ident["precision"]) == (
        2,
        "y_bt601",
        "tiny_x2",
        "fp32",
    )
    assert ident["file_bytes"] == tiny.stat().st_size
    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"\x00garbage")
    with pytest.raises(core.ModelLoadError, match="not a valid ONNX"):
        core.read_onnx_metadata(garbage)
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2])
    with pytest.raises(core.ModelLoadError):
        core.read_onnx_metadata(truncated)
    with pytest.raises(ModelError, match="does not exist"):
        identify(tmp_path / "missing.onnx")


def test_engine_identity_from_sidecar(tmp_path: Path) -> None:
    engine = tmp_path / "sr.engine"
    engine.write_bytes(b"serialized engine bytes")
    assert core.model_identity(engine)["metadata"] == {}
    # The shape of edgesr.export.tensorrt_build's EngineReport sidecar.
    core.engine_sidecar(engine).write_text(
        json.dumps(
            {
                "engine_path": str(engine),
                "onnx_sha256": "ab" * 32,
                "precision": "int8-qdq",
                "metadata": {
                    "edgesr.scale": "4",
                    "edgesr.precision": "int8",
                    "edgesr.color": "rgb",
                },
            }
        )
    )
    ident = core.model_identity(engine)
    assert ident["format"] == "tensorrt-engine"
    assert (ident["scale"], ident["source_sha256"], ident["precision"], ident["color"]) == (
        4,
        "ab" * 32,
        "int8-qdq",
        "rgb",
    )
    core.engine_sidecar(engine).write_text("[1, 2]")
    with pytest.raises(core.ModelLoadError, match="not a JSON object"):
        core.model_identity(engine)


# --------------------------------------------------------------------------------------------
# The full profiler


def test_profile_onnxruntime_document(tiny: Path) -> None:
    doc = profile_model(
        tiny, ProfileOptions(size=(16, 24), runs=7, warmup=1, threads=1, power="none")
    )
    validate_profile(doc)
    assert doc["schema"] == "edgesr.profile/1" and doc["tool"]["name"] == "edgesr.profile"
    assert doc["backend"] == "onnxruntime" and doc["threads"] == 1
    assert doc["input"] == {
        "size": [16, 24],
        "batch": 1,
        "channels": 1,
        "dtype": "float32",
        "output_size": [32, 48],
    }
    assert doc["runs"] == doc["latency"]["runs"] == 7
    lat = doc["latency"]
    assert 0 < lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert doc["power"] == {
        "measured": False,
        "reason": "power measurement disabled (--power none)",
    }
    assert doc["model"]["recipe_hash"] == "0123456789abcdef"
    assert doc["backend_detail"]["providers"] == ["CPUExecutionProvider"]
    env = doc["environment"]
    assert env["threads_requested"] == 1 and env["packages"]["onnxruntime"]
    assert env["edgesr_version"] and env["python"] == ".".join(map(str, sys.version_info[:3]))


def test_no_sensor_means_not_measured_with_reason(tiny: Path, tmp_path: Path) -> None:
    doc = profile_model(
        tiny, ProfileOptions(size=(8, 8), runs=3, warmup=0, power="auto", root=tmp_path)
    )
    power = doc["power"]
    assert power["measured"] is False and set(power) == {"measured", "reason"}
    for probe in ("ina3221", "ina3221x", "tegrastats", "nvml", "rapl"):
        assert f"{probe}:" in power["reason"]


def test_profile_with_a_sensor_integrates_energy_over_the_timed_window(
    tiny: Path, tmp_path: Path
) -> None:
    hwmon = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    hwmon.mkdir(parents=True)
    for n, (label, mv, ma) in enumerate([("VDD_IN", 5000, 1200), ("VDD_SOC", 5000, 300)], 1):
        (hwmon / f"in{n}_label").write_text(label + "\n")
        (hwmon / f"in{n}_input").write_text(f"{mv}\n")
        (hwmon / f"curr{n}_input").write_text(f"{ma}\n")
    doc = profile_model(
        tiny,
        ProfileOptions(
            size=(8, 8),
            runs=5,
            warmup=1,
            root=tmp_path,
            min_seconds=0.3,
            power_interval_s=0.02,
            idle_seconds=0.1,
        ),
    )
    p = doc["power"]
    assert p["measured"] and p["probe"] == "ina3221" and p["rail"] == "VDD_IN"
    assert p["mean_w"] == pytest.approx(6.0) and p["peak_w"] == pytest.approx(6.0)
    assert p["window_s"] >= 0.3 and p["samples"] >= 5
    assert p["frames"] == doc["runs"] >= 5
    assert p["energy_per_frame_j"] == pytest.approx(p["energy_j"] / p["frames"])
    assert p["idle_w"] == pytest.approx(6.0)
    assert p["dynamic_energy_per_frame_j"] == pytest.approx(0.0, abs=1e-9)
    assert p["rails_mean_w"] == {"VDD_IN": pytest.approx(6.0), "VDD_SOC": pytest.approx(1.5)}


def test_torch_backend_reads_the_weights_header(tmp_path: Path) -> None:
    from edgesr.archs import build_arch
    from edgesr.modelio import ModelInfo, save_model

    info = ModelInfo("espcn", 2, "y", {}, recipe="espcn_x2", recipe_hash="feedfacecafebeef")
    weights = save_model(
        build_arch("espcn", scale=2, num_channels=1), tmp_path / "m.safetensors", info
    )
    doc = profile_model(
        weights, ProfileOptions(size=(8, 8), runs=2, warmup=0, power="none", threads=1)
    )
    assert doc["backend"] == "torch" and doc["backend_detail"]["runner"] == "TorchRunner"
    assert doc["model"]["recipe_hash"] == "feedfacecafebeef" and doc["model"]["scale"] == 2
    assert doc["model"]["format"] == "safetensors"
    assert doc["input"]["output_size"] == [16, 16]


def test_profile_can_measure_quality(tiny: Path, tmp_path: Path) -> None:
    from edgesr.data.embedded import procedural_image
    from edgesr.data.io import write_image

    write_image(
        tmp_path / "a.png", procedural_image("zone_plate", size=48, rng=np.random.default_rng(0))
    )
    doc = profile_model(
        tiny, ProfileOptions(size=(8, 8), runs=2, warmup=0, power="none"), data=tmp_path
    )
    q = doc["quality"]
    assert q["images"] == 1 and q["scale"] == 2 and q["data"] == str(tmp_path)
    assert 10 < q["psnr_y"] < 60 and 0 < q["ssim_y"] <= 1 and "psnr_y" in q["bicubic"]


def test_backend_errors(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown backend 'npu'"):
        profile_model(tiny, ProfileOptions(backend="npu"))
    with pytest.raises(ConfigError, match="--backend torch runs edgesr weights"):
        profile_model(tiny, ProfileOptions(backend="torch"))
    with pytest.raises(ConfigError, match="serialized engine"):
        profile_model(tiny, ProfileOptions(backend="tensorrt"))
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"x")
    with pytest.raises(ConfigError, match="pass --backend"):
        profile_model(odd)
    with pytest.raises(ConfigError, match="unknown power probe"):
        profile_model(tiny, ProfileOptions(power="ina9999", runs=1))
    with pytest.raises(DataError, match="'rapl' cannot be used here"):
        profile_model(tiny, ProfileOptions(power="rapl", root=tmp_path, runs=1))


def test_c_backend_is_plugged_in_by_name(tiny: Path) -> None:
    """`--backend c` runs libedgesr when it is built, else says how to get it."""
    try:
        doc = profile_model(
            tiny, ProfileOptions(backend="c", size=(8, 8), runs=2, warmup=1, power="none")
        )
    except DependencyError as exc:
        assert "C runtime" in str(exc) or "libedgesr" in str(exc)
    else:
        assert doc["backend"] == "c" and doc["backend_detail"]["runner"] == "CRunner"
        assert doc["input"]["output_size"] == [16, 16]


def test_tensorrt_backend_without_tensorrt_is_a_dependency_error(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed")
    engine = tmp_path / "sr.engine"
    engine.write_bytes(b"not really an engine")
    with pytest.raises(DependencyError, match="tensorrt"):
        profile_model(engine, ProfileOptions(runs=1, power="none"))


def test_time_runner_keeps_timing_for_min_seconds() -> None:
    def slow(x: np.ndarray) -> np.ndarray:
        time.sleep(0.01)
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)

    runner = CallableRunner(slow, scale=2, color="y")
    start = time.perf_counter()
    stats = time_runner(runner, size=(4, 4), warmup=1, runs=2, min_seconds=0.15)
    assert time.perf_counter() - start >= 0.15
    assert stats.runs >= 8 and stats.p50_ms >= 10


def test_environment_reads_board_and_power_mode(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    (tmp_path / "proc/cpuinfo").write_text(
        "processor\t: 0\nmodel name\t: ARMv8 Processor rev 1 (v8l)\n"
    )
    (tmp_path / "var/lib/nvpmodel").mkdir(parents=True)
    (tmp_path / "var/lib/nvpmodel/status").write_text("pmode:0002 fmode:quiet\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nvpmodel.conf").write_text(
        "< PM_CONFIG DEFAULT=0 >\n# < POWER_MODEL ID=2 NAME=COMMENTED >\n"
        "< POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n< POWER_MODEL ID=2 NAME=MAXN_SUPER >\n"
    )
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3, GCID: 1\n")
    gov = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
    gov.mkdir(parents=True)
    (gov / "scaling_governor").write_text("schedutil\n")
    env = collect_environment(threads=4, root=tmp_path)
    assert env["board"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert env["cpu"] == "ARMv8 Processor rev 1 (v8l)"
    assert env["l4t"].startswith("R36 (release), REVISION: 4.3")
    assert env["power_mode"] == {
        "cpu_governor": "schedutil",
        "nvpmodel": {"id": 2, "name": "MAXN_SUPER"},
    }
    assert env["threads_requested"] == 4 and "torch" in env["packages"]
    bare = collect_environment(root=tmp_path / "nothing")
    assert bare["power_mode"] is None and "board" not in bare


# --------------------------------------------------------------------------------------------
# The minimal entry point: no torch, no edgesr


def _no_heavy_imports_runner(target: str, argv: list[str], json_out: Path) -> str:
    return (
        "import json, runpy, sys\n"
        f"sys.argv = {['minimal', *argv]!r}\n"
        "code = 0\n"
        "try:\n"
        f"    runpy.{target}\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "edgesr = sorted(m for m in sys.modules if m.split('.')[0] == 'edgesr')\n"
        f"open({str(json_out)!r}, 'w').write(json.dumps({{'code': code, 'heavy': heavy, 'edgesr': edgesr}}))\n"
    )


def test_minimal_copied_alone_imports_only_numpy_and_onnxruntime(
    tiny: Path, tmp_path: Path
) -> None:
    device = tmp_path / "device"
    device.mkdir()
    script = shutil.copy(REPO / "edgesr/profile/minimal.py", device / "minimal.py")
    out, probe = tmp_path / "dev.json", tmp_path / "modules.json"
    argv = ["--model", str(tiny), "--size", "16x16", "--runs", "5", "--json", str(out)]
    code = _no_heavy_imports_runner(f"run_path({str(script)!r}, run_name='__main__')", argv, probe)
    proc = run_module("-c", code, cwd=device)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(probe.read_text())
    assert seen == {"code": 0, "heavy": [], "edgesr": []}
    doc = load_profile_json(out)
    assert doc["tool"]["name"] == "edgesr.profile.minimal"
    assert doc["model"]["sha256"] == core.sha256_file(tiny)
    assert doc["input"]["output_size"] == [32, 32] and doc["runs"] == 5
    assert "sha256" in proc.stdout or "p50" in proc.stdout


def test_minimal_as_module_does_not_import_torch(tiny: Path, tmp_path: Path) -> None:
    out, probe = tmp_path / "m.json", tmp_path / "modules.json"
    argv = ["--model", str(tiny), "--size", "8x8", "--runs", "2", "--json", str(out)]
    code = _no_heavy_imports_runner(
        "run_module('edgesr.profile.minimal', run_name='__main__')", argv, probe
    )
    proc = run_module("-W", "error::RuntimeWarning", "-c", code)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(probe.read_text())
    assert seen["code"] == 0 and seen["heavy"] == []
    validate_profile(json.loads(out.read_text()))


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["--model", "/nonexistent/m.onnx"], 4, "does not exist"),
        (["--size", "big"], 2, "HEIGHTxWIDTH"),
        (["--runs", "0"], 2, "--runs"),
        (["--power", "rapl"], 3, "'rapl' cannot be used here"),
        (["--power", "bogus"], 2, "unknown power probe"),
    ],
)
def test_minimal_errors_exit_codes(tiny: Path, args: list[str], code: int, needle: str) -> None:
    base = ["--model", str(tiny), "--size", "8x8", "--runs", "1"]
    proc = run_module("-m", "edgesr.profile.minimal", *base, *args)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------------
# CLI


def test_cli_profile_writes_json_and_refuses_to_overwrite(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    cli = ["-m", "edgesr", "profile", "--model", str(tiny), "--size", "8x8"]
    proc = run_module(*cli, "--runs", "3", "--power", "none", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "latency ms: p50" in proc.stdout and "power:      not measured" in proc.stdout
    assert load_profile_json(out)["runs"] == 3
    again = run_module(*cli, "--json", str(out))
    assert again.returncode == 5 and "--force" in again.stderr
    listing = run_module("-m", "edgesr", "profile", "--list-probes")
    assert listing.returncode == 0 and "rapl" in listing.stdout
    missing = run_module("-m", "edgesr", "profile")
    assert missing.returncode == 2 and "--model" in missing.stderr
    bad = run_module(*cli[:-4], "--model", str(tmp_path / "p.json"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_profile_json_validation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not readable JSON"):
        load_profile_json(bad)
    with pytest.raises(DataError, match="not an edgesr profile"):
        validate_profile({"schema": "something/1"})
    with pytest.raises(DataError, match="newer edgesr"):
        validate_profile({"schema": "edgesr.profile/2"})
    with pytest.raises(DataError, match="'input' lacks"):
        validate_profile({"schema": "edgesr.profile/1", "model": {"sha256": "x", "file_bytes": 1}})


def test_import_stays_light() -> None:
    code = (
        "import sys, edgesr.profile, edgesr.check, edgesr.profile.cli_commands, "
        "edgesr.profile.power, edgesr.profile.env, edgesr.profile.schema, "
        "edgesr.profile.backends, edgesr.profile.profiler, edgesr.profile.tensorrt_runner, "
        "edgesr.pipeline.check\n"
        "heavy = [m for m in ('onnxruntime', 'tensorrt', 'matplotlib', 'pynvml', 'torch', 'nncf') "
        "if m in sys.modules]\nprint(heavy)"
    )
    proc = run_module("-c", code)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------
# TensorRT (needs an NVIDIA GPU with TensorRT and cuda-python)


@pytest.mark.gpu
def test_tensorrt_runner_matches_onnxruntime(tiny: Path, tmp_path: Path) -> None:
    trt = pytest.importorskip("tensorrt")
    pytest.importorskip("cuda")
    from edgesr.profile.tensorrt_runner import TensorRTRunner

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(tiny.read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("lr", (1, 1, 8, 8), (1, 1, 16, 16), (1, 1, 64, 64))
    config.add_optimization_profile(profile)
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(bytes(builder.build_serialized_network(network, config)))
    x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
    with TensorRTRunner(engine) as trt_runner, OnnxRuntimeRunner(tiny) as ort_runner:
        assert (trt_runner.scale, trt_runner.color) == (2, "y")
        np.testing.assert_allclose(trt_runner.infer(x), ort_runner.infer(x), atol=1e-3)
    doc = profile_model(engine, ProfileOptions(size=(16, 16), runs=5, power="auto"))
    assert doc["backend"] == "tensorrt" and doc["input"]["output_size"] == [32, 32]
