/* The scenarios of `kaffe bench`: one table, every entry run by default.
 *
 * Sizing: the whole default set must run in a few minutes on 2 cores, so
 * each scenario's message count is about 1-2 seconds of its expected rate
 * (a 1 ms handler with 1 worker handles ~1000 messages/s; 64 workers on
 * 4 partitions with key or unordered ordering ~64x that, less on 2 cores). */
#include <string.h>

#include "harness/bench.h"

#define NOOP_MESSAGES 400000L /* 16 partitions x 25k x 100 B: half the mock's retention */
#define SWEEP_PARTITIONS 4
#define SWEEP_SLEEP_US 1000

static const bench_scenario_t scenarios[] = {
    /* The baseline: what librdkafka alone does with a no-op handler. */
    {.name = "raw",
     .family = "baseline",
     .baseline = "raw",
     .kind = BENCH_RAW,
     .message_size = 100,
     .partitions = 16,
     .keys = 1000,
     .messages = NOOP_MESSAGES,
     .summary = "librdkafka poll loop, no-op handler inline (the baseline)"},

    /* kaffe's modes with a no-op handler: its overhead over the raw loop. */
    {.name = "sync",
     .family = "modes",
     .baseline = "raw",
     .kind = BENCH_KAFFE_SYNC,
     .ordering = "partition",
     .workers = 8,
     .message_size = 100,
     .partitions = 16,
     .keys = 1000,
     .messages = NOOP_MESSAGES,
     .summary = "kaffe sync, partition ordering, 8 workers, no-op handler"},
    {.name = "async",
     .family = "modes",
     .baseline = "raw",
     .kind = BENCH_KAFFE_ASYNC,
     .ordering = "partition",
     .workers = 8,
     .ack_delay_max_us = 1000,
     .message_size = 100,
     .partitions = 16,
     .keys = 1000,
     .messages = NOOP_MESSAGES,
     .summary = "kaffe async, acks from another thread after 0-1 ms (out of order)"},
    {.name = "batch",
     .family = "modes",
     .baseline = "raw",
     .kind = BENCH_KAFFE_BATCH,
     .ordering = "partition",
     .workers = 8,
     .message_size = 100,
     .partitions = 16,
     .keys = 1000,
     .messages = NOOP_MESSAGES,
     .summary = "kaffe sync batch handler (up to 500 messages of a partition), 8 workers"},
    {.name = "sync-key",
     .family = "modes",
     .baseline = "raw",
     .kind = BENCH_KAFFE_SYNC,
     .ordering = "key",
     .workers = 8,
     .message_size = 100,
     .partitions = 16,
     .keys = 1000,
     .messages = NOOP_MESSAGES,
     .summary = "kaffe sync, key ordering, 8 workers, no-op handler"},
    {.name = "sync-unordered",
     .family = "modes",
     .baseline = "raw",
     .kind = BENCH_KAFFE_SYNC,
     .ordering = "unordered",
     .workers = 8,
     .message_size = 100,
     .partitions = 16,
     .keys = 1000,
     .messages = NOOP_MESSAGES,
     .summary = "kaffe sync, unordered, 8 workers, no-op handler"},

/* Throughput against workers for each ordering, with a 1 ms (sleeping)
 * handler on 4 partitions: partition ordering cannot pass 4 in parallel. */
#define SWEEP(order, w, n)                                                                         \
    {                                                                                              \
        .name = "workers-" order "-" #w, .family = "workers", .baseline = "raw",                   \
        .kind = BENCH_KAFFE_SYNC, .ordering = order, .workers = w, .cost = BENCH_COST_SLEEP,       \
        .cost_us = SWEEP_SLEEP_US, .message_size = 100, .partitions = SWEEP_PARTITIONS,            \
        .keys = 1000, .messages = n,                                                               \
        .summary = "kaffe sync, " order " ordering, " #w " workers, 1 ms sleeping handler"         \
    }
    SWEEP("partition", 1, 1500),
    SWEEP("partition", 4, 6000),
    SWEEP("partition", 16, 6000),
    SWEEP("partition", 64, 6000),
    SWEEP("key", 1, 1500),
    SWEEP("key", 4, 6000),
    SWEEP("key", 16, 24000),
    SWEEP("key", 64, 60000),
    SWEEP("unordered", 1, 1500),
    SWEEP("unordered", 4, 6000),
    SWEEP("unordered", 16, 24000),
    SWEEP("unordered", 64, 60000),
#undef SWEEP

    /* Handler cost: CPU-bound (spin) against I/O-bound (sleep). */
    {.name = "cost-spin-10us",
     .family = "cost",
     .baseline = "raw",
     .kind = BENCH_KAFFE_SYNC,
     .ordering = "key",
     .workers = 16,
     .cost = BENCH_COST_SPIN,
     .cost_us = 10,
     .message_size = 100,
     .partitions = 8,
     .keys = 1000,
     .messages = 60000,
     .summary = "kaffe sync, key ordering, 16 workers, handler spins 10 us"},
    {.name = "cost-spin-100us",
     .family = "cost",
     .baseline = "raw",
     .kind = BENCH_KAFFE_SYNC,
     .ordering = "key",
     .workers = 16,
     .cost = BENCH_COST_SPIN,
     .cost_us = 100,
     .message_size = 100,
     .partitions = 8,
     .keys = 1000,
     .messages = 12000,
     .summary = "kaffe sync, key ordering, 16 workers, handler spins 100 us"},
    {.name = "cost-sleep-100us",
     .family = "cost",
     .baseline = "raw",
     .kind = BENCH_KAFFE_SYNC,
     .ordering = "key",
     .workers = 16,
     .cost = BENCH_COST_SLEEP,
     .cost_us = 100,
     .message_size = 100,
     .partitions = 8,
     .keys = 1000,
     .messages = 60000,
     .summary = "kaffe sync, key ordering, 16 workers, handler sleeps 100 us"},

    /* Message sizes, each against a raw loop over the same data. */
    {.name = "raw-1k",
     .family = "size",
     .baseline = "raw-1k",
     .kind = BENCH_RAW,
     .message_size = 1024,
     .partitions = 16,
     .keys = 1000,
     .messages = 60000,
     .summary = "librdkafka poll loop, 1 KiB messages"},
    {.name = "size-1k",
     .family = "size",
     .baseline = "raw-1k",
     .kind = BENCH_KAFFE_SYNC,
     .ordering = "partition",
     .workers = 8,
     .message_size = 1024,
     .partitions = 16,
     .keys = 1000,
     .messages = 60000,
     .summary = "kaffe sync, partition ordering, 8 workers, 1 KiB messages"},
    {.name = "raw-16k",
     .family = "size",
     .baseline = "raw-16k",
     .kind = BENCH_RAW,
     .message_size = 16384,
     .partitions = 16,
     .keys = 1000,
     .messages = 3200,
     .summary = "librdkafka poll loop, 16 KiB messages"},
    {.name = "size-16k",
     .family = "size",
     .baseline = "raw-16k",
     .kind = BENCH_KAFFE_SYNC,
     .ordering = "partition",
     .workers = 8,
     .message_size = 16384,
     .partitions = 16,
     .keys = 1000,
     .messages = 3200,
     .summary = "kaffe sync, partition ordering, 8 workers, 16 KiB messages"},
};

size_t bench_scenario_count(void) {
    return sizeof scenarios / sizeof scenarios[0];
}

const bench_scenario_t *bench_scenario_at(size_t i) {
    return i < bench_scenario_count() ? &scenarios[i] : NULL;
}

const bench_scenario_t *bench_scenario_find(const char *name) {
    for (size_t i = 0; i < bench_scenario_count(); i++)
        if (strcmp(scenarios[i].name, name) == 0)
            return &scenarios[i];
    return NULL;
}

const char *bench_kind_name(bench_kind_t kind) {
    switch (kind) {
        case BENCH_RAW:
            return "raw";
        case BENCH_KAFFE_SYNC:
            return "sync";
        case BENCH_KAFFE_ASYNC:
            return "async";
        case BENCH_KAFFE_BATCH:
            return "batch";
    }
    return "?";
}

const char *bench_cost_name(bench_cost_t cost) {
    switch (cost) {
        case BENCH_COST_NONE:
            return "none";
        case BENCH_COST_SPIN:
            return "spin";
        case BENCH_COST_SLEEP:
            return "sleep";
    }
    return "?";
}
