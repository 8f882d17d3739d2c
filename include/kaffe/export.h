/** @file
 * kaffe — export macro for the public API.
 *
 * The library is built with hidden symbol visibility; only declarations marked
 * KAFFE_API are exported from the shared library. */
#ifndef KAFFE_EXPORT_H
#define KAFFE_EXPORT_H

/** Marks a declaration as part of kaffe's API: exported from the shared
 * library (default visibility) while kaffe is built, empty otherwise. */
#if defined(KAFFE_BUILDING) && defined(__GNUC__)
#define KAFFE_API __attribute__((visibility("default")))
#else
#define KAFFE_API
#endif

#endif /* KAFFE_EXPORT_H */
