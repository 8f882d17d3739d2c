/* bench/support — what the benchmark programs share beyond the harness
 * (bench/harness) they link: fatal errors, a raw librdkafka producer, and
 * data sets written by the harness's producer (clocks: src/common/clock.h). Linked into
 * every bench/bench_*.c program (bench/CMakeLists.txt). Plain functions,
 * callable from any thread. */
#ifndef KAFFE_BENCH_SUPPORT_H
#define KAFFE_BENCH_SUPPORT_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* The CPU time of the whole process in ns (user + system, every thread: the
 * client's, librdkafka's and an embedded cluster's), which other tenants of
 * the machine disturb far less than wall time. */
int64_t bench_cpu_ns(void);

/* Prints "<program>: <what>" to stderr and exits 1. */
_Noreturn void bench_die(const char *what);

/* A librdkafka producer on bootstraps (linger.ms=5, quiet logs) for writing
 * data sets; exits (bench_die) when it cannot be made. */
rd_kafka_t *bench_raw_producer(const char *bootstraps);

/* Writes count 32-byte values to topic through the harness's one data-set
 * producer (bench_produce in harness/bench.h): message i to partition
 * i % partitions, with keys "k<i % keys>" (no key when keys == 0); waits
 * until every one is delivered; exits (bench_die) on any failure. */
void bench_produce_spread(const char *bootstraps, const char *topic, int partitions, long count,
                          int keys);

#endif
