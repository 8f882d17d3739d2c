/* bench/support — what the benchmark programs share: clocks, fatal errors,
 * and the raw librdkafka producer that writes their data sets. Linked into
 * every bench/bench_*.c program (bench/CMakeLists.txt). Plain functions,
 * callable from any thread. */
#ifndef KAFFE_BENCH_SUPPORT_H
#define KAFFE_BENCH_SUPPORT_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* CLOCK_MONOTONIC in seconds and in nanoseconds. */
double bench_now_seconds(void);
int64_t bench_now_ns(void);

/* Prints "<program>: <what>" to stderr and exits 1. */
_Noreturn void bench_die(const char *what);

/* A librdkafka producer on bootstraps (linger.ms=5, quiet logs) for writing
 * data sets; exits (bench_die) when it cannot be made. */
rd_kafka_t *bench_raw_producer(const char *bootstraps);

/* Writes count 32-byte values to topic, message i to partition
 * i % partitions, with keys "key-<i % keys>" (no key when keys == 0), and
 * waits until every one is delivered; exits (bench_die) on any failure. */
void bench_produce_spread(const char *bootstraps, const char *topic, int partitions, long count,
                          int keys);

#endif
