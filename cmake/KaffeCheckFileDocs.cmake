# cmake -DDIR=<include/kaffe> -P KaffeCheckFileDocs.cmake
# Fails when a public header has no Doxygen @file comment: Doxygen silently
# skips the functions, types and macros of an undocumented file, so the
# undocumented-symbol warnings (the point of `apidocs`) would not fire.
file(GLOB headers "${DIR}/*.h")
set(missing "")
foreach(header IN LISTS headers)
  file(READ "${header}" text)
  string(FIND "${text}" "@file" at)
  if(at EQUAL -1)
    list(APPEND missing "${header}")
  endif()
endforeach()
if(missing)
  list(JOIN missing "\n  " listed)
  message(FATAL_ERROR "apidocs: no @file comment (Doxygen would skip these headers):\n  ${listed}")
endif()
