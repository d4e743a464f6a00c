# ctest driver for edgesr_upscale: PGM, PPM and raw NV12/NV21/I420 frames (written by
# make_test_models.py) through the example, one and two camera streams; checks exit codes and
# output sizes, and clean refusals (an RGB model given a PGM frame, a model without metadata).
# Args: -DEXE=edgesr_upscale -DMODELS=<model dir> -DWORK=<scratch dir>
file(MAKE_DIRECTORY "${WORK}")
function(run_case name expected_bytes)
  execute_process(COMMAND "${EXE}" ${ARGN} --frames 3 --warmup 1 --threads 1 --out "${WORK}/${name}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${name}: ${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "edgesr_upscale failed for ${name} (exit ${rc})")
  endif()
  file(SIZE "${WORK}/${name}" size)
  if(NOT size EQUAL expected_bytes)
    message(FATAL_ERROR "${name}: ${size} bytes, expected ${expected_bytes}")
  endif()
endfunction()
# 20x12 at x2 -> 40x24.  PGM header "P5\n40 24\n255\n" = 13 bytes, PPM "P6\n40 24\n255\n" = 13.
run_case(out.pgm 973 --model "${MODELS}/y_x2.onnx" --input "${MODELS}/in.pgm")
run_case(out_y.ppm 2893 --model "${MODELS}/y_x2.onnx" --input "${MODELS}/in.ppm")
run_case(out.yuv 1440 --model "${MODELS}/y_x2.onnx" --yuv "${MODELS}/in.nv12" --size 20x12)
# The same bytes read as NV21 and I420 (any 4:2:0 layout has the same size), BT.709 full range,
# and the two-stream camera loop (two threads, one shared model).
run_case(out_nv21.yuv 1440 --model "${MODELS}/y_x2.onnx" --yuv "${MODELS}/in.nv12" --size 20x12
         --format nv21 --bt709 --full-range)
run_case(out_i420.yuv 1440 --model "${MODELS}/y_x2.onnx" --yuv "${MODELS}/in.nv12" --size 20x12
         --format i420)
run_case(out_2cam.yuv 1440 --model "${MODELS}/y_x2.onnx" --yuv "${MODELS}/in.nv12" --size 20x12
         --streams 2)
file(READ "${WORK}/out.yuv" one HEX)
file(READ "${WORK}/out_2cam.yuv" two HEX)
if(NOT one STREQUAL two)
  message(FATAL_ERROR "the two-stream run wrote other pixels than the one-stream run")
endif()
# 20x12 at x3 -> 60x36 RGB: "P6\n60 36\n255\n" = 13 bytes + 6480.
run_case(out_rgb.ppm 6493 --model "${MODELS}/rgb_x3.onnx" --input "${MODELS}/in.ppm")
# 20x12 NV12 on the x3 RGB model (through RGB with the BT.709 matrix) -> 60x36: 3240 bytes.
run_case(out_rgbmodel.yuv 3240 --model "${MODELS}/rgb_x3.onnx" --yuv "${MODELS}/in.nv12"
         --size 20x12 --bt709)
# An RGB model given a PGM (one luma plane) must refuse it, not read 3 bytes per pixel.
execute_process(COMMAND "${EXE}" --model "${MODELS}/rgb_x3.onnx" --input "${MODELS}/in.pgm"
                --frames 1 --out "${WORK}/never.ppm" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "model is rgb" OR EXISTS "${WORK}/never.ppm")
  message(FATAL_ERROR "rgb model + PGM: exit ${rc}, stderr: ${err}")
endif()
# A model without metadata must fail cleanly (exit 1, a message, no crash).
execute_process(COMMAND "${EXE}" --model "${MODELS}/nometa.onnx" --synthetic 8x8
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "edgesr metadata")
  message(FATAL_ERROR "nometa.onnx: exit ${rc}, stderr: ${err}")
endif()
