"""TensorRT side of the export stage.

* ONNX checks that need no TensorRT: what TensorRT rejects (asymmetric or int32 Q/DQ, weight
  scales on the wrong axis) and warns about, optimization profiles, the trtexec scripts.
* Real builds with a TensorRT-family builder: ``tensorrt`` where installed, else NVIDIA's
  ``tensorrt-rtx`` wheel, whose ahead-of-time build needs no GPU
  (``pip install tensorrt-rtx==1.7.1.116``). FP32, FP16 (with FP32 fallback) and INT8 Q/DQ
  engines are built from exported models; these skip only when no builder is importable.
* ``gpu``: running an engine needs an NVIDIA GPU with TensorRT and CUDA PyTorch.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from edgesr.archs import build_arch
from edgesr.errors import ConfigError, DependencyError, ModelError, OutputExistsError
from edgesr.export import (
    build_engine,
    check_onnx_model,
    check_tensorrt_compat,
    export_onnx,
    frame_profile,
    load_tensorrt,
    lr_frame_size,
    tensorrt_available,
    write_trt_build_script,
)
from edgesr.export.onnx_export import load_onnx, verification_inputs
from edgesr.export.tensorrt_build import Profile, normalize_profiles
from edgesr.modelio import ModelInfo

REPO = Path(__file__).resolve().parents[1]
JETSON = REPO / "deploy" / "jetson"
SLIM = {
    "espcn": {"num_feat": 16, "num_feat2": 8, "act": "relu"},
    "fsrcnn": {"d": 16, "s": 8, "m": 1},
    "anchornet": {"num_feat": 8, "num_blocks": 1},
}
NO_BUILDER = (
    "needs a TensorRT-family builder: `pip install tensorrt-rtx==1.7.1.116` builds engines "
    "without a GPU (or install TensorRT)"
)


def export(tmp_path: Path, arch: str = "espcn", color: str = "y", name: str = "") -> Path:
    torch.manual_seed(0)
    info = ModelInfo(arch=arch, scale=4, color=color, params=SLIM[arch], recipe=f"{arch}_x4")
    net = build_arch(arch, scale=4, num_channels=info.num_channels, **SLIM[arch])
    path = tmp_path / f"{name or arch}.onnx"
    export_onnx(net, path, info=info)
    return path


class _Calibration:
    """onnxruntime CalibrationDataReader over real photo crops."""

    def __init__(self, color: str = "y") -> None:
        inputs, _ = verification_inputs(None, color)
        self.items = iter([{"lr": x} for x in inputs])

    def get_next(self):
        return next(self.items, None)


def ort_quantize(src: Path, dst: Path, *, tensorrt_ready: bool = True, color: str = "y") -> Path:
    """Q/DQ INT8 with onnxruntime's quantizer; ``tensorrt_ready`` picks the settings TensorRT
    needs (symmetric signed INT8, per-channel weights, float bias), else ORT's defaults."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    reader = type("Reader", (_Calibration, CalibrationDataReader), {})(color)
    options = {}
    if tensorrt_ready:
        options = dict(
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
            },
        )
    quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, **options)
    return dst


def errors(issues) -> list[str]:
    return [i.message for i in issues if i.severity == "error"]


def warnings_of(issues) -> list[str]:
    return [i.message for i in issues if i.severity == "warning"]


@pytest.fixture(scope="module")
def espcn(tmp_path_factory) -> Path:
    return export(tmp_path_factory.mktemp("espcn"))


@pytest.fixture(scope="module")
def espcn_int8(tmp_path_factory, espcn) -> Path:
    return ort_quantize(espcn, tmp_path_factory.mktemp("int8") / "espcn_int8.onnx")


@pytest.fixture(scope="module")
def trt():
    """The first TensorRT-family module that can create a builder here (``tensorrt`` needs a
    GPU for that; ``tensorrt_rtx`` does not)."""
    for name in ("tensorrt", "tensorrt_rtx"):
        try:
            module = load_tensorrt(name)
            if module.Builder(module.Logger(module.Logger.ERROR)) is not None:
                return module
        except Exception:
            continue
    pytest.skip(NO_BUILDER)


def build(trt, onnx_path, engine_path, **kwargs):
    return build_engine(onnx_path, engine_path, builder=trt.__name__, **kwargs)


# --------------------------------------------------------------------------------------------
# ONNX checks (no TensorRT needed)


@pytest.mark.parametrize(("arch", "color"), [("espcn", "y"), ("fsrcnn", "y"), ("anchornet", "rgb")])
def test_exported_models_are_tensorrt_ready(tmp_path, arch, color) -> None:
    assert check_tensorrt_compat(export(tmp_path, arch, color)) == []


def test_qdq_with_onnxruntime_defaults_is_rejected(tmp_path, espcn) -> None:
    """onnxruntime's default static quantization: asymmetric activations and int32 biases,
    both of which TensorRT's parser rejects (checked against the real parser below)."""
    issues = check_tensorrt_compat(ort_quantize(espcn, tmp_path / "d.onnx", tensorrt_ready=False))
    messages = " | ".join(errors(issues))
    assert "non-zero zero point" in messages and "int32 DequantizeLinear" in messages


def test_tensorrt_ready_qdq_passes(espcn_int8) -> None:
    issues = check_tensorrt_compat(espcn_int8)
    assert errors(issues) == []
    # onnxruntime also quantizes the last conv's output: the SR image then has 256 levels.
    assert any("256 levels" in m for m in warnings_of(issues))
    proto = load_onnx(espcn_int8)
    inits = {i.name: i for i in proto.graph.initializer}
    weight_dq = [
        n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    ]
    assert weight_dq and all(
        next(a.i for a in n.attribute if a.name == "axis") == 0 for n in weight_dq
    )


def requantize_weight(src: Path, dst: Path, consumer: str, axis: int, nth: int = 0) -> str:
    """Re-quantize the ``nth`` ``consumer`` op's weights per channel on ``axis`` (symmetric INT8)."""
    proto = load_onnx(src)
    inits = {i.name: i for i in proto.graph.initializer}
    uses = {i: n for n in proto.graph.node for i in n.input}
    for node in proto.graph.node:
        user = uses.get(node.output[0])
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits or user is None:
            continue
        if user.op_type != consumer or user.input[1] != node.output[0]:
            continue
        if nth:
            nth -= 1
            continue
        q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        old = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[old] = -1
        w = q * (scale.reshape(shape) if scale.ndim else scale)
        reduce = tuple(d for d in range(w.ndim) if d != axis)
        new_scale = np.maximum(np.abs(w).max(axis=reduce) / 127, 1e-8).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        new_q = np.clip(np.round(w / new_scale.reshape(shape)), -127, 127).astype(np.int8)
        inits[node.input[0]].CopyFrom(numpy_helper.from_array(new_q, node.input[0]))
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(new_scale, node.input[1]))
        inits[node.input[2]].CopyFrom(
            numpy_helper.from_array(np.zeros(new_scale.shape, np.int8), node.input[2])
        )
        for attr in [a for a in node.attribute if a.name == "axis"]:
            node.attribute.remove(attr)
        node.attribute.append(onnx.helper.make_attribute("axis", axis))
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(dst))
        return node.name
    raise AssertionError(f"no {consumer} weight DequantizeLinear in {src}")


