# ctest driver: compile the TensorRT backend (src/backend_trt.cpp) with -fsyntax-only against
# real TensorRT headers (vendored in third_party/tensorrt) and CUDA's headers, with the flags a
# TensorRT SDK tarball build uses: third-party headers as -isystem, our -Wall -Wextra -Werror.
# Prints "SKIPPED: <why>" (ctest reports the test as skipped) without a C++ compiler or CUDA's
# cuda_runtime_api.h. Args: -DSRC=<deploy/runtime> [-DCXX=<c++>] [-DCUDA_INCLUDE_DIR=<dir>]
if(NOT CXX)
  find_program(CXX NAMES c++ g++ clang++)
endif()
if(NOT CXX)
  message("SKIPPED: no C++ compiler (c++, g++ or clang++) on PATH")
  return()
endif()
if(NOT CUDA_INCLUDE_DIR)
  find_path(CUDA_INCLUDE_DIR cuda_runtime_api.h
            PATHS "$ENV{CUDA_HOME}/include" /usr/local/cuda/include /usr/include NO_DEFAULT_PATH)
endif()
if(NOT CUDA_INCLUDE_DIR)
  message("SKIPPED: CUDA's cuda_runtime_api.h not found (set CUDA_HOME or pass -DCUDA_INCLUDE_DIR)")
  return()
endif()
set(flags -std=c++17 -fsyntax-only -Wall -Wextra -Werror -DEDGESR_HAVE_TENSORRT
    -isystem "${SRC}/third_party/tensorrt/include" -isystem "${CUDA_INCLUDE_DIR}"
    -I "${SRC}/src" -I "${SRC}/include")
execute_process(COMMAND "${CXX}" ${flags} "${SRC}/src/backend_trt.cpp"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "backend_trt.cpp does not compile against TensorRT's headers:\n${out}${err}")
endif()
file(STRINGS "${SRC}/third_party/tensorrt/include/NvInferVersion.h" ver
     REGEX "define TRT_(MAJOR|MINOR|PATCH)_ENTERPRISE")
message(STATUS "backend_trt.cpp compiles (${CXX}, CUDA headers ${CUDA_INCLUDE_DIR}, ${ver})")
