#include "metrics/histogram.h"

#include <string.h>

/* Bucket index: values below 2^SUB_BITS map one-to-one; above, the top
 * SUB_BITS+1 significant bits select (power, sub-bucket). */
static int bucket_of(uint64_t v) {
    if (v < (1u << HISTOGRAM_SUB_BITS))
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    if (msb >= HISTOGRAM_MAX_BITS)
        return HISTOGRAM_BUCKETS - 1;
    int shift = msb - HISTOGRAM_SUB_BITS;
    int sub = (int)((v >> shift) & ((1u << HISTOGRAM_SUB_BITS) - 1));
    return ((shift + 1) << HISTOGRAM_SUB_BITS) + sub;
}

uint64_t histogram_bucket_upper(int i) {
    if (i < (1 << HISTOGRAM_SUB_BITS))
        return (uint64_t)i;
    int shift = (i >> HISTOGRAM_SUB_BITS) - 1;
    uint64_t sub = (uint64_t)(i & ((1 << HISTOGRAM_SUB_BITS) - 1));
    uint64_t base = ((uint64_t)1 << HISTOGRAM_SUB_BITS) | sub;
    return ((base + 1) << shift) - 1;
}

void histogram_reset(histogram_t *h) {
    memset(h, 0, sizeof *h);
}

void histogram_record(histogram_t *h, uint64_t value) {
    /* Relaxed: these are independent counters; no reader infers anything
     * about other memory from them. */
    atomic_fetch_add_explicit(&h->buckets[bucket_of(value)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, value, memory_order_relaxed);
    uint64_t seen = atomic_load_explicit(&h->max, memory_order_relaxed);
    while (value > seen && !atomic_compare_exchange_weak_explicit(
                               &h->max, &seen, value, memory_order_relaxed, memory_order_relaxed))
        ;
}

void histogram_record_many(histogram_t *h, const uint64_t *values, size_t n) {
    if (n == 0)
        return;
    /* Relaxed, as in histogram_record(). */
    uint64_t sum = 0, max = 0;
    /* Values at hand are often alike (one batch's latencies): one increment
     * per run of values in the same bucket. */
    int run_bucket = bucket_of(values[0]);
    uint64_t run = 0;
    for (size_t i = 0; i < n; i++) {
        int b = bucket_of(values[i]);
        if (b != run_bucket) {
            atomic_fetch_add_explicit(&h->buckets[run_bucket], run, memory_order_relaxed);
            run_bucket = b;
            run = 0;
        }
        run++;
        sum += values[i];
        if (values[i] > max)
            max = values[i];
    }
    atomic_fetch_add_explicit(&h->buckets[run_bucket], run, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, sum, memory_order_relaxed);
    uint64_t seen = atomic_load_explicit(&h->max, memory_order_relaxed);
    while (max > seen && !atomic_compare_exchange_weak_explicit(
                             &h->max, &seen, max, memory_order_relaxed, memory_order_relaxed))
        ;
}

void histogram_merge(histogram_t *into, const histogram_t *from) {
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
        uint64_t n = atomic_load_explicit(&from->buckets[i], memory_order_relaxed);
        if (n)
            atomic_fetch_add_explicit(&into->buckets[i], n, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&into->count, histogram_count(from), memory_order_relaxed);
    atomic_fetch_add_explicit(&into->sum, atomic_load_explicit(&from->sum, memory_order_relaxed),
                              memory_order_relaxed);
    uint64_t m = histogram_max(from);
    uint64_t seen = atomic_load_explicit(&into->max, memory_order_relaxed);
    while (m > seen && !atomic_compare_exchange_weak_explicit(
                           &into->max, &seen, m, memory_order_relaxed, memory_order_relaxed))
        ;
}

uint64_t histogram_count(const histogram_t *h) {
    return atomic_load_explicit(&h->count, memory_order_relaxed);
}

uint64_t histogram_max(const histogram_t *h) {
    return atomic_load_explicit(&h->max, memory_order_relaxed);
}

double histogram_mean(const histogram_t *h) {
    uint64_t n = histogram_count(h);
    return n ? (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / (double)n : 0.0;
}

uint64_t histogram_percentile(const histogram_t *h, double p) {
    uint64_t total = 0;
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
        total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    if (total == 0)
        return 0;
    if (p < 0)
        p = 0;
    if (p > 100)
        p = 100;
    /* The rank of the observation at percentile p, 1-based. */
    uint64_t rank = (uint64_t)((p / 100.0) * (double)total + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    uint64_t max = histogram_max(h);
    for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (seen >= rank) {
            /* The last bucket also holds everything above the range. */
            uint64_t upper = i == HISTOGRAM_BUCKETS - 1 ? max : histogram_bucket_upper(i);
            return upper < max ? upper : max;
        }
    }
    return max;
}
