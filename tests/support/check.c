#include "support/check.h"

#include <time.h>

atomic_int check_failures_in_case;
int check_cases_passed, check_cases_failed;

void check_run_case(const char *name, void (*fn)(void)) {
    atomic_store(&check_failures_in_case, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fn();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (atomic_load(&check_failures_in_case) == 0) {
        check_cases_passed++;
        printf("[PASS] %s (%.2fs)\n", name, seconds);
    } else {
        check_cases_failed++;
        printf("[FAIL] %s (%.2fs)\n", name, seconds);
    }
    fflush(stdout);
}

int check_summary(const char *program) {
    printf("%s: %d passed, %d failed\n", program, check_cases_passed, check_cases_failed);
    return check_cases_failed == 0 && check_cases_passed > 0 ? 0 : 1;
}
