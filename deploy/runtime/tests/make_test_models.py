"""Make the tiny ONNX models the C tests run (needs only numpy + onnx).

The "nearest" models are a 1x1 conv with 0/1 weights followed by DepthToSpace: each output
pixel is an exact copy of an input pixel, so the C tests can check frames pixel by pixel.
Broken variants exercise every model error the library must report.

Usage: python make_test_models.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def nearest_model(
    scale: int,
    channels: int,
    meta: dict[str, str] | None,
    *,
    static_hw: int = 0,
    gain: float = 1.0,
    perm: tuple[int, ...] = (0, 1, 2),
) -> onnx.ModelProto:
    weight = np.zeros((channels * scale * scale, channels, 1, 1), np.float32)
    for c in range(channels):  # DepthToSpace (CRD) gives channel c the block c*s^2 .. c*s^2+s^2-1
        weight[c * scale * scale : (c + 1) * scale * scale, perm[c]] = gain
    h = static_hw or "H"
    w = static_hw or "W"
    oh = static_hw * scale if static_hw else "sH"
    ow = static_hw * scale if static_hw else "sW"
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["lr", "w", "b"], ["t"], kernel_shape=[1, 1]),
            helper.make_node("DepthToSpace", ["t"], ["sr"], blocksize=scale, mode="CRD"),
        ],
        "nearest",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["N", channels, h, w])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["N", channels, oh, ow])],
        initializer=[
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.zeros(weight.shape[0], np.float32), "b"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgesr-tests"
    )
    model.ir_version = 8  # old enough for the ORT builds on JetPack
    for key, value in (meta or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def meta(scale: int | str, color: str) -> dict[str, str]:
    return {
        "edgesr.scale": str(scale),
        "edgesr.color": color,
        "edgesr.version": "test",
        "edgesr.recipe": "nearest",
        "edgesr.recipe_hash": "0",
        "edgesr.precision": "fp32",
    }


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    models = {
        "y_x2": nearest_model(2, 1, meta(2, "y_bt601")),
        "rgb_x3": nearest_model(3, 3, meta(3, "rgb")),
        "nometa": nearest_model(2, 1, None),
        "badscale": nearest_model(2, 1, meta("two", "y_bt601")),
        "zeroscale": nearest_model(2, 1, meta(0, "y_bt601")),
        "badcolor": nearest_model(2, 1, meta(2, "bgr")),
        "wrongscale": nearest_model(2, 1, meta(4, "y_bt601")),
        "rgb_meta_on_y": nearest_model(2, 1, meta(2, "rgb")),
        "static8": nearest_model(2, 1, meta(2, "y_bt601"), static_hw=8),
        # x0.5 gain (exact in float): shows how luma is mapped in and out of the model
        "half_x2": nearest_model(2, 1, meta(2, "y_bt601"), gain=0.5),
        # output R, G, B = input G, B, R: shows which YUV matrix an RGB model's frames went through
        "rot_x2": nearest_model(2, 3, meta(2, "rgb"), perm=(1, 2, 0)),
    }
    for name, model in models.items():
        onnx.save(model, str(out / f"{name}.onnx"))
    good = (out / "y_x2.onnx").read_bytes()
    (out / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (out / "text.onnx").write_bytes(b"this is not an ONNX model\n")
    (out / "empty.onnx").write_bytes(b"")
    # Frames for the example's test: 20x12 PGM, PPM and raw NV12 (Y plane, then interleaved UV).
    w, h = 20, 12
    y = (np.arange(w * h, dtype=np.int64).reshape(h, w) * 7 % 256).astype(np.uint8)
    rgb = np.stack([y, 255 - y, y // 2], axis=-1)
    uv = (np.arange(w * h // 2, dtype=np.int64) * 3 % 256).astype(np.uint8)
    (out / "in.pgm").write_bytes(f"P5\n{w} {h}\n255\n".encode() + y.tobytes())
    (out / "in.ppm").write_bytes(f"P6\n{w} {h}\n255\n".encode() + rgb.tobytes())
    (out / "in.nv12").write_bytes(y.tobytes() + uv.tobytes())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
