/* src/common — small helpers shared by every room. */
#ifndef KAFFE_SRC_COMMON_ERRSTR_H
#define KAFFE_SRC_COMMON_ERRSTR_H

#include <stddef.h>

/* Formats a message into a caller's errstr buffer, snprintf-style. errstr may
 * be NULL or errstr_size 0 (the message is then dropped). Always
 * NUL-terminates a non-empty buffer. */
void errstr_printf(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
