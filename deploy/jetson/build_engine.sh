#!/usr/bin/env bash
# Build a TensorRT engine from an edgesr ONNX file with trtexec, on the device that will run it.
#
#   ./build_engine.sh --onnx espcn_x4.onnx [--engine espcn_x4.engine] [--precision typed]
#                     [--channels 1] [--min 1x1x16x16 --opt 1x1x270x480 --max 1x1x270x480]
#                     [--cache timing.cache] [--workspace 1024] [--fp32-layers a,b]
#                     [--sidecar model.sidecar.json] [--dla-core N [--dla-only]]
#
# --precision (default typed):
#   typed     strongly typed: the ONNX decides every layer's precision. Use it for the Q/DQ INT8
#             ONNX and for the *.fp16.onnx that `edgesr export --target tensorrt` writes (FP16
#             with FP32 fallback for overflowing layers). TensorRT >= 10 (JetPack 6.1+).
#   int8-qdq  a Q/DQ ONNX: strongly typed on TensorRT >= 10, --int8 --fp16 on 8.x (JetPack 5/6.0).
#   fp16      the FP32 ONNX with --fp16 (TensorRT 8.x-10.x; gone in 11). --fp32-layers pins the
#             named ONNX nodes to FP32 (--precisionConstraints=obey).
#   fp32      FP32 with TF32 off.
# --dla-core N builds for the Jetson's DLA core N (Xavier, AGX Orin, Orin NX) with
# --allowGPUFallback: layers DLA cannot run go to the GPU; --dla-only refuses the build instead.
# DLA computes in FP16 or INT8 only (fp32 is refused). Up to TensorRT 10, trtexec sets the FP16
# flag for DLA builds, which TensorRT 10 refuses on strongly typed networks: there fp16 and
# int8-qdq are built with flags (--fp16, --int8 --fp16) and typed is refused. TensorRT 11 has
# only strongly typed networks: typed and int8-qdq, as on the GPU.
# Shapes are for the input tensor `lr` (LR frames: 270x480 gives 1080p at x4); the defaults use
# --channels (1 for Y models, 3 for RGB). The timing cache makes rebuilds fast; keep it per device.
# Next to the plan goes ENGINE.json, the sidecar libedgesr and edgesr read the scale and colour
# from (a plan has no metadata): --sidecar FILE, else the MODEL.sidecar.json that
# `edgesr export --target tensorrt` writes beside the ONNX (for MODEL.onnx and MODEL.fp16.onnx),
# else one made from the ONNX's edgesr metadata with python3 and the onnx package.
# `edgesr export --target tensorrt` also writes a build_engine.sh with the exact values for one
# model; this one is the general tool.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

ONNX="" ENGINE="" PRECISION="typed" CHANNELS=1 MIN="" OPT="" MAX="" CACHE="timing.cache"
WORKSPACE=1024 FP32_LAYERS="" INPUT="lr" SIDECAR="" DLA="" DLA_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --onnx) ONNX="$2"; shift 2 ;;
    --engine) ENGINE="$2"; shift 2 ;;
    --precision) PRECISION="$2"; shift 2 ;;
    --channels) CHANNELS="$2"; shift 2 ;;
    --min) MIN="$2"; shift 2 ;;
    --opt) OPT="$2"; shift 2 ;;
    --max) MAX="$2"; shift 2 ;;
    --cache) CACHE="$2"; shift 2 ;;
    --workspace) WORKSPACE="$2"; shift 2 ;;
    --fp32-layers) FP32_LAYERS="$2"; shift 2 ;;
    --input) INPUT="$2"; shift 2 ;;
    --sidecar) SIDECAR="$2"; shift 2 ;;
    --dla-core) DLA="$2"; shift 2 ;;
    --dla-only) DLA_ONLY=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done
[ -n "$ONNX" ] || { echo "--onnx is required" >&2; usage 2; }
[ -f "$ONNX" ] || { echo "ONNX file $ONNX does not exist" >&2; exit 2; }
case "$DLA" in *[!0-9]*) echo "--dla-core takes a DLA core number (0 or 1), got '$DLA'" >&2; exit 2 ;; esac
[ -n "$DLA" ] || [ "$DLA_ONLY" = 0 ] || { echo "--dla-only needs --dla-core N" >&2; exit 2; }
ENGINE="${ENGINE:-${ONNX%.onnx}_${PRECISION}${DLA:+_dla$DLA}.engine}"
MIN="${MIN:-1x${CHANNELS}x16x16}"
OPT="${OPT:-1x${CHANNELS}x270x480}"
MAX="${MAX:-$OPT}"

TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"
if [ ! -x "$TRTEXEC" ]; then
  echo "trtexec not found (PATH, /usr/src/tensorrt/bin/trtexec); install JetPack's TensorRT or set TRTEXEC" >&2
  exit 1
fi
# trtexec prints "[TensorRT v100300]" (10.3.0) or "[TensorRT v8502]" (8.5.2) on every run.
version="${TRT_VERSION:-}"
if [ -z "$version" ]; then
  # No pipeline: under pipefail, a reader that stops early would fail the whole line.
  banner="$("$TRTEXEC" --help 2>&1 || true)"
  if [[ $banner =~ TensorRT\ v([0-9]+) ]]; then version="${BASH_REMATCH[1]}"; fi
fi
version="${version:-100000}"
if [ "$version" -ge 10000 ]; then major=$((version / 10000)); else major=$((version / 1000)); fi

