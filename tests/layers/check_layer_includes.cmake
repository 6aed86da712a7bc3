# The layer arrows hold in the build (CMakeLists.txt, tessera_layer_view): for each layer's target, a header
# it may include is found with that target's include path (preprocessed), and one against the arrows is not: the
# compiler must fail saying the header is not found. Run by ctest (test layer_includes) as
#   cmake -DCXX=<compiler> -DINC_<target>=<dir|dir|...> ... -DPROBES=<dir> -P check_layer_includes.cmake
# Each case: target, header, and whether it must compile (ok) or fail (denied).
set(cases
  "tessera_core       core/ops.h                  ok"
  "tessera_core       models/model.h              denied"
  "tessera_core       backends/registry.h         denied"
  "tessera_backends   backends/registry.h         ok"
  "tessera_backends   models/model.h              denied"
  "tessera_cpu_portable backends/cpu/cpu_kernels.h ok"
  "tessera_cpu_portable models/session.h          denied"
  "tessera_models     models/session.h            ok"
  "tessera_models     tessera.h                   ok"
  "tessera_models     backends/cpu/cpu_kernels.h  denied"
  "tessera_models     tools/args.h                denied"
  "tessera_dev        models/make_model.h         ok"
  "tessera_dev        models/session.h            denied"
  "tessera_file_tools core/gguf.h                 ok"
  "tessera_file_tools models/make_model.h         ok"
  "tessera_file_tools backends/cpu/attention_plan.h denied"
  "tessera_file_tools models/session.h            denied"
  "tessera_cli        tessera.h                   ok"
  "tessera_cli        tools/args.h                ok"
  "tessera_cli        core/ops.h                  denied"
  "tessera_cli        backends/cpu/attention_plan.h denied")

file(MAKE_DIRECTORY ${PROBES})
set(failures 0)
foreach(c ${cases})
  string(REGEX REPLACE " +" ";" c "${c}")
  list(GET c 0 target)
  list(GET c 1 header)
  list(GET c 2 expect)
  if(NOT DEFINED INC_${target})
    message(SEND_ERROR "no include path given for ${target}")
    math(EXPR failures "${failures} + 1")
    continue()
  endif()
  string(REPLACE "|" ";" dirs "${INC_${target}}")
  set(flags "")
  foreach(d ${dirs})
    list(APPEND flags "-I${d}")
  endforeach()
  string(MAKE_C_IDENTIFIER "${target}_${header}" probe)
  file(WRITE ${PROBES}/${probe}.cpp "#include \"${header}\"\n")
  execute_process(COMMAND ${CXX} -std=c++20 -E -o ${PROBES}/${probe}.ii ${flags} ${PROBES}/${probe}.cpp
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(expect STREQUAL "ok" AND NOT rc EQUAL 0)
    message(SEND_ERROR "${target} may include ${header}, but it does not compile:\n${out}")
    math(EXPR failures "${failures} + 1")
  elseif(expect STREQUAL "denied" AND (rc EQUAL 0 OR NOT out MATCHES "${header}: No such file"))
    message(SEND_ERROR "${target} must not see ${header} (against the layer arrows), but the compiler "
                       "did not refuse it as not found (exit ${rc}):\n${out}")
    math(EXPR failures "${failures} + 1")
  else()
    message(STATUS "${target}: ${header} ${expect}")
  endif()
endforeach()
if(failures GREATER 0)
  message(FATAL_ERROR "${failures} layer include case(s) failed")
endif()
