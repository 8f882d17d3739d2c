/* tests/support — include once (in the program's main file) in a race
 * program that runs librdkafka threads under ThreadSanitizer.
 *
 * librdkafka 2.0.2 (Debian) starts its threads with C11 thrd_create(). GCC
 * 12's and clang 14's TSan runtimes intercept pthread_create but not
 * thrd_create, so those threads run without TSan state and crash in the
 * first intercepted malloc. Under TSan this header defines thrd_create in
 * the executable on top of pthread_create (and thrd_join / thrd_detach on
 * pthread_join / pthread_detach): the dynamic linker binds librdkafka's
 * references to them and TSan sees the threads start and end. Elsewhere
 * this header is empty. */
#ifndef KAFFE_TESTS_SUPPORT_TSAN_C11_THREADS_H
#define KAFFE_TESTS_SUPPORT_TSAN_C11_THREADS_H

#include "common/tsan.h"

#ifdef KAFFE_TSAN
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

typedef struct rdkafka_tsan_start {
    thrd_start_t func;
    void *arg;
} rdkafka_tsan_start_t;

static void *rdkafka_tsan_trampoline(void *p) {
    rdkafka_tsan_start_t start = *(rdkafka_tsan_start_t *)p;
    free(p);
    return (void *)(intptr_t)start.func(start.arg);
}

__attribute__((visibility("default"))) int thrd_create(thrd_t *thr, thrd_start_t func, void *arg) {
    rdkafka_tsan_start_t *start = malloc(sizeof *start);
    if (!start)
        return thrd_nomem;
    start->func = func;
    start->arg = arg;
    int err = pthread_create((pthread_t *)thr, NULL, rdkafka_tsan_trampoline, start);
    if (err) {
        free(start);
        return err == ENOMEM || err == EAGAIN ? thrd_nomem : thrd_error;
    }
    return thrd_success;
}

/* glibc's own thrd_join/thrd_detach call pthread internals TSan does not
 * see either, so TSan would think the threads never ended. */
__attribute__((visibility("default"))) int thrd_join(thrd_t thr, int *res) {
    void *value = NULL;
    if (pthread_join((pthread_t)thr, &value) != 0)
        return thrd_error;
    if (res)
        *res = (int)(intptr_t)value;
    return thrd_success;
}

__attribute__((visibility("default"))) int thrd_detach(thrd_t thr) {
    return pthread_detach((pthread_t)thr) == 0 ? thrd_success : thrd_error;
}
#endif

#endif
