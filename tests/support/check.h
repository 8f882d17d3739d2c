/* tests/support — assertions for the race programs in tests/race.
 *
 * Race tests are plain programs, not Criterion binaries, because Criterion
 * cannot start under ThreadSanitizer (its inheritable arena needs an address
 * range TSan reserves: Criterion issue #274), and these are exactly the tests
 * TSan must see. Each program runs its cases with RUN_CASE and ends with
 * `return check_summary("name");`, which prints "name: N passed, N failed"
 * and returns the exit status. */
#ifndef KAFFE_TESTS_SUPPORT_CHECK_H
#define KAFFE_TESTS_SUPPORT_CHECK_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

extern atomic_int check_failures_in_case;
extern int check_cases_passed, check_cases_failed;

/* Records a failure (thread-safe) and prints where and why. Does not abort:
 * the case finishes and is counted failed. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            atomic_fetch_add(&check_failures_in_case, 1);                                          \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* Runs one case and counts it passed or failed. */
#define RUN_CASE(fn) check_run_case(#fn, fn)

void check_run_case(const char *name, void (*fn)(void));
int check_summary(const char *program);

#endif
