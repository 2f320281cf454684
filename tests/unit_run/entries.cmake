# tests/unit_run/entries.cmake: included by CTest's file for tests/ (unit_include.cmake, made by
# tests/CMakeLists.txt) when the unit_tests binary is newer than OUT, writes the CTest
# entries unit.<Suite>.<Name>, one per test that `unit_tests --gtest_list_tests` lists, each
# printing that test's result file from the fixture unit_run (run.py), passing only on
# "passed" and skipped on "[  SKIPPED ]" (a missing file fails: cat's error).
#   set before: BINARY (unit_tests), RESULTS (a folder), OUT (the file to write)
execute_process(COMMAND ${BINARY} --gtest_list_tests --gtest_also_run_disabled_tests
  OUTPUT_VARIABLE listing RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${BINARY} --gtest_list_tests failed (${status}):\n${listing}")
endif()
# The "# GetParam() = ..." and "# TypeParam = ..." comments go first: their text may hold the
# brackets and semicolons that split a CMake list.
string(REGEX REPLACE "  +#[^\n]*" "" listing "${listing}")
string(REPLACE ";" "\\;" listing "${listing}")
string(REPLACE "\n" ";" lines "${listing}")
set(suite "")
set(count 0)
set(script "")
foreach(line IN LISTS lines)
  if(line MATCHES "^([^ #][^ ]*)\\.$")
    set(suite "${CMAKE_MATCH_1}")
  elseif(NOT suite STREQUAL "" AND line MATCHES "^  ([^ ]+)$")
    set(name "${suite}.${CMAKE_MATCH_1}")
    string(REPLACE "/" "%" file "${name}")
    string(APPEND script "add_test([=[unit.${name}]=] /bin/cat [=[${RESULTS}/${file}.txt]=])\n"
      "set_tests_properties([=[unit.${name}]=] PROPERTIES LABELS unit FIXTURES_REQUIRED "
      "unit_run PASS_REGULAR_EXPRESSION [=[^passed in the unit run]=] "
      "SKIP_REGULAR_EXPRESSION [=[^\\[  SKIPPED \\]]=])\n")
    math(EXPR count "${count} + 1")
  endif()
endforeach()
if(count EQUAL 0)
  message(FATAL_ERROR "${BINARY} --gtest_list_tests listed no test:\n${listing}")
endif()
file(WRITE ${OUT} "${script}")
