#!/usr/bin/env bash
# Fetch ONNX Runtime's C headers without touching the system.
#
# Debian 12 does not package ONNX Runtime; Debian 13 (trixie) does (libonnxruntime-dev). This
# downloads that one .deb with apt, using a private sources list, package lists and cache under
# $WORK (no change to /etc/apt or /var/lib/apt), and unpacks it with dpkg -x into
# deploy/runtime/third_party/ort/. Only the headers are used: the library linked is the
# libonnxruntime.so.1.* shipped in the onnxruntime Python wheel (a newer runtime serves the
# older C API version the headers ask for).
#
# Usage: fetch_ort_headers.sh [DEST]   (default: deploy/runtime/third_party/ort)
# Env:   EDGESR_ORT_DEB=/path/to/libonnxruntime-dev_*.deb  use a local .deb instead of apt
#        EDGESR_ORT_SUITE=trixie                             the Debian suite to fetch from
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${1:-$HERE/../third_party/ort}"
SUITE="${EDGESR_ORT_SUITE:-trixie}"
HEADER="$DEST/usr/include/onnxruntime/onnxruntime_c_api.h"

if [ -f "$HEADER" ]; then
  echo "ONNX Runtime headers already in $DEST ($(grep -m1 -E '^#define ORT_API_VERSION' "$HEADER"))"
  exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/edgesr-ort-apt.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

deb="${EDGESR_ORT_DEB:-}"
if [ -z "$deb" ]; then
  mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/dl"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main" \
    >"$WORK/sources.list"
  APT_OPTS=(
    -o "Dir::Etc::SourceList=$WORK/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$WORK/lists"
    -o "Dir::Cache=$WORK/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
  )
  echo "Fetching libonnxruntime-dev from Debian $SUITE into a private apt state ($WORK)"
  apt-get -qq "${APT_OPTS[@]}" update
  (cd "$WORK/dl" && apt-get -qq "${APT_OPTS[@]}" download libonnxruntime-dev)
  deb="$(ls "$WORK"/dl/libonnxruntime-dev_*.deb)"
fi

mkdir -p "$DEST"
dpkg -x "$deb" "$DEST"
# The .deb's libonnxruntime.so is a dangling link to the runtime package, which is not fetched.
find "$DEST" -name 'libonnxruntime.so*' -type l -delete
basename "$deb" >"$DEST/SOURCE_DEB"
echo "Unpacked $(basename "$deb") into $DEST ($(grep -m1 -E '^#define ORT_API_VERSION' "$HEADER"))"