def test_weight_scales_on_the_wrong_axis(tmp_path, espcn_int8) -> None:
    """Conv weights per channel on the input-channel axis: TensorRT-RTX still builds that (it
    folds the weight DQ), but TensorRT cannot use its INT8 conv kernels, so it is an error."""
    # conv2 (16 -> 8 channels): axis 1 holds 16 scales, a real per-channel layout.
    bad = tmp_path / "axis1.onnx"
    node = requantize_weight(espcn_int8, bad, "Conv", 1, nth=1)
    issues = check_tensorrt_compat(bad)
    assert [i.node for i in issues if i.severity == "error"] == [node]
    assert "axis 0" in errors(issues)[0]


def test_convtranspose_weight_axis(tmp_path) -> None:
    """FSRCNN's ConvTranspose: onnxruntime quantizes its weights on axis 1 (its output
    channels), which is right; axis 0 (input channels) is flagged."""
    q = ort_quantize(export(tmp_path, "fsrcnn"), tmp_path / "f_int8.onnx")
    assert errors(check_tensorrt_compat(q)) == []
    bad = tmp_path / "f_axis0.onnx"
    requantize_weight(q, bad, "ConvTranspose", 0)
    assert any("axis 1" in m for m in errors(check_tensorrt_compat(bad)))


def test_static_sizes_and_dcr_warn(tmp_path, espcn) -> None:
    proto = load_onnx(espcn)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = 270, 480
    for node in proto.graph.node:
        if node.op_type == "DepthToSpace":
            for a in node.attribute:
                if a.name == "mode":
                    a.s = b"DCR"
    messages = " | ".join(warnings_of(check_tensorrt_compat(proto)))
    assert "static H/W" in messages and "DCR" in messages


def test_opset_and_nan_weights_are_errors(espcn) -> None:
    proto = load_onnx(espcn)
    proto.opset_import[0].version = 11
    w = proto.graph.initializer[0]
    arr = numpy_helper.to_array(w).copy()
    arr.flat[0] = np.nan
    w.CopyFrom(numpy_helper.from_array(arr, w.name))
    messages = " | ".join(errors(check_tensorrt_compat(proto)))
    assert "opset 11" in messages and "NaN" in messages


# --------------------------------------------------------------------------------------------
# Profiles and precision choice


def test_default_profiles_cover_1080p() -> None:
    assert lr_frame_size(1080, 1920, 4) == (270, 480)
    assert lr_frame_size(1080, 1920, 3) == (360, 640)
    (p,) = normalize_profiles(None, channels=1, scale=4)
    assert p == Profile(min=(1, 1, 16, 16), opt=(1, 1, 270, 480), max=(1, 1, 270, 480))
    (p,) = normalize_profiles(None, channels=3, scale=2)
    assert p.opt == (1, 3, 540, 960)
    two = normalize_profiles(
        [(270, 480), ((1, 1, 8, 8), (2, 1, 64, 64), (4, 1, 128, 128))], channels=1, scale=4
    )
    assert two[0] == frame_profile(270, 480, channels=1) and two[1].max == (4, 1, 128, 128)
    assert two[1].trtexec_args() == [
        "--minShapes=lr:1x1x8x8",
        "--optShapes=lr:2x1x64x64",
        "--maxShapes=lr:4x1x128x128",
    ]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ([((1, 3, 8, 8), (1, 3, 64, 64), (1, 3, 64, 64))], "channels"),
        ([((1, 1, 64, 64), (1, 1, 8, 8), (1, 1, 64, 64))], "min <= opt <= max"),
        ([(270,)], "frame size"),
        ([], "at least one"),
        ([(0, 480)], "positive"),
    ],
)
def test_bad_profiles(spec, match) -> None:
    with pytest.raises(ConfigError, match=match):
        normalize_profiles(spec, channels=1, scale=4)


def test_precision_must_fit_the_model(tmp_path, espcn, espcn_int8) -> None:
    with pytest.raises(ConfigError, match="no Q/DQ"):
        write_trt_build_script(espcn, tmp_path / "a", precision="int8-qdq")
    with pytest.raises(ConfigError, match="int8-qdq"):
        write_trt_build_script(espcn_int8, tmp_path / "b", precision="fp16")
    with pytest.raises(ConfigError, match="precision"):
        write_trt_build_script(espcn, tmp_path / "c", precision="best")


# --------------------------------------------------------------------------------------------
# trtexec scripts (no TensorRT needed)


def test_build_scripts_fp16(tmp_path, espcn) -> None:
    out = tmp_path / "device"
    scripts = write_trt_build_script(espcn, out, profiles=[(270, 480)])
    assert scripts.precision == "fp16" and scripts.engines == ["espcn_fp16.engine"]
    assert sorted(p.name for p in out.iterdir()) == [
        "build_engine.sh",
        "espcn.fp16.onnx",
        "espcn.onnx",
        "espcn.sidecar.json",
        "time_engine.sh",
    ]
    half = check_onnx_model(out / "espcn.fp16.onnx")
    assert half.precision == "fp16" and half.has_fp16 and half.scale == 4
    # The commands themselves are run with the stand-in trtexec below, per TensorRT version.
    build = (out / "build_engine.sh").read_text()
    assert "--onnx=espcn.fp16.onnx" in build and "--onnx=espcn.onnx" in build
    assert 'plan="espcn_fp16${DLA:+_dla$DLA}.engine"' in build
    for script in ("build_engine.sh", "time_engine.sh"):
        path = out / script
        assert path.stat().st_mode & stat.S_IXUSR
        subprocess.run(["bash", "-n", str(path)], check=True)
    assert "copy the folder" in scripts.message()
    with pytest.raises(OutputExistsError):
        write_trt_build_script(espcn, out)


def test_build_scripts_int8_and_several_profiles(tmp_path, espcn_int8) -> None:
    scripts = write_trt_build_script(
        espcn_int8, tmp_path / "dev", profiles=[(270, 480), (180, 320)]
    )
    assert scripts.precision == "int8-qdq" and scripts.onnx_files == ["espcn_int8.onnx"]
    assert scripts.engines == [
        "espcn_int8_int8-qdq_270x480.engine",
        "espcn_int8_int8-qdq_180x320.engine",
    ]
    build = Path(scripts.build_script).read_text()
    # TensorRT >= 10: strongly typed; 8.x: --int8 with --fp16 beside it (float layers in FP16).
    assert build.count("--stronglyTyped") == 2 and build.count("--int8 --fp16") == 2


def test_failed_script_export_leaves_nothing(tmp_path, espcn) -> None:
    """A failure after the ONNX copy and the sidecar were written (the FP16 conversion refuses
    an unknown node name) removes them: no device folder that looks complete."""
    out = tmp_path / "device"
    with pytest.raises(ConfigError, match="keep_fp32"):
        write_trt_build_script(espcn, out, keep_fp32=["/no/such/Conv"])
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="keep_fp32"):
        write_trt_build_script(espcn, out, keep_fp32=["/no/such/Conv"])
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # only what was there before


