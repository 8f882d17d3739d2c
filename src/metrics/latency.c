/* From a log-linear histogram to the exported 1-2-5 latency buckets. */
#include <string.h>

#include "metrics/stats_export.h"

/* 1, 2, 5 x 10^k ns for k = 3..9, then 10 s, then +Inf. */
static void fill_bounds(uint64_t *le) {
    size_t n = 0;
    uint64_t decade = 1000;
    for (int k = 3; k <= 9; k++, decade *= 10) {
        le[n++] = decade;
        le[n++] = 2 * decade;
        le[n++] = 5 * decade;
    }
    le[n++] = UINT64_C(10000000000);
    le[n++] = UINT64_MAX;
}

void metrics_latency_from_histogram(const histogram_t *h, kaffe_latency_stats_t *out) {
    memset(out, 0, sizeof *out);
    fill_bounds(out->bucket_le_ns);
    uint64_t per[KAFFE_STATS_LATENCY_BUCKETS] = {0};
    size_t b = 0;
    uint64_t total = 0;
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
        /* relaxed: independent counters (see histogram.h). */
        uint64_t n = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (!n)
            continue;
        uint64_t upper = histogram_bucket_upper(i);
        while (b < KAFFE_STATS_LATENCY_BUCKETS - 1 && upper > out->bucket_le_ns[b])
            b++;
        per[b] += n;
        total += n;
    }
    uint64_t running = 0;
    for (size_t i = 0; i < KAFFE_STATS_LATENCY_BUCKETS; i++) {
        running += per[i];
        out->bucket_count[i] = running;
    }
    out->count = total;
    out->sum_ns = atomic_load_explicit(&h->sum, memory_order_relaxed);
    out->max_ns = histogram_max(h);
    out->p50_ns = histogram_percentile(h, 50);
    out->p99_ns = histogram_percentile(h, 99);
    out->p999_ns = histogram_percentile(h, 99.9);
}
