#!/usr/bin/env bash
# Build libedgesr and run its C tests: fetch ONNX Runtime's headers if needed, configure,
# build, ctest. Usable by CI from the repo root: bash deploy/runtime/build.sh
#
# Options (environment):
#   BUILD_DIR=...        build folder (default deploy/runtime/build, or build-asan with SANITIZE=1)
#   PYTHON=...           Python with onnx + the onnxruntime wheel (default: python3 on PATH,
#                        i.e. the active venv); its wheel's libonnxruntime.so.1.* is linked
#   SANITIZE=1           ASan + UBSan build (-DEDGESR_SANITIZE=ON) running the same ctest
#   TSAN=1               ThreadSanitizer build (-DEDGESR_TSAN=ON, build-tsan) running the same ctest
#   MEMCHECK=1           also run the valgrind memcheck tests (ctest -L memcheck)
#   ONNXRUNTIME_ROOT=... link an installed ONNX Runtime instead (e.g. on Jetson); no fetch
#   CMAKE_ARGS="..."     extra cmake arguments (e.g. -DEDGESR_WITH_TENSORRT=ON)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$(command -v python3)}"
SAN=OFF
TSAN_OPT=OFF
if [ "${SANITIZE:-0}" = 1 ] && [ "${TSAN:-0}" = 1 ]; then
  echo "SANITIZE=1 and TSAN=1 cannot be combined (ASan and TSan exclude each other)" >&2
  exit 2
elif [ "${SANITIZE:-0}" = 1 ]; then
  BUILD_DIR="${BUILD_DIR:-$HERE/build-asan}"
  SAN=ON
elif [ "${TSAN:-0}" = 1 ]; then
  BUILD_DIR="${BUILD_DIR:-$HERE/build-tsan}"
  TSAN_OPT=ON
else
  BUILD_DIR="${BUILD_DIR:-$HERE/build}"
fi
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

args=(-DEDGESR_PYTHON="$PYTHON" -DEDGESR_SANITIZE="$SAN" -DEDGESR_TSAN="$TSAN_OPT"
  -DCMAKE_BUILD_TYPE=Release)
if [ -n "${ONNXRUNTIME_ROOT:-}" ]; then
  args+=(-DONNXRUNTIME_ROOT="$ONNXRUNTIME_ROOT")
else
  "$HERE/scripts/fetch_ort_headers.sh"
fi
[ "${MEMCHECK:-0}" = 1 ] && args+=(-DEDGESR_MEMCHECK=ON)
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
# A cache made with another generator cannot be reused: start that build folder afresh.
if [ -f "$BUILD_DIR/CMakeCache.txt" ] && [ ${#generator[@]} -gt 0 ] &&
  ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD_DIR/CMakeCache.txt"; then
  rm -rf "$BUILD_DIR"
fi

# shellcheck disable=SC2086
cmake -S "$HERE" -B "$BUILD_DIR" "${generator[@]}" "${args[@]}" ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -LE memcheck -j "$JOBS"
if [ "${MEMCHECK:-0}" = 1 ]; then
  ctest --test-dir "$BUILD_DIR" --output-on-failure -L memcheck
fi
