/* The version comes from CMake's project(VERSION ...): one number, one place. */
#include <kaffe/version.h>

KAFFE_API int kaffe_version(void) {
    return KAFFE_VERSION_MAJOR * 10000 + KAFFE_VERSION_MINOR * 100 + KAFFE_VERSION_PATCH;
}

KAFFE_API const char *kaffe_version_str(void) {
    return KAFFE_VERSION_STRING;
}
