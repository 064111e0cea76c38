# Installs the semid build into a scratch prefix, then configures, builds and runs
# tests/consumer against it. Fails on the first step that fails.
file(REMOVE_RECURSE "${SEMID_WORK_DIR}")
set(prefix "${SEMID_WORK_DIR}/prefix")
set(build "${SEMID_WORK_DIR}/build")

function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run_step(${CMAKE_COMMAND} --install "${SEMID_BINARY_DIR}" --prefix "${prefix}")
run_step(${CMAKE_COMMAND} -S "${SEMID_CONSUMER_SOURCE}" -B "${build}"
         -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE})
run_step(${CMAKE_COMMAND} --build "${build}")
run_step("${build}/consumer")
message(STATUS "consumer output: ${last_output}")
