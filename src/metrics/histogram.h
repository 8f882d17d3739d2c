/* src/metrics — a log-linear latency histogram.
 *
 * Values (e.g. nanoseconds) fall into buckets of 1/16th of a power of two,
 * so a percentile read back is within about 6% of the true value. Recording
 * is one relaxed atomic increment: any number of threads may record at once,
 * and readers may read concurrently (they see a slightly stale, never torn,
 * count per bucket). Reset only while nobody records.
 *
 * Memory: HISTOGRAM_BUCKETS 8-byte counters (about 5 KiB). */
#ifndef KAFFE_SRC_METRICS_HISTOGRAM_H
#define KAFFE_SRC_METRICS_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_SUB_BITS 4  /* 16 sub-buckets per power of two */
#define HISTOGRAM_MAX_BITS 44 /* values up to 2^44 (about 4.9 hours in ns) */
#define HISTOGRAM_BUCKETS ((HISTOGRAM_MAX_BITS - HISTOGRAM_SUB_BITS + 1) << HISTOGRAM_SUB_BITS)

typedef struct histogram {
    _Atomic uint64_t buckets[HISTOGRAM_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
    _Atomic uint64_t max;
} histogram_t;

/* Zeroes h. Not concurrent with histogram_record. */
void histogram_reset(histogram_t *h);

/* Records one value; values above the range count in the last bucket.
 * Thread-safe, lock-free (relaxed atomics: counts only, no ordering). */
void histogram_record(histogram_t *h, uint64_t value);

/* Records values[0..n) as n histogram_record() calls would, with one update
 * of count, sum and max for all of them (for a thread that has a batch of
 * values at hand). Same thread-safety as histogram_record(). */
void histogram_record_many(histogram_t *h, const uint64_t *values, size_t n);

/* Adds every count of from into into. Not atomic as a whole. */
void histogram_merge(histogram_t *into, const histogram_t *from);

uint64_t histogram_count(const histogram_t *h);
uint64_t histogram_max(const histogram_t *h);
double histogram_mean(const histogram_t *h);

/* The value at percentile p (0..100): the upper bound of the bucket holding
 * the p-th percentile observation, capped at the maximum recorded. 0 when
 * empty. */
uint64_t histogram_percentile(const histogram_t *h, double p);

/* The upper bound (inclusive) of bucket i, for exporting (e.g. Prometheus). */
uint64_t histogram_bucket_upper(int i);

#endif
