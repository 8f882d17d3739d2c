/* Shared parts of the benchmark programs: see bench_support.h. */
#define _GNU_SOURCE /* program_invocation_short_name */
#include "support/bench_support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness/bench.h"

int64_t bench_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

_Noreturn void bench_die(const char *what) {
    fprintf(stderr, "%s: %s\n", program_invocation_short_name, what);
    exit(1);
}

rd_kafka_t *bench_raw_producer(const char *bootstraps) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err) ||
        rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err))
        bench_die(err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        bench_die(err);
    return rk;
}

void bench_produce_spread(const char *bootstraps, const char *topic, int partitions, long count,
                          int keys) {
    char err[512];
    if (bench_produce(bootstraps, NULL, 0, topic, partitions, keys, 32, count, 0, err,
                      sizeof err) != count)
        bench_die(err);
}
