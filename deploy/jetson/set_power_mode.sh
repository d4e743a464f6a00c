#!/usr/bin/env bash
# Put a Jetson into a fixed power mode with maximum clocks before timing engines.
#
#   sudo ./set_power_mode.sh [MODE] [--no-clocks]
#   ./set_power_mode.sh --list
#
# MODE is an nvpmodel id (default 0, MAXN on most modules; --list shows this module's modes,
# from /etc/nvpmodel.conf). jetson_clocks then pins CPU/GPU/EMC clocks to the mode's maximum,
# so timings do not depend on DVFS. Some mode changes need a reboot: nvpmodel asks.
# Prints the mode and clocks before and after. On anything but a Jetson it changes nothing.
set -euo pipefail

MODE=0 CLOCKS=1 LIST=0
for arg in "$@"; do
  case "$arg" in
    --no-clocks) CLOCKS=0 ;;
    --list) LIST=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *[!0-9]*|'') echo "unknown argument: $arg (MODE must be a number)" >&2; exit 2 ;;
    *) MODE="$arg" ;;
  esac
done

model=""
[ -r /proc/device-tree/model ] && model=$(tr -d '\0' < /proc/device-tree/model)
if [ ! -e /etc/nv_tegra_release ] && [[ "$model" != *Jetson* ]]; then
  echo "This is not a Jetson (no /etc/nv_tegra_release, device model '${model:-unknown}'): nothing to set." >&2
  echo "On a desktop GPU, fix clocks with nvidia-smi (--lock-gpu-clocks) instead." >&2
  exit 3
fi
echo "device: ${model:-Jetson}"
[ -e /etc/nv_tegra_release ] && echo "L4T: $(head -n 1 /etc/nv_tegra_release)"
command -v nvpmodel >/dev/null 2>&1 || { echo "nvpmodel not found (part of JetPack's nvidia-l4t-nvpmodel)" >&2; exit 1; }

if [ "$LIST" = 1 ]; then
  grep -E '^< *POWER_MODEL' /etc/nvpmodel.conf 2>/dev/null || echo "no /etc/nvpmodel.conf"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "nvpmodel and jetson_clocks need root: sudo $0 $*" >&2
  exit 1
fi

echo "before: $(nvpmodel -q | tr '\n' ' ')"
nvpmodel -m "$MODE"
if [ "$CLOCKS" = 1 ]; then
  jetson_clocks
  jetson_clocks --show | grep -E 'GPU|EMC|cpu0' || true
fi
echo "after:  $(nvpmodel -q | tr '\n' ' ')"
echo "set: nvpmodel -m $MODE$([ "$CLOCKS" = 1 ] && echo ', jetson_clocks (max clocks)'); undo the clocks with a reboot or 'jetson_clocks --restore' if you saved them with 'jetson_clocks --store'."