def test_scripts_need_no_tensorrt(tmp_path, espcn) -> None:
    code = (
        "import sys\n"
        "from edgesr.export import write_trt_build_script\n"
        f"write_trt_build_script({str(espcn)!r}, {str(tmp_path / 'x')!r}, precision='fp32')\n"
        "bad = [m for m in ('tensorrt', 'tensorrt_rtx') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# trtexec as each TensorRT version takes it. The flag lists are those of trtexec's option parser
# (samples/common/sampleOptions.cpp at the 8.4.3, 8.5.2, 8.6.1, 10.3.0 and 11.1 tags) that
# edgesr's scripts use: 8.x has no --stronglyTyped, --skipInference came with 8.6 (--buildOnly
# stayed as its alias until 10.0 dropped it), a --percentile list needs 8.5+, 11.x has no
# --fp16/--int8/precision constraints. Up to 10.x a DLA build sets the FP16 builder flag, which
# TensorRT 10 refuses on a strongly typed network (API usage error); 11.x does not set it.
STUB_TRTEXEC = r"""#!/usr/bin/env bash
# Stands in for trtexec: prints its banner, refuses options this version lacks, records argv.
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v${STUB_VERSION}] # $0 $*"
if [ "${1:-}" = --help ]; then  # as the real one: a long help, then the PASSED line
  for i in $(seq 300); do echo "  --option$i             Help for option $i (default = none)"; done
  echo "&&&& PASSED TensorRT.trtexec [TensorRT v${STUB_VERSION}] # $0 $*"
  exit 0
fi
known=" --onnx --saveEngine --loadEngine --minShapes --optShapes --maxShapes --shapes "
known+=" --memPoolSize --timingCacheFile --noTF32 --useDLACore --allowGPUFallback --useCudaGraph "
known+=" --noDataTransfers --warmUp --duration --iterations --percentile --exportTimes "
weak=" --fp16 --int8 --precisionConstraints --layerPrecisions --layerOutputTypes "
case "$STUB_VERSION" in
  8[0-5]??) known+="$weak --buildOnly " ;;
  8???) known+="$weak --buildOnly --skipInference " ;;
  10????) known+="$weak --skipInference --stronglyTyped " ;;
  *) known+=" --skipInference --stronglyTyped " ;;
esac
dla=0 typed=0
for a in "$@"; do
  name="${a%%=*}"
  case "$known" in *" $name "*) ;; *) echo "[E] Unknown option: $a" >&2; exit 1 ;; esac
  case "$a" in
    --useDLACore=*) dla=1 ;;
    --stronglyTyped) typed=1 ;;
    --percentile=*,*) [ "$STUB_VERSION" -ge 8500 ] || { echo "[E] bad --percentile $a" >&2; exit 1; } ;;
  esac
done
if [ "$dla" = 1 ] && [ "$typed" = 1 ] && [ "$STUB_VERSION" -lt 110000 ]; then
  echo "[E] Error Code 3: API Usage Error (condition: !config.getFlag(BuilderFlag::kFP16))" >&2
  exit 1
fi
printf '%s\t' "$@" >> "$STUB_LOG"
echo >> "$STUB_LOG"
for a in "$@"; do
  case "$a" in
    --loadEngine=*) sleep "${STUB_SLEEP:-0}" ;;  # "inference", for tegrastats to sample
  esac
done
for a in "$@"; do
  case "$a" in
    --saveEngine=*) echo engine > "${a#--saveEngine=}" ;;
    --exportTimes=*) cat > "${a#--exportTimes=}" <<'EOF'
[
  { "startEnqMs" : 0.1, "endEnqMs" : 0.2, "startH2dMs" : 0.2, "endH2dMs" : 0.5, "startComputeMs" : 0.5, "endComputeMs" : 2.0, "startD2hMs" : 2.0, "endD2hMs" : 3.0, "h2dMs" : 0.3, "computeMs" : 1.5, "d2hMs" : 1.0, "latencyMs" : 2.8 }
, { "startEnqMs" : 3.1, "endEnqMs" : 3.2, "startH2dMs" : 3.2, "endH2dMs" : 3.5, "startComputeMs" : 3.5, "endComputeMs" : 6.0, "startD2hMs" : 6.0, "endD2hMs" : 7.0, "h2dMs" : 0.3, "computeMs" : 2.5, "d2hMs" : 1.0, "latencyMs" : 3.8 }
]
EOF
    ;;
  esac
done
echo "&&&& PASSED TensorRT.trtexec [TensorRT v${STUB_VERSION}] # $0 $*"
"""

#: TensorRT versions as trtexec prints them: JetPack 5.0.2, 5.1.x, 6.0, 6.1/6.2, and 11.4.
TRT_VERSIONS = ("8401", "8502", "8602", "100300", "110400")


class StubTrtexec:
    """Runs a script with a stand-in trtexec (this machine has none) that records each call's
    arguments; it checks the command lines our scripts write against trtexec's options per
    TensorRT version, not TensorRT itself. ``calls``: the argv of each non-``--help`` call."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.stub = self.bin / "trtexec"
        self.stub.write_text(STUB_TRTEXEC)
        self.stub.chmod(0o755)
        self.log = tmp_path / "trtexec_args.txt"
        self.calls: list[list[str]] = []

    def __call__(
        self,
        script: Path,
        *args: str,
        version: str = "100300",
        cwd: Path | None = None,
        path: Path | None = None,
        env: dict[str, str] | None = None,
    ):
        env = {
            **os.environ,
            "TRTEXEC": str(self.stub),
            "STUB_LOG": str(self.log),
            "STUB_VERSION": version,
            **(env or {}),
        }
        # The scripts' python3 fallback (sidecar from ONNX metadata) is this interpreter, as in
        # an activated environment, however pytest was started.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        if path is not None:  # e.g. a folder with a fake tegrastats
            env["PATH"] = f"{path}{os.pathsep}{env['PATH']}"
        self.log.unlink(missing_ok=True)
        proc = subprocess.run(
            ["bash", str(script), *args], capture_output=True, text=True, env=env, cwd=cwd
        )
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.calls = [line.rstrip("\t").split("\t") for line in lines]
        return proc, [a for call in self.calls for a in call]


@pytest.fixture
def stub_trtexec(tmp_path) -> StubTrtexec:
    return StubTrtexec(tmp_path)


def test_stub_trtexec_refuses_what_each_version_lacks(tmp_path, stub_trtexec) -> None:
    """The stand-in fails like trtexec where a flag is not there: the tests below would catch a
    script that passes --stronglyTyped to 8.x, --buildOnly to 10.x or a percentile list to 8.4."""
    script = tmp_path / "call.sh"
    script.write_text('"$TRTEXEC" "$@"\n')
    for version, flag in [
        ("8602", "--stronglyTyped"),
        ("8502", "--skipInference"),
        ("100300", "--buildOnly"),
        ("8401", "--percentile=50,90,99"),
        ("100300", "--frobnicate"),
    ]:
        proc, args = stub_trtexec(script, "--onnx=m.onnx", flag, version=version)
        assert proc.returncode == 1 and args == [], (version, flag)
    proc, _ = stub_trtexec(script, "--onnx=m.onnx", "--stronglyTyped", "--useDLACore=0")
    assert proc.returncode == 1 and "kFP16" in proc.stderr
    for flag in ("--fp16", "--int8", "--precisionConstraints=obey"):
        proc, _ = stub_trtexec(script, "--onnx=m.onnx", flag, version="110400")
        assert proc.returncode == 1, flag
    proc, _ = stub_trtexec(
        script, "--onnx=m.onnx", "--stronglyTyped", "--useDLACore=0", version="110400"
    )
    assert proc.returncode == 0
    proc, args = stub_trtexec(script, "--onnx=m.onnx", "--percentile=99", version="8401")
    assert proc.returncode == 0 and args == ["--onnx=m.onnx", "--percentile=99"]
    assert "[TensorRT v8401]" in proc.stdout


def shapes(h: int = 270, w: int = 480) -> list[str]:
    return [
        "--minShapes=lr:1x1x16x16",
        f"--optShapes=lr:1x1x{h}x{w}",
        f"--maxShapes=lr:1x1x{h}x{w}",
    ]


def only(version: str) -> str:
    return "--skipInference" if int(version) >= 8600 else "--buildOnly"


# Precision (and DLA) flags each build script must pass, per TensorRT version; None: refused.
TYPED = ["--stronglyTyped"]
JETSON_BUILD_FLAGS = {
    "fp32": {
        "8502": ["--noTF32"],
        "8602": ["--noTF32"],
        "100300": ["--noTF32", *TYPED],
        "110400": ["--noTF32", *TYPED],
    },
    "fp16": {"8502": ["--fp16"], "8602": ["--fp16"], "100300": ["--fp16"], "110400": None},
    "int8-qdq": {
        "8502": ["--int8", "--fp16"],
        "8602": ["--int8", "--fp16"],
        "100300": TYPED,
        "110400": TYPED,
    },
    "typed": {"8502": None, "8602": None, "100300": TYPED, "110400": TYPED},
}
DLA1 = ["--useDLACore=1", "--allowGPUFallback"]
JETSON_DLA_FLAGS = {
    "fp32": {"8502": None, "8602": None, "100300": None, "110400": None},
    "fp16": {
        "8502": ["--fp16", *DLA1],
        "8602": ["--fp16", *DLA1],
        "100300": ["--fp16", *DLA1],
        "110400": None,  # no --fp16 in 11.x: the typed *.fp16.onnx
    },
    "int8-qdq": {
        "8502": ["--int8", "--fp16", *DLA1],
        "8602": ["--int8", "--fp16", *DLA1],
        "100300": ["--int8", "--fp16", *DLA1],  # trtexec's DLA FP16 flag: not strongly typed
        "110400": [*TYPED, *DLA1],
    },
    "typed": {"8502": None, "8602": None, "100300": None, "110400": [*TYPED, *DLA1]},
}


@pytest.fixture(scope="module")
def device_dirs(tmp_path_factory, espcn, espcn_int8) -> dict[str, Path]:
    """``edgesr export``-style device folders: fp32, fp16 and int8-qdq."""
    root = tmp_path_factory.mktemp("devices")
    dirs = {}
    for precision, model in (("fp32", espcn), ("fp16", espcn), ("int8-qdq", espcn_int8)):
        dirs[precision] = root / precision
        write_trt_build_script(model, dirs[precision], profiles=[(270, 480)], precision=precision)
    return dirs


@pytest.mark.parametrize("dla", [False, True], ids=["gpu", "dla"])
@pytest.mark.parametrize("version", ["8502", "8602", "100300", "110400"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8-qdq", "typed"])
def test_jetson_build_script_flags(
    tmp_path, device_dirs, stub_trtexec, precision, version, dla
) -> None:
    """deploy/jetson/build_engine.sh: the exact trtexec command per precision, version and DLA."""
    folder = device_dirs["int8-qdq" if precision == "int8-qdq" else "fp16"]
    onnx_name = {"int8-qdq": "espcn_int8.onnx", "typed": "espcn.fp16.onnx"}.get(
        precision, "espcn.onnx"
    )
    engine = tmp_path / "e.engine"
    extra = ["--dla-core", "1"] if dla else []
    proc, _ = stub_trtexec(
        JETSON / "build_engine.sh", "--onnx", str(folder / onnx_name), "--engine", str(engine),
        "--precision", precision, *extra, version=version,
    )  # fmt: skip
    want = (JETSON_DLA_FLAGS if dla else JETSON_BUILD_FLAGS)[precision][version]
    if want is None:
        assert proc.returncode == 2 and stub_trtexec.calls == [], proc.stderr
        assert not engine.exists() and not list(tmp_path.glob("e.engine.json*"))
        return
    assert proc.returncode == 0, proc.stderr
    (call,) = stub_trtexec.calls
    common = [f"--onnx={folder / onnx_name}", f"--saveEngine={engine}", *shapes()]
    common += ["--memPoolSize=workspace:1024", "--timingCacheFile=timing.cache", only(version)]
    assert sorted(call) == sorted(common + want)
    assert engine.is_file() and (tmp_path / "e.engine.json").is_file()
    if dla:
        assert "--dla-core 1" in proc.stdout  # the timing hint carries the core


def test_jetson_build_script_options(tmp_path, espcn, stub_trtexec) -> None:
    script = JETSON / "build_engine.sh"
    proc, _ = stub_trtexec(
        script, "--onnx", str(espcn), "--precision", "fp16", "--fp32-layers",
        "/conv1/Conv,/conv2/Conv", "--engine", str(tmp_path / "f.engine"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (call,) = stub_trtexec.calls
    spec = "/conv1/Conv:fp32,/conv2/Conv:fp32"
    assert call[-5:] == [
        "--fp16", "--precisionConstraints=obey", f"--layerPrecisions={spec}",
        f"--layerOutputTypes={spec}", "--skipInference",
    ]  # fmt: skip
    # Default engine names: _dlaN for DLA builds, so a GPU engine is not replaced.
    proc, _ = stub_trtexec(
        script, "--onnx", str(espcn), "--precision", "fp16", "--dla-core", "0", "--dla-only"
    )
    assert proc.returncode == 0, proc.stderr
    assert f"--saveEngine={str(espcn)[:-5]}_fp16_dla0.engine" in stub_trtexec.calls[0]
    assert "--allowGPUFallback" not in stub_trtexec.calls[0]
    Path(f"{str(espcn)[:-5]}_fp16_dla0.engine").unlink()
    Path(f"{str(espcn)[:-5]}_fp16_dla0.engine.json").unlink()
    for args, version, message in [
        (["--precision", "fp16"], "110400", "removed --fp16"),
        (["--precision", "fp32", "--dla-core", "0"], "100300", "FP16 or INT8"),
        (["--precision", "typed", "--dla-core", "0"], "100300", "FP16 flag"),
        (["--dla-core", "x"], "100300", "core number"),
        (["--dla-only"], "100300", "needs --dla-core"),
    ]:
        proc, _ = stub_trtexec(script, "--onnx", str(espcn), *args, version=version)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert stub_trtexec.calls == []
    proc, _ = stub_trtexec(script, "--onnx", str(tmp_path / "missing.onnx"))
    assert proc.returncode == 2


# The generated device/build_engine.sh: (ONNX it builds, precision flags) per TensorRT version.
DEVICE_BUILD = {
    "fp32": {
        "8502": ("espcn.onnx", ["--noTF32"]),
        "8602": ("espcn.onnx", ["--noTF32"]),
        "100300": ("espcn.onnx", ["--stronglyTyped", "--noTF32"]),
        "110400": ("espcn.onnx", ["--stronglyTyped", "--noTF32"]),
    },
    "fp16": {
        "8502": ("espcn.onnx", ["--fp16"]),
        "8602": ("espcn.onnx", ["--fp16"]),
        "100300": ("espcn.fp16.onnx", ["--stronglyTyped"]),
        "110400": ("espcn.fp16.onnx", ["--stronglyTyped"]),
    },
    "int8-qdq": {
        "8502": ("espcn_int8.onnx", ["--int8", "--fp16"]),
        "8602": ("espcn_int8.onnx", ["--int8", "--fp16"]),
        "100300": ("espcn_int8.onnx", ["--stronglyTyped"]),
        "110400": ("espcn_int8.onnx", ["--stronglyTyped"]),
    },
}
DEVICE_DLA = {
    "fp32": {"8502": None, "8602": None, "100300": None, "110400": None},
    "fp16": {
        **{v: ("espcn.onnx", ["--fp16"]) for v in ("8502", "8602", "100300")},
        "110400": ("espcn.fp16.onnx", ["--stronglyTyped"]),
    },
    "int8-qdq": {
        **{v: ("espcn_int8.onnx", ["--int8", "--fp16"]) for v in ("8502", "8602", "100300")},
        "110400": ("espcn_int8.onnx", ["--stronglyTyped"]),
    },
}


@pytest.mark.parametrize("dla", [False, True], ids=["gpu", "dla"])
@pytest.mark.parametrize("version", ["8502", "8602", "100300", "110400"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8-qdq"])
def test_device_build_script_flags(
    tmp_path, device_dirs, stub_trtexec, precision, version, dla
) -> None:
    """The generated device/build_engine.sh: exact trtexec command per precision, version, DLA."""
    out = tmp_path / "device"
    shutil.copytree(device_dirs[precision], out)
    stem = "espcn_int8" if precision == "int8-qdq" else "espcn"
    engine = f"{stem}_{precision}{'_dla0' if dla else ''}.engine"
    proc, _ = stub_trtexec(
        out / "build_engine.sh", *(["--dla-core", "0"] if dla else []), version=version
    )
    want = (DEVICE_DLA if dla else DEVICE_BUILD)[precision][version]
    if want is None:
        assert proc.returncode == 2 and "FP16 or INT8" in proc.stderr
        assert stub_trtexec.calls == [] and not (out / engine).exists()
        return
    assert proc.returncode == 0, proc.stderr
    onnx_name, flags = want
    (call,) = stub_trtexec.calls
    common = [f"--onnx={onnx_name}", f"--saveEngine={engine}", *shapes()]
    common += ["--memPoolSize=workspace:1024", "--timingCacheFile=timing.cache", only(version)]
    assert sorted(call) == sorted(
        common + flags + (["--useDLACore=0", "--allowGPUFallback"] if dla else [])
    )
    assert (out / engine).is_file() and (out / f"{engine}.json").is_file()
    assert not list(out.glob("*.tmp"))


def test_device_build_script_dla_options(tmp_path, device_dirs, stub_trtexec) -> None:
    out = tmp_path / "device"
    shutil.copytree(device_dirs["fp16"], out)
    proc, _ = stub_trtexec(out / "build_engine.sh", "--dla-core", "1", "--dla-only")
    assert proc.returncode == 0, proc.stderr
    assert "--useDLACore=1" in stub_trtexec.calls[0]
    assert "--allowGPUFallback" not in stub_trtexec.calls[0]
    for args, version, message in [
        (["--dla-core"], "100300", "core number"),
        (["--dla-only"], "100300", "needs --dla-core"),
        (["--fast"], "100300", "unknown option"),
    ]:
        proc, _ = stub_trtexec(out / "build_engine.sh", *args, version=version)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert stub_trtexec.calls == []


def test_jetson_time_script_is_the_generated_template() -> None:
    """deploy/jetson/time_engine.sh is time_engine_script() verbatim: one timing script."""
    from edgesr.export.tensorrt_build import time_engine_script

    assert (JETSON / "time_engine.sh").read_text() == time_engine_script()


TIME_BASE = ["--useCudaGraph", "--warmUp=500", "--duration=10"]


@pytest.mark.parametrize("version", TRT_VERSIONS)
@pytest.mark.parametrize("mode", ["gpu", "copies", "dla"])
@pytest.mark.parametrize("script", ["jetson", "device"])
def test_time_script_flags(tmp_path, device_dirs, stub_trtexec, script, mode, version) -> None:
    """Both time_engine.sh: the exact trtexec command; --percentile as each version parses it."""
    extra = {"gpu": [], "copies": ["--with-copies"], "dla": ["--dla-core", "1"]}[mode]
    engine_name = "espcn_fp16_dla1.engine" if mode == "dla" else "espcn_fp16.engine"
    if script == "jetson":
        engine, times = tmp_path / "m.engine", tmp_path / "t.json"
        engine.write_bytes(b"engine")
        proc, _ = stub_trtexec(
            JETSON / "time_engine.sh", "--no-power", *extra, str(engine), "1x1x180x320",
            str(times), "--iterations=50", version=version,
        )  # fmt: skip
        head = [f"--loadEngine={engine}", "--shapes=lr:1x1x180x320", f"--exportTimes={times}"]
        tail = ["--iterations=50"]
    else:
        out = tmp_path / "device"
        shutil.copytree(device_dirs["fp16"], out)
        (out / engine_name).write_bytes(b"engine")
        proc, _ = stub_trtexec(out / "time_engine.sh", "--no-power", *extra, version=version)
        times = out / f"times_{engine_name[:-7]}_1x1x270x480.json"
        head = [
            f"--loadEngine={engine_name}",
            "--shapes=lr:1x1x270x480",
            f"--exportTimes={times.name}",
        ]
        tail = []
    assert proc.returncode == 0, proc.stderr
    percentile = "--percentile=99" if version == "8401" else "--percentile=50,90,99"
    want = [*head, *TIME_BASE, percentile, *tail]
    want += {
        "gpu": ["--noDataTransfers"],
        "copies": [],
        "dla": ["--noDataTransfers", "--useDLACore=1"],
    }[mode]
    (call,) = stub_trtexec.calls
    assert sorted(call) == sorted(want)
    assert times.is_file() and not list(times.parent.glob("*.tegrastats.log"))
    if mode == "copies":
        assert "2 runs, host-to-host ms (copies + compute): p50 2.800" in proc.stdout
        assert "h2d p50 0.300 ms" in proc.stdout
    else:
        assert "2 runs, GPU compute ms: p50 1.500  p90 2.500" in proc.stdout


FAKE_TEGRASTATS = """#!/usr/bin/env bash
# Stands in for tegrastats: prints recorded lines every 20 ms until killed.
echo "$$ $*" > "$TEGRA_LOG"
while true; do
  for line in "${LINES[@]}"; do echo "$line"; sleep 0.02; done
done
"""


@pytest.mark.parametrize(
    "lines",
    [
        [
            "12-07-2026 10:00:00 RAM 2147/7620MB (lfb 2x4MB) CPU [0%@729,0%@729] GR3D_FREQ 0% "
            "VDD_IN 5000mW/5000mW VDD_CPU_GPU_CV 1200mW/1200mW VDD_SOC 1451mW/1451mW",
            "12-07-2026 10:00:00 RAM 2147/7620MB (lfb 2x4MB) CPU [9%@729,3%@729] GR3D_FREQ 99% "
            "VDD_IN 7000mW/6000mW VDD_CPU_GPU_CV 3200mW/2200mW VDD_SOC 1651mW/1551mW",
        ],
        [  # AGX Orin: no module input rail, the rails are summed
            "RAM 4023/30536MB (lfb 5555x4MB) GR3D_FREQ 0%@[0,0] cpu@45.5C VDD_GPU_SOC "
            "3188mW/3188mW/3600mW VDD_CPU_CV 797mW/797mW/900mW VIN_SYS_5V0 3221mW/3221mW/3300mW",
        ],
    ],
    ids=["orin-nano", "agx-orin"],
)
def test_time_script_logs_tegrastats(tmp_path, stub_trtexec, lines) -> None:
    """With tegrastats on PATH, its lines go to TIMES.tegrastats.log while trtexec runs, the
    process is stopped afterwards, and the mean power printed is what edgesr's own tegrastats
    parser (the profiler's) gives for that log."""
    from edgesr.profile.minimal import INPUT_RAILS, parse_tegrastats

    fake = tmp_path / "tegra_bin"
    fake.mkdir()
    quoted = " ".join("'" + line + "'" for line in lines)
    (fake / "tegrastats").write_text(
        FAKE_TEGRASTATS.replace("while true", f"LINES=({quoted})\nwhile true")
    )
    (fake / "tegrastats").chmod(0o755)
    engine, times = tmp_path / "m.engine", tmp_path / "t.json"
    engine.write_bytes(b"engine")
    proc, _ = stub_trtexec(
        JETSON / "time_engine.sh", str(engine), "1x1x270x480", str(times), path=fake,
        env={"TEGRA_LOG": str(tmp_path / "tegra_args.txt"), "STUB_SLEEP": "0.4"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pid, args = (tmp_path / "tegra_args.txt").read_text().split(" ", 1)
    assert args.strip() == "--interval 100"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)  # stopped with the timing run
    log = tmp_path / "t.tegrastats.log"
    readings = [parse_tegrastats(line) for line in log.read_text().splitlines()]
    readings = [r for r in readings if r]
    assert len(readings) >= 3  # 0.4 s of "inference" at 20 ms per line
    rail = next((n for n in INPUT_RAILS if n in readings[0]), None)
    watts = [r[rail] if rail else sum(r.values()) for r in readings]
    mean = sum(watts) / len(watts)
    name = rail or "sum(" + "+".join(sorted(readings[0])) + ")"
    assert f"power: {name} mean {mean:.2f} W over {len(watts)} samples ({log})" in proc.stdout


# --------------------------------------------------------------------------------------------
# The engine sidecar contract: every producer's <engine>.json is read by every consumer


RUNTIME = REPO / "deploy" / "runtime"
SIDECAR_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "internal.h"
int main(int argc, char** argv) {
  FILE* f = fopen(argv[1], "rb");
  static char buf[1 << 20];
  size_t n;
  esr_model_meta meta;
  esr_status st;
  if (f == NULL || argc != 2) return 3;
  n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  st = esr__parse_sidecar(buf, n, &meta);
  if (st != ESR_OK) { printf("error %d\n", (int)st); return 1; }
  printf("%d %s\n", (int)meta.scale, meta.color == ESR_COLOR_RGB ? "rgb" : "y_bt601");
  return 0;
}
"""


@pytest.fixture(scope="module")
def c_sidecar_parser(tmp_path_factory):
    """libedgesr's own sidecar parser (deploy/runtime/src/meta.c, what the TensorRT backend
    calls) compiled into a tiny program: the backend itself needs TensorRT and CUDA."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) to build libedgesr's sidecar parser")
    out = tmp_path_factory.mktemp("csidecar")
    (out / "main.c").write_text(SIDECAR_MAIN)
    exe = out / "parse_sidecar"
    proc = subprocess.run(
        [
            cc, "-std=c99", "-Wall", "-Werror", f"-I{RUNTIME / 'src'}",
            f"-I{RUNTIME / 'include'}", str(out / "main.c"), str(RUNTIME / "src" / "meta.c"),
            str(RUNTIME / "tests" / "fuzz_fail_stub.c"), "-o", str(exe),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    def parse(path: Path) -> str:
        res = subprocess.run([str(exe), str(path)], capture_output=True, text=True)
        return res.stdout.strip()

    return parse


def assert_sidecar_contract(engine: Path, c_parse, *, scale: int, color: str, precision: str):
    """``<engine>.json`` has the contract keys and both consumers read scale and colour."""
    from edgesr.profile.minimal import SIDECAR_KEYS, engine_sidecar, read_engine_metadata

    sidecar = engine_sidecar(engine)
    assert sidecar == engine.with_name(engine.name + ".json") and sidecar.is_file()
    data = json.loads(sidecar.read_text())
    assert set(SIDECAR_KEYS) <= set(data), data.keys()
    assert data["scale"] == scale and type(data["scale"]) is int and data["color"] == color
    assert data["precision"] == precision and data["recipe"] == data["metadata"]["edgesr.recipe"]
    assert len(data["onnx_sha256"]) == 64 and data["metadata"]["edgesr.scale"] == str(scale)
    meta = read_engine_metadata(engine)
    assert meta["edgesr.scale"] == str(scale) and meta["edgesr.color"] == color
    assert meta["edgesr.precision"] == precision
    assert meta["edgesr.source_sha256"] == data["onnx_sha256"]
    assert c_parse(sidecar) == f"{scale} {color}"
    return data


def test_c_parser_and_minimal_agree_on_sidecars(tmp_path, c_sidecar_parser) -> None:
    from edgesr.profile.minimal import ModelLoadError, engine_sidecar_dict, read_engine_metadata

    meta = {"edgesr.scale": "3", "edgesr.color": "rgb", "edgesr.recipe": "r"}
    engine = tmp_path / "m.plan"
    engine.write_bytes(b"plan")
    sidecar = tmp_path / "m.plan.json"
    sidecar.write_text(json.dumps(engine_sidecar_dict(meta, precision="fp16")))
    assert c_sidecar_parser(sidecar) == "3 rgb"
    assert read_engine_metadata(engine)["edgesr.scale"] == "3"
    sidecar.write_text('{"scale": 2, "color": "y_bt601"}')  # the flat form edgesr.h documents
    assert c_sidecar_parser(sidecar) == "2 y_bt601"
    assert read_engine_metadata(engine)["edgesr.color"] == "y_bt601"
    sidecar.write_text(json.dumps({"metadata": meta, "precision": "fp32"}))  # before the fix
    assert c_sidecar_parser(sidecar).startswith("error")
    for bad in ({"edgesr.scale": "4"}, {"edgesr.scale": "x", "edgesr.color": "rgb"}):
        with pytest.raises(ModelLoadError):
            engine_sidecar_dict(bad, precision="fp32")


def test_build_engine_sidecar_contract(tmp_path, espcn, monkeypatch, c_sidecar_parser) -> None:
    """build_engine's sidecar, with TensorRT itself faked (the build is not what is tested)."""
    import types

    from edgesr.export import tensorrt_build as tb

    fake = types.SimpleNamespace(
        __name__="tensorrt",
        __version__="10.3.0",
        NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=0),
    )
    monkeypatch.setattr(tb, "load_tensorrt", lambda builder=None: fake)
    monkeypatch.setattr(tb, "_trt_build", lambda *a, **k: (b"plan", 0.5, None))
    rgb = export(tmp_path, "anchornet", "rgb")
    for onnx_path, color in ((espcn, "y_bt601"), (rgb, "rgb")):
        engine = tmp_path / f"{onnx_path.stem}.engine"
        report = build_engine(onnx_path, engine, precision="fp32")
        data = assert_sidecar_contract(
            engine, c_sidecar_parser, scale=4, color=color, precision="fp32"
        )
        assert data["engine_sha256"] == report.engine_sha256 and data["builder"] == "tensorrt"


def test_device_script_writes_sidecar(tmp_path, espcn, stub_trtexec, c_sidecar_parser) -> None:
    out = tmp_path / "device"
    scripts = write_trt_build_script(espcn, out, profiles=[(270, 480), (135, 240)])
    assert Path(scripts.sidecar) == out / "espcn.sidecar.json"
    for version in ("100300", "8502"):
        for engine in scripts.engines:
            (out / engine).unlink(missing_ok=True)
            (out / f"{engine}.json").unlink(missing_ok=True)
        proc, _ = stub_trtexec(out / "build_engine.sh", version=version)
        assert proc.returncode == 0, proc.stderr
        for engine in scripts.engines:
            assert_sidecar_contract(
                out / engine, c_sidecar_parser, scale=4, color="y_bt601", precision="fp16"
            )
    assert not list(out.glob("*.tmp"))
    (out / "espcn.sidecar.json").unlink()
    proc, args = stub_trtexec(out / "build_engine.sh")
    assert proc.returncode == 1 and "sidecar.json is missing" in proc.stderr
    assert not any(a.startswith("--saveEngine") for a in args)  # refused before the build


def test_jetson_script_writes_sidecar(tmp_path, espcn, stub_trtexec, c_sidecar_parser) -> None:
    script = JETSON / "build_engine.sh"
    # From the ONNX metadata (python3 + onnx): no sidecar beside this ONNX.
    engine = tmp_path / "e.engine"
    proc, _ = stub_trtexec(script, "--onnx", str(espcn), "--engine", str(engine))
    assert proc.returncode == 0, proc.stderr
    assert_sidecar_contract(engine, c_sidecar_parser, scale=4, color="y_bt601", precision="fp32")
    # The sidecar edgesr export wrote into device/, for MODEL.onnx and MODEL.fp16.onnx.
    out = tmp_path / "device"
    write_trt_build_script(espcn, out, profiles=[(270, 480)])
    for name in ("espcn.onnx", "espcn.fp16.onnx"):
        engine = tmp_path / f"{name}.plan"
        proc, _ = stub_trtexec(script, "--onnx", str(out / name), "--engine", str(engine))
        assert proc.returncode == 0, proc.stderr
        data = assert_sidecar_contract(
            engine, c_sidecar_parser, scale=4, color="y_bt601", precision="fp16"
        )
        assert data == json.loads((out / "espcn.sidecar.json").read_text())
    # No edgesr metadata: refused before trtexec runs, nothing left behind.
    bare = load_onnx(espcn)
    del bare.metadata_props[:]
    onnx.save(bare, tmp_path / "bare.onnx")
    engine = tmp_path / "bare.engine"
    proc, args = stub_trtexec(
        script, "--onnx", str(tmp_path / "bare.onnx"), "--engine", str(engine)
    )
    assert proc.returncode == 2 and "edgesr.scale" in proc.stderr
    assert not any(a.startswith("--saveEngine") for a in args)
    assert not engine.exists() and not list(tmp_path.glob("bare.engine.json*"))


def test_power_mode_script_refuses_off_jetson() -> None:
    if Path("/etc/nv_tegra_release").exists():
        pytest.skip("this is a Jetson")
    proc = subprocess.run(
        ["bash", str(JETSON / "set_power_mode.sh"), "0"], capture_output=True, text=True
    )
    assert proc.returncode == 3 and "not a Jetson" in proc.stderr


def test_scripts_pass_shellcheck(tmp_path, espcn) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    scripts = write_trt_build_script(espcn, tmp_path / "d", profiles=[(270, 480), (135, 240)])
    files = [*JETSON.glob("*.sh"), Path(scripts.build_script), Path(scripts.time_script)]
    proc = subprocess.run(["shellcheck", *map(str, files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


# --------------------------------------------------------------------------------------------
# Real builds with a TensorRT-family builder (tensorrt-rtx needs no GPU)


def test_build_fp32_and_fp16_engines(tmp_path, trt, espcn) -> None:
    for precision in ("fp32", "fp16"):
        engine = tmp_path / f"espcn_{precision}.engine"
        report = build(
            trt,
            espcn,
            engine,
            precision=precision,
            profiles=[(270, 480), (90, 160)],
            timing_cache=tmp_path / "tc.cache",
        )
        assert engine.stat().st_size == report.engine_size > 10_000
        sidecar = json.loads((tmp_path / f"espcn_{precision}.engine.json").read_text())
        assert sidecar["precision"] == precision and sidecar["builder"] == trt.__name__
        assert sidecar["trt_version"] == trt.__version__ and sidecar["strongly_typed"]
        assert [p["opt"] for p in sidecar["profiles"]] == [[1, 1, 270, 480], [1, 1, 90, 160]]
        assert (
            sidecar["build_time_s"] > 0
            and sidecar["device"]
            and sidecar["metadata"]["edgesr.scale"] == "4"
        )
        if trt.__name__ == "tensorrt_rtx":
            assert sidecar["timing_cache"] is None and any(
                "timing caches" in n for n in sidecar["notes"]
            )
    assert (tmp_path / "espcn_fp16.fp16.onnx").is_file()  # the strongly typed FP16 graph built


def test_build_int8_qdq_engines(tmp_path, trt, espcn_int8) -> None:
    report = build(trt, espcn_int8, tmp_path / "e.engine")  # auto: Q/DQ -> int8-qdq
    assert report.precision == "int8-qdq" and report.strongly_typed
    assert any("256 levels" in w for w in report.warnings)
    fsrcnn = ort_quantize(export(tmp_path, "fsrcnn"), tmp_path / "f_int8.onnx")  # ConvTranspose
    assert build(trt, fsrcnn, tmp_path / "f.engine").engine_size > 0
    anchor = ort_quantize(
        export(tmp_path, "anchornet", "rgb"), tmp_path / "a_int8.onnx", color="rgb"
    )
    assert build(trt, anchor, tmp_path / "a.engine", profiles=[(180, 320)]).engine_size > 0


def parse_with(trt, path: Path) -> list[str]:
    """Errors of TensorRT's own ONNX parser (no edgesr checks in between)."""
    logger = trt.Logger(trt.Logger.ERROR)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = trt.Builder(logger).create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(path))
    return [] if ok else [str(parser.get_error(i)) for i in range(parser.num_errors)]


def test_check_agrees_with_tensorrt_parser(tmp_path, trt, espcn, espcn_int8) -> None:
    """What check_tensorrt_compat calls errors, TensorRT's parser rejects too (and vice versa
    for the good file): the ONNX check is not a guess."""
    assert parse_with(trt, espcn_int8) == []
    bad = ort_quantize(espcn, tmp_path / "defaults.onnx", tensorrt_ready=False)
    assert parse_with(trt, bad)  # int32 bias DQ / non-zero zero point
    with pytest.raises(ModelError, match="not TensorRT-ready"):
        build(trt, bad, tmp_path / "bad.engine")
    assert not (tmp_path / "bad.engine").exists()


class HotNet(nn.Module):
    """x2 net whose second conv's activations reach ~8e5: beyond FP16 (see test_export)."""

    scale, num_channels = 2, 1

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, 4, 3, padding=1) for c in (1, 4, 4))
        self.up = nn.PixelShuffle(2)
        with torch.no_grad():
            for conv, value in zip(self.convs, (500.0, 5.0, 4e-8), strict=True):
                conv.weight.fill_(value)
                conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.convs[0](x))
        x = torch.relu(self.convs[1](x))
        return self.up(self.convs[2](x))


def test_fp16_engine_with_fp32_fallback(tmp_path, trt) -> None:
    path = tmp_path / "hot.onnx"
    export_onnx(HotNet(), path, info=ModelInfo(arch="hot", scale=2, color="y"))
    report = build(trt, path, tmp_path / "hot.engine", precision="fp16")
    assert report.fp32_nodes == ["/convs.1/Conv", "/Relu_1", "/convs.2/Conv"]
    half = load_onnx(tmp_path / "hot.fp16.onnx")
    assert (
        json.loads({p.key: p.value for p in half.metadata_props}["edgesr.fp32_nodes"])
        == report.fp32_nodes
    )


class UnshuffleNet(nn.Module):
    scale, num_channels = 2, 1

    def __init__(self) -> None:
        super().__init__()
        self.down, self.conv, self.up = (
            nn.PixelUnshuffle(2),
            nn.Conv2d(4, 16, 3, padding=1),
            nn.PixelShuffle(4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.conv(self.down(x)))


def test_pixel_unshuffle_engine(tmp_path, trt) -> None:
    path = tmp_path / "unshuffle.onnx"
    export_onnx(
        UnshuffleNet(),
        path,
        info=ModelInfo(arch="u", scale=2, color="y"),
        verify_sizes=((96, 128), (50, 66)),
    )
    for precision in ("fp32", "fp16"):
        report = build(
            trt,
            path,
            tmp_path / f"u_{precision}.engine",
            precision=precision,
            profiles=[(540, 960)],
        )
        assert report.engine_size > 0


def test_build_errors(tmp_path, trt, espcn) -> None:
    engine = tmp_path / "e.engine"
    engine.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        build(trt, espcn, engine)
    assert engine.read_bytes() == b"old"
    with pytest.raises(ConfigError, match="channels"):
        build(
            trt, espcn, tmp_path / "f.engine", profiles=[((1, 3, 8, 8), (1, 3, 8, 8), (1, 3, 8, 8))]
        )
    with pytest.raises(ConfigError, match="no Q/DQ"):
        build(trt, espcn, tmp_path / "g.engine", precision="int8-qdq")
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(ModelError, match="not an ONNX model"):
        build(trt, junk, tmp_path / "h.engine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.engine", "junk.onnx"]


def test_parser_failure_leaves_nothing(tmp_path, trt) -> None:
    """A graph ONNX Runtime runs but TensorRT cannot parse (Unique): a ModelError naming the
    node, and no engine, sidecar or FP16 graph left behind."""
    from edgesr.export.onnx_export import set_edgesr_metadata

    helper, tp = onnx.helper, onnx.TensorProto
    nodes = [
        helper.make_node("Unique", ["lr"], ["u"], name="unique"),
        helper.make_node("ReduceMax", ["u"], ["m"], name="max", keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"], name="times0"),
        helper.make_node("Add", ["lr", "z"], ["x"], name="add"),
        helper.make_node("Tile", ["x", "reps"], ["t"], name="tile"),
        helper.make_node("DepthToSpace", ["t"], ["sr"], name="d2s", blocksize=2, mode="CRD"),
    ]
    graph = helper.make_graph(
        nodes,
        "nearest_x2",
        [helper.make_tensor_value_info("lr", tp.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("sr", tp.FLOAT, ["N", 1, "sH", "sW"])],
        [
            numpy_helper.from_array(np.array([1, 4, 1, 1], np.int64), "reps"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    set_edgesr_metadata(model, ModelInfo(arch="nearest", scale=2, color="y"), precision="fp32")
    path = tmp_path / "nearest.onnx"
    onnx.save(model, str(path))
    assert any("Unique" in w for w in warnings_of(check_tensorrt_compat(path)))
    with pytest.raises(ModelError, match="cannot parse"):
        build(trt, path, tmp_path / "n.engine", precision="fp16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nearest.onnx"]


def test_missing_builder_is_a_dependency_error(espcn, tmp_path) -> None:
    if "tensorrt" in sys.modules or tensorrt_available() == "tensorrt":
        pytest.skip("tensorrt is installed here")
    with pytest.raises(DependencyError, match="pip install tensorrt"):
        build_engine(espcn, tmp_path / "e.engine", builder="tensorrt")
    assert not list(tmp_path.iterdir())


def test_runtime_runner_without_tensorrt_is_a_dependency_error(tmp_path) -> None:
    import importlib.util

    from edgesr.profile.tensorrt_runner import TensorRTRunner

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    engine = tmp_path / "sr.engine"
    engine.write_bytes(b"not really an engine")
    runner = TensorRTRunner(engine)
    assert runner.name == "sr.engine" and not runner.is_active
    with pytest.raises(DependencyError, match="pip install tensorrt"):
        runner.activate()


# --------------------------------------------------------------------------------------------
# Real GPU


@pytest.fixture
def cuda_tensorrt():
    try:
        import tensorrt
    except ImportError:
        pytest.skip("needs TensorRT (`tensorrt`) and an NVIDIA GPU")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU and CUDA PyTorch")
    return tensorrt


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_matches_onnxruntime_on_gpu(tmp_path, cuda_tensorrt, espcn, precision) -> None:
    """Build on this GPU, run the engine on a real photo crop, compare with ONNX Runtime; the
    timing cache is written (TensorRT, unlike TensorRT-RTX, uses it)."""
    import onnxruntime as ort

    trt = cuda_tensorrt
    engine_path = tmp_path / "e.engine"
    report = build_engine(
        espcn,
        engine_path,
        precision=precision,
        builder="tensorrt",
        profiles=[(96, 128)],
        timing_cache=tmp_path / "tc.cache",
    )
    assert (tmp_path / "tc.cache").stat().st_size > 0 and report.timing_cache
    inputs, _ = verification_inputs(None, "y", ((96, 128),))
    x = inputs[0]
    want = ort.InferenceSession(str(espcn), providers=["CPUExecutionProvider"]).run(
        None, {"lr": x}
    )[0]
    logger = trt.Logger(trt.Logger.ERROR)
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
    context = engine.create_execution_context()
    lr = torch.from_numpy(x).cuda()
    sr = torch.empty(want.shape, dtype=torch.float32, device="cuda")
    context.set_input_shape("lr", tuple(x.shape))
    context.set_tensor_address("lr", lr.data_ptr())
    context.set_tensor_address("sr", sr.data_ptr())
    stream = torch.cuda.Stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    got = sr.cpu().numpy()
    mse = float(np.mean((got - want) ** 2))
    assert np.isfinite(got).all() and (
        mse == 0 or 10 * np.log10(1 / mse) > (60 if precision == "fp32" else 45)
    )
