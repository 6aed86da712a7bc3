# ctest cpu_level_symbols_<level>: every symbol a kernel level's objects export must be that level's own
# (in namespace tessera::cpu::<level>). An exported std:: or xsimd:: instantiation compiled with, say,
# AVX-512 flags could be the copy the linker keeps for every caller, including the portable code on a CPU
# without AVX-512 (CMakeLists.txt builds these objects with -fno-weak to prevent exactly that).
# Arguments: -DNM=... -DLEVEL=avx2 -DOBJECTS=a.o|b.o|...
string(REPLACE "|" ";" objects "${OBJECTS}")
set(bad "")
set(own 0)
foreach(obj ${objects})
  execute_process(COMMAND ${NM} --defined-only -C ${obj} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nm failed on ${obj}")
  endif()
  string(REPLACE "\n" ";" lines "${out}")
  foreach(line ${lines})
    # "<address> <type> <name>": upper-case types and 'u' (unique) are visible to the linker. Common
    # symbols (C) are left out: uninitialised data holds no instructions (std::ranges' empty function
    # objects, OpenMP's lock for a named critical section, which must be one lock everywhere anyway).
    if(line MATCHES "^[0-9a-fA-F]+ ([ABDGRSTUVWu]) (.*)$")
      set(name "${CMAKE_MATCH_2}")
      if(name MATCHES "tessera::cpu::${LEVEL}::")
        math(EXPR own "${own} + 1")
      elseif(NOT name MATCHES "^DW\\.ref\\.")  # the C++ personality routine's address, the same everywhere
        string(APPEND bad "\n  ${obj}: ${line}")
      endif()
    endif()
  endforeach()
endforeach()
if(own EQUAL 0)
  message(FATAL_ERROR "level ${LEVEL}: no tessera::cpu::${LEVEL}:: symbol found in its objects (wrong objects?)")
endif()
if(bad)
  message(FATAL_ERROR "level ${LEVEL}: symbols outside tessera::cpu::${LEVEL} are exported:${bad}")
endif()
message(STATUS "level ${LEVEL}: ${own} exported symbols, all in tessera::cpu::${LEVEL}")
