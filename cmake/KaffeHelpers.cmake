# Helpers for kaffe's build: dependency checks, sanitizers, test registration.

# kaffe_require_pkg(PREFIX module debian-package): an imported target
# PkgConfig::PREFIX, or a clear error naming the Debian package to install.
function(kaffe_require_pkg prefix module debian_package)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR
      "kaffe needs ${module} (pkg-config). On Debian: apt-get install ${debian_package} "
      "(or run scripts/setup.sh).")
  endif()
endfunction()

# kaffe_enable_sanitizers("address,undefined" | "thread" | ""): global flags.
function(kaffe_enable_sanitizers list)
  if(list STREQUAL "")
    return()
  endif()
  string(REPLACE "," ";" sanitizers "${list}")
  foreach(s IN LISTS sanitizers)
    if(NOT s MATCHES "^(address|undefined|thread)$")
      message(FATAL_ERROR "KAFFE_SANITIZE: unknown sanitizer '${s}' (address, undefined, thread)")
    endif()
  endforeach()
  if("thread" IN_LIST sanitizers AND "address" IN_LIST sanitizers)
    message(FATAL_ERROR "KAFFE_SANITIZE: thread cannot be combined with address")
  endif()
  string(REPLACE ";" "," joined "${sanitizers}")
  set(flags -fsanitize=${joined} -fno-omit-frame-pointer -g)
  if("undefined" IN_LIST sanitizers)
    list(APPEND flags -fno-sanitize-recover=undefined)
  endif()
  add_compile_options(${flags})
  add_link_options(-fsanitize=${joined})
endfunction()

# kaffe_enable_fuzzing(): coverage instrumentation for libFuzzer on every
# object (library included); fuzz/ links its targets with -fsanitize=fuzzer.
# clang only: libFuzzer ships with clang (Debian: libclang-rt-14-dev).
function(kaffe_enable_fuzzing)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "KAFFE_BUILD_FUZZ needs clang (libFuzzer), not ${CMAKE_C_COMPILER_ID}: "
      "configure a separate build directory with CC=clang, or run scripts/fuzz.sh")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
  add_link_options(-fsanitize=fuzzer-no-link)
endfunction()

# kaffe_add_test(NAME source LABEL label TIMEOUT seconds): a Criterion binary
# registered with CTest under a label (unit, integration, broker).
function(kaffe_add_test name source)
  cmake_parse_arguments(T "" "LABEL;TIMEOUT" "" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${name} ${source})
  target_link_libraries(${name} PRIVATE kaffe_test_support PkgConfig::CRITERION)
  # Criterion forks one process per test; -j1 keeps races in one process
  # deterministic to read and leaves the second core to the brokers.
  add_test(NAME ${name} COMMAND ${name} --jobs 1 --timeout ${T_TIMEOUT})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABEL}" TIMEOUT ${T_TIMEOUT})
endfunction()
