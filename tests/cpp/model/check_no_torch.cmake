# cmake -DPROGRAM=<executable> -P check_no_torch.cmake: fails if the
# program's dynamic section needs a torch, c10 or CUDA library (the
# torch-free config library must not pull one in), or cannot be read.
execute_process(COMMAND readelf -d ${PROGRAM} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readelf -d ${PROGRAM} failed (${rc}): ${err}")
endif()
string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*" needed "${out}")
if(NOT needed)
  message(FATAL_ERROR "${PROGRAM} has no NEEDED entries: not the dynamically linked test program expected")
endif()
foreach(line ${needed})
  if(line MATCHES "torch|c10|cuda|cudart")
    message(FATAL_ERROR "${PROGRAM} needs a torch/CUDA library: ${line}")
  endif()
endforeach()
list(LENGTH needed n)
message(STATUS "${PROGRAM}: ${n} NEEDED libraries, none of torch, c10 or CUDA")
