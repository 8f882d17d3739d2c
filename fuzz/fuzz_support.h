/* fuzz/ — helpers shared by the libFuzzer targets (harness code only; nothing
 * here is part of kaffe).
 *
 * A target is one LLVMFuzzerTestOneInput per file. It checks properties with
 * FUZZ_CHECK, which aborts (libFuzzer reports it as a crash and writes the
 * input to crash-<sha1>). Single-threaded: libFuzzer calls the target from
 * one thread. */
#ifndef KAFFE_FUZZ_SUPPORT_H
#define KAFFE_FUZZ_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A malloc'ed, NUL-terminated copy of data (embedded NULs end the string
 * early, as they would for any C caller). Never NULL. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) {
        abort();
    }
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* True when a[0..n) contains the NUL-terminated needle. */
static inline bool fuzz_contains(const char *haystack, const char *needle) {
    return needle[0] != '\0' && strstr(haystack, needle) != NULL;
}

/* errstr buffers: a message (written on failure) must be NUL-terminated
 * inside errstr_size, and nothing past errstr_size may ever be written. The canary bytes after the
 * buffer check the latter (ASan would only see writes past the whole array). */
#define FUZZ_ERRSTR_CANARY 0x5a

static inline void fuzz_errstr_prepare(char *buf, size_t total) {
    memset(buf, FUZZ_ERRSTR_CANARY, total);
}

static inline void fuzz_errstr_check(const char *buf, size_t errstr_size, size_t total,
                                     bool has_message) {
    if (has_message && errstr_size > 0) {
        FUZZ_CHECK(memchr(buf, '\0', errstr_size) != NULL);
    }
    for (size_t i = errstr_size; i < total; i++) {
        FUZZ_CHECK((unsigned char)buf[i] == FUZZ_ERRSTR_CANARY);
    }
}

#endif