if [ -n "$DLA" ]; then
  case "$PRECISION" in
    fp32) echo "DLA runs FP16 or INT8 only: use --precision fp16 or int8-qdq" >&2; exit 2 ;;
    typed)
      if [ "$major" -lt 11 ]; then
        echo "trtexec sets the FP16 flag for DLA builds, which TensorRT $version refuses on strongly" \
          "typed networks: use --precision fp16 (the FP32 ONNX) or int8-qdq" >&2
        exit 2
      fi ;;
  esac
fi

flags=()
case "$PRECISION" in
  typed|int8-qdq)
    if [ "$major" -ge 11 ] || { [ "$major" -ge 10 ] && [ -z "$DLA" ]; }; then
      flags+=(--stronglyTyped)
    elif [ "$PRECISION" = int8-qdq ]; then
      # --int8 makes TensorRT honour the Q/DQ nodes without strong typing (8.x, and DLA on 10.x);
      # --fp16 lets the layers left in float (e.g. the first conv of edgesr's int8-qdq) run in
      # FP16 instead of FP32.
      flags+=(--int8 --fp16)
    else
      echo "TensorRT $version has no strongly typed networks; use --precision fp16 or int8-qdq" >&2
      exit 2
    fi ;;
  fp16)
    if [ "$major" -ge 11 ]; then
      echo "TensorRT $major removed --fp16; build the *.fp16.onnx with --precision typed" >&2
      exit 2
    fi
    flags+=(--fp16)
    if [ -n "$FP32_LAYERS" ]; then
      spec="${FP32_LAYERS//,/:fp32,}:fp32"
      flags+=(--precisionConstraints=obey "--layerPrecisions=$spec" "--layerOutputTypes=$spec")
    fi ;;
  fp32) flags+=(--noTF32); [ "$major" -ge 10 ] && flags+=(--stronglyTyped) ;;
  *) echo "unknown --precision $PRECISION (typed, int8-qdq, fp16, fp32)" >&2; exit 2 ;;
esac
if [ -n "$DLA" ]; then
  flags+=("--useDLACore=$DLA")
  [ "$DLA_ONLY" = 1 ] || flags+=(--allowGPUFallback)
fi
if [ "$version" -ge 8600 ]; then flags+=(--skipInference); else flags+=(--buildOnly); fi

# The sidecar is made before the build, so that a model without edgesr metadata fails fast.
sidecar_tmp="$ENGINE.json.tmp"
trap 'rm -f -- "$sidecar_tmp"' EXIT
if [ -z "$SIDECAR" ]; then
  base="${ONNX%.onnx}"
  for candidate in "$base.sidecar.json" "${base%.fp16}.sidecar.json"; do
    if [ -f "$candidate" ]; then SIDECAR="$candidate"; break; fi
  done
fi
if [ -n "$SIDECAR" ]; then
  [ -s "$SIDECAR" ] || { echo "sidecar $SIDECAR does not exist or is empty" >&2; exit 2; }
  cp -- "$SIDECAR" "$sidecar_tmp"
elif ! python3 - "$ONNX" "$PRECISION" > "$sidecar_tmp" <<'PY'
# The sidecar format of edgesr.profile.minimal.engine_sidecar_dict, from the ONNX metadata.
import hashlib
import json
import sys

import onnx

path, precision = sys.argv[1], sys.argv[2]
meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
scale, color = meta.get("edgesr.scale", ""), meta.get("edgesr.color", "")
color = {"y": "y_bt601"}.get(color, color)
if not (scale.isdigit() and 1 <= int(scale) <= 16) or color not in ("y_bt601", "rgb"):
    sys.exit(f"{path}: no usable edgesr.scale/edgesr.color metadata ({scale!r}, {color!r})")
if precision == "typed":
    precision = meta.get("edgesr.precision", precision)
with open(path, "rb") as f:
    sha = hashlib.sha256(f.read()).hexdigest()
sidecar = {"scale": int(scale), "color": color, "precision": precision,
           "recipe": meta.get("edgesr.recipe", ""), "onnx_sha256": sha, "metadata": meta}
print(json.dumps(sidecar, indent=2))
PY
then
  echo "cannot make $ENGINE.json (scale, color) for $ONNX: pass --sidecar FILE, keep the" \
    "*.sidecar.json edgesr export wrote next to the ONNX, or install python3 with onnx" >&2
  exit 2
fi

echo "TensorRT $version, $TRTEXEC"
echo "building $ENGINE from $ONNX: $PRECISION${DLA:+ on DLA core $DLA}, $INPUT min $MIN opt $OPT max $MAX"
set -x
"$TRTEXEC" --onnx="$ONNX" --saveEngine="$ENGINE" \
  --minShapes="$INPUT:$MIN" --optShapes="$INPUT:$OPT" --maxShapes="$INPUT:$MAX" \
  --memPoolSize="workspace:$WORKSPACE" --timingCacheFile="$CACHE" "${flags[@]}"
set +x
[ -s "$ENGINE" ] || { echo "trtexec reported success but $ENGINE is empty" >&2; exit 1; }
mv -f -- "$sidecar_tmp" "$ENGINE.json"
echo "sidecar: $ENGINE.json"
echo "engine: $ENGINE ($(du -h "$ENGINE" | cut -f1)); time it with: $(dirname "$0")/time_engine.sh ${DLA:+--dla-core $DLA }$ENGINE $OPT"
