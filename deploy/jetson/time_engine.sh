#!/usr/bin/env bash
# Time a TensorRT engine with trtexec on the device that built it.
#
#   ./time_engine.sh [--with-copies] [--dla-core N] [--no-power] ENGINE [NxCxHxW] [TIMES.json] [extra trtexec options...]
#
# Runs trtexec on the engine: CUDA graph launches, 500 ms warm-up, 10 s of inferences, p50/p90/p99
# (TensorRT >= 8.5; 8.4 takes a single --percentile, p99), every inference's times exported to
# TIMES.json. NxCxHxW is the `lr` input shape (default 1x1x270x480); it must lie inside the engine's
# optimization profile.
#   (default)      --noDataTransfers: the GPU time of the net itself (computeMs), no host<->device
#                  copies; what a camera pipeline whose frames already live in device memory sees.
#   --with-copies  keeps trtexec's input/output copies (h2dMs, computeMs, d2hMs; latencyMs is their
#                  sum): end to end from host memory.
#   --dla-core N   the engine was built for DLA core N (build_engine.sh --dla-core N); trtexec
#                  loads it on that core.
#   --no-power     no tegrastats log. Otherwise, where `tegrastats` is on PATH, it samples the
#                  power rails every 100 ms while trtexec runs into TIMES.tegrastats.log (warm-up
#                  included), and the summary gives the mean input power (VDD_IN or
#                  POM_5V_IN, else the sum of the rails).
# Set the power mode first (sudo ./set_power_mode.sh) so the numbers are comparable; the mode is
# printed with the results.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

COPIES=0 DLA="" POWER=1
while [ $# -gt 0 ]; do
  case "$1" in
    --with-copies) COPIES=1; shift ;;
    --no-power) POWER=0; shift ;;
    --dla-core)
      case "${2:-}" in ''|*[!0-9]*) echo "--dla-core takes a DLA core number (0 or 1)" >&2; exit 2 ;; esac
      DLA="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
ENGINE="${1:-}"
[ -n "$ENGINE" ] || usage 2
SHAPE="${2:-1x1x270x480}"
TIMES="${3:-times_$(basename "$ENGINE" .engine)_${SHAPE}.json}"
shift $(( $# < 3 ? $# : 3 ))
[ -f "$ENGINE" ] || { echo "engine $ENGINE does not exist; build it with build_engine.sh" >&2; exit 2; }

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

flags=(--useCudaGraph --warmUp=500 --duration=10)
[ "$COPIES" = 1 ] || flags+=(--noDataTransfers)
# A comma-separated list needs TensorRT >= 8.5 (8.4's trtexec parses one number).
if [ "$version" -ge 8500 ]; then flags+=("--percentile=50,90,99"); else flags+=(--percentile=99); fi
[ -z "$DLA" ] || flags+=("--useDLACore=$DLA")

echo "TensorRT $version, $TRTEXEC"
if command -v nvpmodel >/dev/null 2>&1; then
  echo "power mode: $(nvpmodel -q 2>/dev/null | tr '\n' ' ')"
fi
POWER_LOG="${TIMES%.json}.tegrastats.log"
tegra_pid=""
if [ "$POWER" = 1 ] && command -v tegrastats >/dev/null 2>&1; then
  tegrastats --interval 100 > "$POWER_LOG" 2>&1 &
  tegra_pid=$!
  trap 'kill "$tegra_pid" 2>/dev/null || true' EXIT
fi
status=0
"$TRTEXEC" --loadEngine="$ENGINE" --shapes="lr:$SHAPE" "${flags[@]}" --exportTimes="$TIMES" "$@" || status=$?
if [ -n "$tegra_pid" ]; then
  kill "$tegra_pid" 2>/dev/null || true
  wait "$tegra_pid" 2>/dev/null || true
  trap - EXIT
fi
[ "$status" = 0 ] || { echo "trtexec failed (exit $status)" >&2; exit "$status"; }

# A summary from the exported per-inference times and the power log (python3 ships with JetPack).
# The rail format is edgesr.profile.minimal.parse_tegrastats's: NAME cur/avg[/max] in mW or W.
if command -v python3 >/dev/null 2>&1; then
  python3 - "$TIMES" "$COPIES" "$([ -n "$tegra_pid" ] && echo "$POWER_LOG")" <<'PY'
import json
import re
import sys

times, copies, power_log = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
runs = [r for r in json.load(open(times)) if "computeMs" in r]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


if runs:
    key, what = ("latencyMs", "host-to-host ms (copies + compute)") if copies else ("computeMs", "GPU compute ms")
    ms = [r[key] for r in runs]
    print(f"{len(ms)} runs, {what}: p50 {pct(ms, 50):.3f}  p90 {pct(ms, 90):.3f}  p99 {pct(ms, 99):.3f}")
    if copies:
        for part in ("h2dMs", "computeMs", "d2hMs"):
            if all(part in r for r in runs):
                print(f"  {part[:-2]} p50 {pct([r[part] for r in runs], 50):.3f} ms")
if power_log:
    rail_re = re.compile(
        r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+(?:\.\d+)?)(mW|W)?/(\d+(?:\.\d+)?)(mW|W)?"
        r"(?:/(\d+(?:\.\d+)?)(mW|W)?)?(?![\w/.])"
    )
    totals, rail = [], ""
    for line in open(power_log, errors="replace"):
        rails = {m[0]: float(m[1]) / (1 if m[2] == "W" else 1000) for m in rail_re.findall(line)}
        if rails:
            names = next(([n] for n in ("VDD_IN", "POM_5V_IN", "5V_IN") if n in rails), sorted(rails))
            rail = names[0] if len(names) == 1 else "sum(" + "+".join(names) + ")"
            totals.append(sum(rails[n] for n in names))
    if totals:
        print(f"power: {rail} mean {sum(totals) / len(totals):.2f} W over {len(totals)} samples ({power_log})")
    else:
        print(f"power: no rails in {power_log}")
PY
fi
echo "per-inference times: $TIMES"
