"""The INT8 stages of ``compress``: one NNCF PTQ + QAT run per deployment target.

The two targets want different grids: ORT's fast CPU kernels take u8 activations after ReLU and
7-bit weights (exact on every CPU, see :data:`edgesr.compress.ort_int8.ORT_CPU_WEIGHT_BITS`);
TensorRT takes int8 activations with zero point 0 and 8-bit weights (its kernels accumulate in
int32). So each target gets its own equalization choice, PTQ and QAT.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from edgesr.modelio import ModelInfo
from edgesr.recipe import Recipe

Score = Callable[..., Any]


def int8_stages(
    recipe: Recipe,
    student: nn.Module,
    teacher: nn.Module,
    info: ModelInfo,
    *,
    sampler: Callable[[str], Any] | None,
    calib: list[Any],
    out: Path,
    score: Score,
    log: Callable[[str], None] | None,
    prefix: str = "",
) -> dict[str, Any]:
    """INT8 per target: NNCF PTQ -> QAT with distillation -> ORT-CPU model and TensorRT Q/DQ.

    ``student`` is quantized, ``teacher`` guides QAT (they may be the same net). The stages are
    named ``{prefix}int8-ort`` and ``{prefix}int8-qdq`` (files likewise), plus
    ``int8-ort-float-first`` for the unpruned net (empty prefix). ``sampler(stage)`` gives each
    stage's QAT its own patch stream.
    ``score(stage, target, onnx, weights, model, t0, notes)`` scores each model written.
    Returns the reports for the manifest (equalization and mixed-precision choices).
    """
    from edgesr.compress.equalize import choose_equalization
    from edgesr.compress.nncf_int8 import (
        conv_layers,
        export_qdq_onnx,
        input_feeds_only,
        ptq_nncf,
        qat_finetune,
    )
    from edgesr.compress.ort_int8 import ORT_CPU_WEIGHT_BITS, qat_to_ort_int8
    from edgesr.evaluate import resolve_eval_data
    from edgesr.export.onnx_export import stamp_onnx_metadata

    spec = recipe.compress
    base = info.params
    int8_info = ModelInfo(info.arch, info.scale, info.color, base, recipe.name, recipe.hash())

    # Equalization and mixed precision are chosen on the recipe's validation images, never
    # on the set the table reports.
    val = recipe.data.val or "embedded"
    val_pairs = (
        resolve_eval_data(val, scale=info.scale)
        if spec.equalize == "auto" or (spec.int8_max_drop_db is not None)
        else []
    )
    # Each target gets its own choice: equalization widens activation ranges, which TensorRT's
    # signed activations (7 bits for a ReLU output) pay more for. ESPCN x4 PTQ on validation:
    # +0.35 dB with u8 activations, -0.005 dB with int8.
    # ORT-CPU: u8 activations, 7-bit weights (exact on every CPU, see ORT_CPU_WEIGHT_BITS);
    # TensorRT: int8 activations, 8-bit weights (its int8 kernels accumulate in int32).
    # Per stage: (signed activations, weight bits, ORT first-conv grid).
    ort_grid = (False, spec.ort_weight_bits)
    made = [("int8-ort", "onnxruntime-cpu", (*ort_grid, spec.ort_first_conv))]
    if spec.ort_float_first_model and not prefix and spec.ort_first_conv != "float":
        made.append(("int8-ort-float-first", "onnxruntime-cpu", (*ort_grid, "float")))
    made.append(("int8-qdq", "tensorrt", (True, 8, "")))
    targets = {prefix + stage: grid for stage, target, grid in made if target in spec.int8_targets}
    nets: dict[str, nn.Module] = {}
    reports: dict[str, Any] = {"equalization": {}}
    chosen: dict[tuple[bool, int], tuple[nn.Module, dict[str, Any]]] = {}
    for target, (signed, bits, _) in targets.items():
        # Stages on the same grid (int8-ort and int8-ort-float-first) share the choice.
        if (signed, bits) not in chosen:
            chosen[signed, bits] = choose_equalization(
                student,
                calib,
                val_pairs,
                mode=spec.equalize,
                signed_activations=signed,
                weight_bits=bits,
                log=lambda text, t=target: _say(log, f"{text} [{t}]"),
            )
        nets[target], eq_report = chosen[signed, bits]
        reports["equalization"][target] = {**eq_report, "validation": str(val)}

    float_layers: tuple[str, ...] = ()
    if spec.int8_max_drop_db is not None:
        from edgesr.compress.mixed import select_float_layers

        first = next(iter(targets))
        mixed = select_float_layers(
            nets[first],
            calib,
            val_pairs,
            max_drop_db=spec.int8_max_drop_db,
            signed_activations=targets[first][0],
            weight_bits=targets[first][1],
            log=log,
        )
        float_layers = mixed.float_layers
        reports["mixed_precision"] = {**mixed.to_dict(), "validation": str(val)}
        if not mixed.met:
            _say(
                log,
                f"  mixed precision: the {spec.int8_max_drop_db} dB limit is not met even with "
                f"{len(float_layers)} float convs (PTQ drop {mixed.drop_db:.3f} dB); QAT follows",
            )

    float_first = prefix + "int8-ort-float-first"
    if float_first in targets and conv_layers(nets[float_first])[0] in float_layers:
        # Mixed precision already keeps the first conv float: int8-ort is that model.
        del targets[float_first]
        del reports["equalization"][float_first]

    def quantized(target: str) -> tuple[nn.Module, str]:
        signed, bits, first_grid = targets[target]
        floats = tuple(float_layers)
        first = conv_layers(nets[target])[0]
        if (signed and spec.trt_float_first_conv) or first_grid == "float":
            # TensorRT's int8 has zero point 0, so a [0, 1] input gets a 1/127 step: the LR frame
            # loses its 8th bit (the FP32 net with such an input: -0.06 dB on Set5). The first conv
            # has a single-channel (or RGB) input and few MACs; TensorRT runs it in float.
            floats = floats if first in floats else (first, *floats)
        u7_input = (
            first_grid == "7bit-input"
            and first not in floats
            and input_feeds_only(nets[target], first)
        )
        q = ptq_nncf(
            nets[target],
            calib,
            signed_activations=signed,
            float_layers=floats,
            weight_bits=bits,
            # The image on a 7-bit grid cannot reach 255, so its conv's 8-bit weights cannot
            # saturate int16 on any CPU (edgesr.runtime.saturation).
            layer_weight_bits={first: 8} if u7_input else None,
            input_bits=7 if u7_input else 8,
        )
        note = f"NNCF PTQ ({bits}-bit weights) on {len(calib)} frames"
        if u7_input:
            note += "; first conv: 7-bit image x 8-bit weights"
        elif first_grid == "7bit-input" and first not in floats:
            # A 7-bit input would also coarsen whatever else reads the image (AnchorNet's anchor).
            note += "; first conv 7-bit (the input feeds more than it)"
        if reports["equalization"][target]["applied"]:
            note = "channels equalized; " + note
        if floats:
            note += f" (float convs: {', '.join(floats)})"
        steps = spec.qat_steps_for("tensorrt" if signed else "onnxruntime-cpu")
        if steps > 0:
            assert sampler is not None, "QAT needs training patches"
            qat_finetune(
                q,
                teacher,
                sampler(target),
                steps=steps,
                lr=spec.qat_lr,
                alpha=spec.qat_alpha,
                loss="mse",
            )
            note += f" + {steps} QAT steps (KD alpha {spec.qat_alpha}, MSE)"
        return q, note

    qdq_stage = f"{prefix}int8-qdq"
    for ort_stage in (t for t in targets if t != qdq_stage):
        t0 = time.perf_counter()
        q_ort, note = quantized(ort_stage)
        ort_path = qat_to_ort_int8(
            q_ort,
            out / f"{ort_stage}.onnx",
            calib,
            scale=info.scale,
            color=info.color,
            portable=spec.ort_weight_bits == ORT_CPU_WEIGHT_BITS,
        )
        stamp_onnx_metadata(ort_path, info=int8_info, precision="int8-qdq", force=True)
        score(
            ort_stage,
            "onnxruntime-cpu",
            ort_path,
            None,
            student,
            t0,
            notes=note + "; QAT weights and ranges carried into ORT quantize_static (QLinearConv)",
        )

    if qdq_stage in targets:
        t0 = time.perf_counter()
        q_trt, note = quantized(qdq_stage)
        qdq_path = export_qdq_onnx(
            q_trt,
            out / f"{qdq_stage}.onnx",
            scale=info.scale,
            color=info.color,
            require_int8_activations=True,
        )
        stamp_onnx_metadata(qdq_path, info=int8_info, precision="int8-qdq", force=True)
        score(
            qdq_stage,
            "tensorrt",
            qdq_path,
            None,
            student,
            t0,
            notes=note + "; explicit Q/DQ for a strongly typed TensorRT build",
        )
    return reports


def _say(log: Callable[[str], None] | None, text: str) -> None:
    if log is not None:
        log(text)
