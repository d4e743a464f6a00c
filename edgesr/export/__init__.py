"""The export stage: edgesr nets to ONNX (verified against PyTorch) and TensorRT engines.

``onnx_export`` writes and checks ONNX files; ``tensorrt_build`` builds engines through
TensorRT's Python API (or writes trtexec scripts for the device when TensorRT is not here).
Names are loaded on first use, so ``import edgesr.export`` imports neither torch, onnx,
ONNX Runtime nor TensorRT.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_ONNX = (
    "ExportReport",
    "MIN_PSNR_DB",
    "OnnxModelInfo",
    "PRECISIONS",
    "VerifyResult",
    "check_onnx_model",
    "convert_to_fp16",
    "emulate_fp16",
    "export_onnx",
    "make_fp16_onnx",
    "read_onnx_metadata",
    "stamp_onnx_metadata",
    "verify_onnx",
    "write_export_report",
)
_TRT = (
    "BuildScripts",
    "CompatIssue",
    "EngineReport",
    "Profile",
    "build_engine",
    "check_tensorrt_compat",
    "frame_profile",
    "load_tensorrt",
    "lr_frame_size",
    "tensorrt_available",
    "write_trt_build_script",
)
_WHERE = {**dict.fromkeys(_ONNX, "onnx_export"), **dict.fromkeys(_TRT, "tensorrt_build")}

__all__ = [
    "BuildScripts",
    "CompatIssue",
    "EngineReport",
    "ExportReport",
    "MIN_PSNR_DB",
    "OnnxModelInfo",
    "PRECISIONS",
    "Profile",
    "VerifyResult",
    "build_engine",
    "check_onnx_model",
    "check_tensorrt_compat",
    "convert_to_fp16",
    "emulate_fp16",
    "export_onnx",
    "frame_profile",
    "load_tensorrt",
    "lr_frame_size",
    "make_fp16_onnx",
    "read_onnx_metadata",
    "stamp_onnx_metadata",
    "tensorrt_available",
    "verify_onnx",
    "write_export_report",
    "write_trt_build_script",
]

if TYPE_CHECKING:
    from edgesr.export.onnx_export import (
        MIN_PSNR_DB,
        PRECISIONS,
        ExportReport,
        OnnxModelInfo,
        VerifyResult,
        check_onnx_model,
        convert_to_fp16,
        emulate_fp16,
        export_onnx,
        make_fp16_onnx,
        read_onnx_metadata,
        stamp_onnx_metadata,
        verify_onnx,
        write_export_report,
    )
    from edgesr.export.tensorrt_build import (
        BuildScripts,
        CompatIssue,
        EngineReport,
        Profile,
        build_engine,
        check_tensorrt_compat,
        frame_profile,
        load_tensorrt,
        lr_frame_size,
        tensorrt_available,
        write_trt_build_script,
    )


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'edgesr.export' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"edgesr.export.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
