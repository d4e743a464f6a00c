# ctest driver: install libedgesr into a scratch prefix, then build and run a consumer project
# that finds it by version (find_package(edgesr <MAJOR.MINOR>), target edgesr::edgesr), and a
# program built with pkg-config's flags. Args: -DBUILD=<libedgesr build dir> -DSRC=<tests dir>
# -DWORK=<scratch dir> -DMODEL=<y model> -DVERSION=<MAJOR.MINOR> -DABI=<ABI> -DCC=<C compiler>
# -DLIBDIR=<lib dir under the prefix>
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (exit ${rc}): ${ARGN}")
  endif()
endfunction()
run("${CMAKE_COMMAND}" --install "${BUILD}" --prefix "${WORK}/prefix")
run("${CMAKE_COMMAND}" -S "${SRC}/consumer" -B "${WORK}/build" -DCMAKE_PREFIX_PATH=${WORK}/prefix
    -DEDGESR_WANT_VERSION=${VERSION} -DCMAKE_BUILD_TYPE=Release)
run("${CMAKE_COMMAND}" --build "${WORK}/build")
run("${WORK}/build/consumer" "${MODEL}")
# pkg-config, kept for Makefile/meson users: cc app.c $(pkg-config --cflags --libs edgesr)
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  set(ENV{PKG_CONFIG_PATH} "${WORK}/prefix/${LIBDIR}/pkgconfig")
  execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs "edgesr >= ${VERSION}"
                  OUTPUT_VARIABLE flags RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config does not find edgesr >= ${VERSION} in ${WORK}/prefix")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run("${CC}" "${SRC}/consumer/main.c" -DEXPECTED_ABI=${ABI} ${flags} -o "${WORK}/consumer_pc")
  run("${WORK}/consumer_pc" "${MODEL}")
else()
  message(STATUS "pkg-config not found: the pkg-config consumer is not built")
endif()
