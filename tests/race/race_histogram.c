/* Many threads record into one histogram while another reads percentiles:
 * no count is lost and the reader never sees more than was recorded. */
#include <pthread.h>

#include "metrics/histogram.h"
#include "support/check.h"

#define THREADS 4
#define PER_THREAD 200000

static histogram_t h;
static atomic_int writers_done;

static void *writer(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < PER_THREAD; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        histogram_record(&h, (seed >> 33) % 1000000);
    }
    atomic_fetch_add(&writers_done, 1);
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    while (atomic_load(&writers_done) < THREADS) {
        uint64_t n = histogram_count(&h);
        CHECK(n <= (uint64_t)THREADS * PER_THREAD, "count %llu", (unsigned long long)n);
        uint64_t p99 = histogram_percentile(&h, 99);
        CHECK(p99 < 1100000, "p99 %llu out of range", (unsigned long long)p99);
    }
    return NULL;
}

static void concurrent_records_are_all_counted(void) {
    histogram_reset(&h);
    pthread_t w[THREADS], r;
    pthread_create(&r, NULL, reader, NULL);
    for (uintptr_t i = 0; i < THREADS; i++)
        pthread_create(&w[i], NULL, writer, (void *)(i + 1));
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i], NULL);
    pthread_join(r, NULL);
    CHECK(histogram_count(&h) == (uint64_t)THREADS * PER_THREAD, "count %llu",
          (unsigned long long)histogram_count(&h));
    uint64_t total = 0;
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
        total += atomic_load(&h.buckets[i]);
    CHECK(total == (uint64_t)THREADS * PER_THREAD, "bucket total %llu", (unsigned long long)total);
}

int main(void) {
    RUN_CASE(concurrent_records_are_all_counted);
    return check_summary("race_histogram");
}
