# Builds and runs tests/build/consumer against tinfer, either through add_subdirectory or
# through find_package(tinfer CONFIG) from a fresh install prefix. Run with cmake -P.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

set(consumer_src "${TINFER_SOURCE_DIR}/tests/build/consumer")
if(MODE STREQUAL "installed")
  set(prefix "${WORK_DIR}/prefix")
  # Configure tinfer alone (no tests/examples/benches) and install it into the prefix.
  run_step(${CMAKE_COMMAND} -S "${TINFER_SOURCE_DIR}" -B "${WORK_DIR}/tinfer-build"
           -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
           -DTINFER_BUILD_TESTS=OFF -DTINFER_BUILD_BENCH=OFF -DTINFER_BUILD_EXAMPLES=OFF
           -DCMAKE_INSTALL_PREFIX=${prefix})
  run_step(${CMAKE_COMMAND} --install "${WORK_DIR}/tinfer-build")
  run_step(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/build" -DCMAKE_BUILD_TYPE=Release
           -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
           -DTINFER_CONSUMER_MODE=installed "-DCMAKE_PREFIX_PATH=${prefix}")
else()
  run_step(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/build" -DCMAKE_BUILD_TYPE=Release
           -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
           -DTINFER_CONSUMER_MODE=subdirectory "-DTINFER_SOURCE_DIR=${TINFER_SOURCE_DIR}")
endif()
run_step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run_step("${WORK_DIR}/build/consumer")
