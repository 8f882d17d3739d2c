# cmake --install: libraries, public headers, the kaffe command, kaffe.pc,
# and a CMake package (find_package(kaffe CONFIG) -> kaffe::kaffe).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KAFFE_INSTALL_TARGETS kaffe kaffe_static)
if(TARGET kaffe_cli)
  install(TARGETS kaffe_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(TARGETS ${KAFFE_INSTALL_TARGETS} EXPORT kaffeTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/kaffe" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(KAFFE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kaffe)
install(EXPORT kaffeTargets NAMESPACE kaffe:: DESTINATION ${KAFFE_CMAKE_DIR})
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/kaffeConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/kaffeConfig.cmake" INSTALL_DESTINATION ${KAFFE_CMAKE_DIR})
write_basic_package_version_file("${PROJECT_BINARY_DIR}/kaffeConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/kaffeConfig.cmake" "${PROJECT_BINARY_DIR}/kaffeConfigVersion.cmake"
  DESTINATION ${KAFFE_CMAKE_DIR})

file(RELATIVE_PATH KAFFE_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" KAFFE_PC_TO_PREFIX "${KAFFE_PC_TO_PREFIX}")
configure_file("${PROJECT_SOURCE_DIR}/cmake/kaffe.pc.in" "${PROJECT_BINARY_DIR}/kaffe.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/kaffe.pc" DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
