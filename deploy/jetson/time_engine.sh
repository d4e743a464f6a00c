#!/usr/bin/env bash
# Time a TensorRT engine with trtexec: CUDA graph launches, no host<->device copies (the GPU
# time of the net itself), p50/p90/p99, per-inference times exported to JSON.
#
#   ./time_engine.sh ENGINE [NxCxHxW] [TIMES.json] [extra trtexec options...]
#
# NxCxHxW is the `lr` input shape (default 1x1x270x480: a 1080p output frame at x4, Y model);
# it must lie inside the engine's optimization profile. Set the power mode first
# (sudo ./set_power_mode.sh) so the numbers are comparable; the mode is recorded in the output.
set -euo pipefail

[ $# -ge 1 ] || { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
ENGINE="$1"
SHAPE="${2:-1x1x270x480}"
TIMES="${3:-times_$(basename "$ENGINE" .engine)_${SHAPE}.json}"
shift $(( $# < 3 ? $# : 3 ))
[ -f "$ENGINE" ] || { echo "engine $ENGINE does not exist; build it with build_engine.sh" >&2; exit 2; }

TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"
[ -x "$TRTEXEC" ] || { echo "trtexec not found; set TRTEXEC=/path/to/trtexec" >&2; exit 1; }

if command -v nvpmodel >/dev/null 2>&1; then
  echo "power mode: $(nvpmodel -q 2>/dev/null | tr '\n' ' ')"
fi
"$TRTEXEC" --loadEngine="$ENGINE" --shapes="lr:$SHAPE" \
  --useCudaGraph --noDataTransfers --warmUp=500 --duration=10 \
  --percentile=50,90,99 --exportTimes="$TIMES" "$@"

# A short summary from the exported per-inference times (python3 ships with JetPack).
if command -v python3 >/dev/null 2>&1; then
  python3 - "$TIMES" <<'EOF'
import json, sys
runs = [r for r in json.load(open(sys.argv[1])) if "computeMs" in r]
ms = sorted(r["computeMs"] for r in runs)
if ms:
    pick = lambda p: ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))]
    print(f"{len(ms)} runs, GPU compute ms: p50 {pick(50):.3f}  p90 {pick(90):.3f}  p99 {pick(99):.3f}")
EOF
fi
echo "per-inference times: $TIMES"
