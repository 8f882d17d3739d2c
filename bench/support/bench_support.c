/* Shared parts of the benchmark programs: see bench_support.h. */
#define _GNU_SOURCE /* program_invocation_short_name */
#include "support/bench_support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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
    rd_kafka_t *rk = bench_raw_producer(bootstraps);
    char value[32];
    memset(value, 'v', sizeof value);
    for (long i = 0; i < count; i++) {
        char key[32];
        int key_len = keys > 0 ? snprintf(key, sizeof key, "key-%ld", i % keys) : 0;
        const void *key_ptr = keys > 0 ? key : NULL;
        rd_kafka_resp_err_t e;
        do {
            e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION((int32_t)(i % partitions)),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key_ptr, (size_t)key_len),
                RD_KAFKA_V_VALUE(value, sizeof value), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 10);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (e)
            bench_die(rd_kafka_err2str(e));
    }
    rd_kafka_flush(rk, 60000);
    if (rd_kafka_outq_len(rk) != 0)
        bench_die("produce: not everything delivered");
    rd_kafka_destroy(rk);
}
