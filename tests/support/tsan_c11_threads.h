/* tests/support — make librdkafka's threads visible to ThreadSanitizer.
 *
 * Debian's librdkafka is built on glibc's C11 threads (thrd_create, mtx_lock,
 * cnd_wait, ...). glibc implements them by calling its internal pthread
 * functions directly, and neither GCC 12's nor clang 14's TSan runtime
 * intercepts the C11 names. So under TSan a librdkafka thread is unknown to
 * the runtime (its first malloc crashes: SEGV in
 * SizeClassAllocator64LocalCache::Allocate), and librdkafka's locks order
 * nothing as far as TSan can tell.
 *
 * Include this header in exactly ONE translation unit of a race program that
 * runs librdkafka. Under TSan it defines the C11 thread functions librdkafka
 * imports as thin wrappers over the pthread functions TSan intercepts; the
 * executable's definitions take precedence over glibc's in symbol lookup.
 * glibc's mtx_t / cnd_t / once_flag have the layout of pthread_mutex_t /
 * pthread_cond_t / pthread_once_t, which is what the casts rely on. Without
 * TSan this header defines nothing. */
#ifndef KAFFE_TESTS_SUPPORT_TSAN_C11_THREADS_H
#define KAFFE_TESTS_SUPPORT_TSAN_C11_THREADS_H

#if defined(__SANITIZE_THREAD__)
#define KAFFE_TSAN_C11_SHIM 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KAFFE_TSAN_C11_SHIM 1
#endif
#endif

#ifdef KAFFE_TSAN_C11_SHIM
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

/* Exported from the executable (the build's default visibility is hidden),
 * so that librdkafka's references bind here. */
#define KAFFE_TSAN_C11_EXPORT __attribute__((visibility("default")))

_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t is a pthread_mutex_t");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t is a pthread_cond_t");
_Static_assert(sizeof(once_flag) == sizeof(pthread_once_t), "once_flag is a pthread_once_t");

static int kaffe_tsan_c11_status(int rc) {
    return rc == 0           ? thrd_success
           : rc == ETIMEDOUT ? thrd_timedout
           : rc == ENOMEM    ? thrd_nomem
           : rc == EBUSY     ? thrd_busy
                             : thrd_error;
}

typedef struct kaffe_tsan_c11_start {
    thrd_start_t func;
    void *arg;
} kaffe_tsan_c11_start_t;

static void *kaffe_tsan_c11_trampoline(void *arg) {
    kaffe_tsan_c11_start_t start = *(kaffe_tsan_c11_start_t *)arg;
    free(arg);
    /* glibc's thrd_join reads the int back from the pointer-sized result. */
    return (void *)(intptr_t)start.func(start.arg);
}

KAFFE_TSAN_C11_EXPORT int thrd_create(thrd_t *thr, thrd_start_t func, void *arg) {
    kaffe_tsan_c11_start_t *start = malloc(sizeof *start);
    if (!start)
        return thrd_nomem;
    start->func = func;
    start->arg = arg;
    int rc = pthread_create(thr, NULL, kaffe_tsan_c11_trampoline, start);
    if (rc != 0)
        free(start);
    return kaffe_tsan_c11_status(rc);
}

KAFFE_TSAN_C11_EXPORT int thrd_join(thrd_t thr, int *res) {
    void *result = NULL;
    int rc = pthread_join(thr, &result);
    if (rc == 0 && res)
        *res = (int)(intptr_t)result;
    return kaffe_tsan_c11_status(rc);
}

KAFFE_TSAN_C11_EXPORT int mtx_init(mtx_t *m, int type) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init((pthread_mutex_t *)m, &attr);
    pthread_mutexattr_destroy(&attr);
    return kaffe_tsan_c11_status(rc);
}

KAFFE_TSAN_C11_EXPORT int mtx_lock(mtx_t *m) {
    return kaffe_tsan_c11_status(pthread_mutex_lock((pthread_mutex_t *)m));
}

KAFFE_TSAN_C11_EXPORT int mtx_unlock(mtx_t *m) {
    return kaffe_tsan_c11_status(pthread_mutex_unlock((pthread_mutex_t *)m));
}

KAFFE_TSAN_C11_EXPORT void mtx_destroy(mtx_t *m) {
    pthread_mutex_destroy((pthread_mutex_t *)m);
}

KAFFE_TSAN_C11_EXPORT int cnd_init(cnd_t *c) {
    return kaffe_tsan_c11_status(pthread_cond_init((pthread_cond_t *)c, NULL));
}

KAFFE_TSAN_C11_EXPORT int cnd_signal(cnd_t *c) {
    return kaffe_tsan_c11_status(pthread_cond_signal((pthread_cond_t *)c));
}

KAFFE_TSAN_C11_EXPORT int cnd_broadcast(cnd_t *c) {
    return kaffe_tsan_c11_status(pthread_cond_broadcast((pthread_cond_t *)c));
}

KAFFE_TSAN_C11_EXPORT int cnd_wait(cnd_t *c, mtx_t *m) {
    return kaffe_tsan_c11_status(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

/* C11: ts is an absolute TIME_UTC time, as pthread_cond_timedwait's default. */
KAFFE_TSAN_C11_EXPORT int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m,
                                        const struct timespec *restrict ts) {
    return kaffe_tsan_c11_status(
        pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}

KAFFE_TSAN_C11_EXPORT void cnd_destroy(cnd_t *c) {
    pthread_cond_destroy((pthread_cond_t *)c);
}

KAFFE_TSAN_C11_EXPORT void call_once(once_flag *flag, void (*func)(void)) {
    pthread_once((pthread_once_t *)flag, func);
}
#endif /* KAFFE_TSAN_C11_SHIM */

#endif
