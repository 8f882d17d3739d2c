/** @file
 * kaffe — library version. */
#ifndef KAFFE_VERSION_H
#define KAFFE_VERSION_H

#include <kaffe/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The version of the kaffe library actually linked, as MAJOR*10000 +
 * MINOR*100 + PATCH (0.1.0 is 100). Thread-safe. */
KAFFE_API int kaffe_version(void);

/** The same as "MAJOR.MINOR.PATCH". Static string, never NULL. */
KAFFE_API const char *kaffe_version_str(void);

#ifdef __cplusplus
}
#endif

#endif /* KAFFE_VERSION_H */
