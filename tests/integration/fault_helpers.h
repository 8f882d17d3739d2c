/* Helpers shared by the fault suite (tests/integration/test_faults_*.c;
 * header-only: each test binary is one .c file).
 *
 * Two ways to run a consumer against injected faults:
 *
 *  - in process (fault_run_*): a kaffe consumer in async mode, unordered,
 *    whose handler counts every (partition, offset) it sees and whose acker
 *    thread acks a random pending message (out of order), paced. The test
 *    injects the fault through the mock handle while it runs, then waits,
 *    with a separate plain librdkafka client, until the committed offsets
 *    reach the log end.
 *  - as processes (tests/faults/fault_consumer.c): the test starts,
 *    SIGKILLs / SIGTERMs and restarts consumer processes that log every
 *    handled message and every ack (fault_log_*), and snapshots the
 *    committed offset + metadata after each kill (fault_committed_*).
 *
 * Both end in a fault_result_t: messages, lost (offsets in [0, log end)
 * never handled), duplicates (handles beyond the first), replays of acked
 * (handles of an offset that was committed as done, in the committed offset
 * or its metadata, before), recovery time and the duplicate bound asserted.
 * fault_result_record() appends it as one line to the file named by
 * KAFFE_FAULTS_RESULTS (scripts/reliability.sh turns those into
 * docs/RELIABILITY.md). Sizes scale with KAFFE_FAULTS_SCALE (default 1;
 * the sanitizer runs in scripts/test.sh may set it lower).
 *
 * The checker itself (results, committed state, process logs, verdict,
 * fault_consumer_start_at) is support/fault_check.h, shared with the
 * real-cluster tier (tests/cluster); this file adds the embedded cluster. */
#ifndef KAFFE_TESTS_FAULT_HELPERS_H
#define KAFFE_TESTS_FAULT_HELPERS_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "ack/ack.h"
#include "mock/mock_cluster.h"
#include "support/fault_check.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"
#include "support/subprocess.h"
#include "common/clock.h"

/* Mock cluster request API keys (rdkafka_protocol.h is not public). */
enum {
    FAULT_API_FETCH = 1,
    FAULT_API_OFFSET_COMMIT = 8,
    FAULT_API_JOIN_GROUP = 11,
    FAULT_API_HEARTBEAT = 12,
    FAULT_API_SYNC_GROUP = 14,
};

/* --- in-process runs --------------------------------------------------------- */

typedef struct fault_run {
    const char *bootstraps;
    char topic[64];
    char group[64];
    int partitions;
    int64_t log_end[FAULT_MAX_PARTITIONS];
    long messages;
    /* counts[p][o]: handles of offset o; under lock. */
    pthread_mutex_t lock;
    unsigned short *counts[FAULT_MAX_PARTITIONS];
    long out_of_range; /* handles of offsets past the log end (a bug) */
    kaffe_message_t **pending;
    size_t pending_count, pending_cap;
    int64_t fault_end_us;                         /* 0: fault not over yet */
    int64_t first_after_us[FAULT_MAX_PARTITIONS]; /* first handle after fault_end */
    /* Acker thread. */
    pthread_t acker;
    atomic_int acker_stop;
    atomic_int hold; /* 1: the acker acks nothing */
    long acks_per_sec;
    unsigned seed;
    atomic_long handled;
    atomic_long acked;
    atomic_long commit_failures; /* error callback reports of failed commits */
    atomic_long errors;          /* every error callback report */
    kaffe_consumer_t *consumer;
    /* The committed state each partition was last assigned with (read by
     * the rebalance callback with a plain client): a later handle of an
     * offset done in it is a replay of an acked message. Under lock. */
    fault_done_t done[FAULT_MAX_PARTITIONS];
    long replays;
    long assignments;
    /* Sum over (re)assignments of the offsets already handled and not
     * committed as done in the state assigned with: the most that can be
     * handed out again (the duplicate bound). */
    long at_risk;
    /* Optional, set between fault_run_setup and fault_run_launch (or while
     * no consumer runs): called by the handler first, on a worker thread;
     * a status other than KAFFE_OK is returned by the handler as is (the
     * message failed: not counted as handled, not kept for the acker). */
    int (*fail)(struct fault_run *r, kaffe_message_t *m);
    void *fail_arg;
    /* Optional, like fail: called by the acker thread (without r->lock)
     * for each message it is about to ack; a status other than KAFFE_OK
     * makes it kaffe_consumer_nack the message with that status instead. */
    int (*nack)(struct fault_run *r, kaffe_message_t *m);
} fault_run_t;

/* Poll thread, before any message of the partition is handled. */
static inline void fault_run_rebalance_cb(kaffe_consumer_t *c, int assigned, const char *topic,
                                          int32_t partition, void *opaque) {
    (void)c;
    fault_run_t *r = opaque;
    if (!assigned || partition < 0 || partition >= r->partitions)
        return;
    fault_done_t d;
    fault_done_read(r->bootstraps, r->group, topic, partition, &d);
    pthread_mutex_lock(&r->lock);
    fault_done_free(&r->done[partition]);
    r->done[partition] = d;
    r->assignments++;
    for (int64_t o = 0; o < r->log_end[partition]; o++)
        r->at_risk += r->counts[partition][o] > 0 && !fault_done_has(&d, o);
    pthread_mutex_unlock(&r->lock);
}

static inline int fault_run_handler(kaffe_message_t *m, void *opaque) {
    fault_run_t *r = opaque;
    if (r->fail) {
        int rc = r->fail(r, m);
        if (rc != KAFFE_OK)
            return rc;
    }
    int32_t p = kaffe_message_partition(m);
    int64_t o = kaffe_message_offset(m);
    int64_t now = clock_now_us();
    pthread_mutex_lock(&r->lock);
    if (p >= 0 && p < r->partitions && o >= 0 && o < r->log_end[p]) {
        if (r->counts[p][o] < 65535)
            r->counts[p][o]++;
        if (fault_done_has(&r->done[p], o))
            r->replays++;
    } else {
        r->out_of_range++;
    }
    if (r->fault_end_us && !r->first_after_us[p] && now >= r->fault_end_us)
        r->first_after_us[p] = now;
    if (r->pending_count == r->pending_cap) {
        r->pending_cap = r->pending_cap ? r->pending_cap * 2 : 1024;
        r->pending = realloc(r->pending, r->pending_cap * sizeof *r->pending);
        cr_assert_not_null(r->pending);
    }
    r->pending[r->pending_count++] = m;
    pthread_mutex_unlock(&r->lock);
    atomic_fetch_add_explicit(&r->handled, 1, memory_order_relaxed);
    return KAFFE_OK;
}

static inline void fault_run_error_cb(int status, const char *reason, void *opaque) {
    fault_run_t *r = opaque;
    if (getenv("KAFFE_FAULTS_VERBOSE"))
        fprintf(stderr, "%s: error %d: %s\n", r->topic, status, reason);
    atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
    if (strstr(reason, "commit failed"))
        atomic_fetch_add_explicit(&r->commit_failures, 1, memory_order_relaxed);
}

/* Acks random pending messages (out of order), paced to acks_per_sec. */
static inline void *fault_run_acker(void *arg) {
    fault_run_t *r = arg;
    int64_t started = clock_now_us();
    long acked = 0;
    /* relaxed: plain flags; the messages are handed over under r->lock. */
    while (!atomic_load_explicit(&r->acker_stop, memory_order_relaxed)) {
        kaffe_message_t *m = NULL;
        if (!atomic_load_explicit(&r->hold, memory_order_relaxed)) {
            pthread_mutex_lock(&r->lock);
            if (r->pending_count > 0) {
                size_t i = (size_t)rand_r(&r->seed) % r->pending_count;
                m = r->pending[i];
                r->pending[i] = r->pending[--r->pending_count];
            }
            pthread_mutex_unlock(&r->lock);
        }
        if (!m) {
            clock_sleep_ms(1);
            started = clock_now_us();
            acked = 0;
            continue;
        }
        int nack = r->nack ? r->nack(r, m) : KAFFE_OK;
        if (nack != KAFFE_OK)
            kaffe_consumer_nack(r->consumer, m, nack);
        else
            kaffe_consumer_ack(r->consumer, m); /* REVOKED: redelivered to the new owner */
        atomic_fetch_add_explicit(&r->acked, 1, memory_order_relaxed);
        acked++;
        int64_t due = started + acked * 1000000 / r->acks_per_sec;
        int64_t now = clock_now_us();
        if (due > now + 1000)
            clock_sleep_ms((int)((due - now) / 1000));
    }
    return NULL;
}

/* Creates topic "<name>" with partitions partitions and produces
 * per_partition messages to each (fault_run_start's first half). */
static inline void fault_run_setup(fault_run_t *r, mock_cluster_t *mc, const char *name,
                                   int partitions, long per_partition, long acks_per_sec,
                                   int hold) {
    memset(r, 0, sizeof *r);
    cr_assert(partitions <= FAULT_MAX_PARTITIONS);
    r->bootstraps = mock_cluster_bootstraps(mc);
    snprintf(r->topic, sizeof r->topic, "%s", name);
    snprintf(r->group, sizeof r->group, "g-%s", name);
    r->partitions = partitions;
    r->acks_per_sec = acks_per_sec;
    r->seed = 12345;
    pthread_mutex_init(&r->lock, NULL);
    atomic_store(&r->hold, hold);
    cr_assert_eq(mock_cluster_create_topic(mc, r->topic, partitions), 0);
    for (int p = 0; p < partitions; p++) {
        cr_assert_eq(plain_produce(r->bootstraps, r->topic, p, (size_t)per_partition,
                                   (size_t)(p * per_partition), 0),
                     (size_t)per_partition);
        r->log_end[p] = plain_log_end(r->bootstraps, r->topic, p);
        cr_assert_eq(r->log_end[p], per_partition, "log end of partition %d", p);
        r->counts[p] = calloc((size_t)r->log_end[p] + 1, sizeof *r->counts[p]);
        r->messages += r->log_end[p];
    }
}

/* Starts a consumer (group "g-<name>") on the topic of fault_run_setup with
 * the given max_in_flight_messages, plus extra conf pairs (NULL-terminated
 * in ap; a key given twice takes the later value), and its acker thread.
 * Again after fault_run_halt: a restarted consumer, same counts. */
static inline void fault_run_vlaunch(fault_run_t *r, const char *max_in_flight, va_list ap) {
    atomic_store(&r->acker_stop, 0);
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    const char *base[][2] = {
        {"endpoints", r->bootstraps},
        {"topics", r->topic},
        {"consumer_group", r->group},
        {"start_with_earliest_message", "true"},
        {"async_message_ack", "true"},
        {"ordering", "unordered"},
        {"workers", "4"},
        {"max_in_flight_messages", max_in_flight},
        {"commit_interval_ms", "100"},
        {"drain_timeout_ms", "3000"},
        {"rdkafka.session.timeout.ms", "6000"},
        {"rdkafka.heartbeat.interval.ms", "200"},
        {"rdkafka.fetch.wait.max.ms", "20"},
        /* librdkafka's default (10 s) dominates recovery after an outage. */
        {"rdkafka.reconnect.backoff.max.ms", "1000"},
        {"rdkafka.log_level", "2"},
    };
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        cr_assert_eq(kaffe_conf_set(conf, base[i][0], base[i][1], err, sizeof err), KAFFE_OK, "%s",
                     err);
    const char *key;
    while ((key = va_arg(ap, const char *))) {
        const char *value = va_arg(ap, const char *);
        cr_assert_eq(kaffe_conf_set(conf, key, value, err, sizeof err), KAFFE_OK, "%s", err);
    }
    const char *debug = getenv("KAFFE_FAULTS_DEBUG"); /* e.g. "cgrp,fetch" */
    if (debug && *debug) {
        cr_assert_eq(kaffe_conf_set(conf, "rdkafka.debug", debug, err, sizeof err), KAFFE_OK);
        cr_assert_eq(kaffe_conf_set(conf, "rdkafka.log_level", "7", err, sizeof err), KAFFE_OK);
    }
    kaffe_conf_set_message_handler(conf, fault_run_handler, r);
    kaffe_conf_set_error_cb(conf, fault_run_error_cb, r);
    r->consumer = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(r->consumer, "%s", err);
    cr_assert_eq(pthread_create(&r->acker, NULL, fault_run_acker, r), 0);
    cr_assert_eq(kaffe_consumer_set_rebalance_cb(r->consumer, fault_run_rebalance_cb, r), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_start(r->consumer), KAFFE_OK);
}

static inline void fault_run_launch(fault_run_t *r, const char *max_in_flight, ...) {
    va_list ap;
    va_start(ap, max_in_flight);
    fault_run_vlaunch(r, max_in_flight, ap);
    va_end(ap);
}

/* fault_run_setup + fault_run_launch. */
static inline void fault_run_start(fault_run_t *r, mock_cluster_t *mc, const char *name,
                                   int partitions, long per_partition, const char *max_in_flight,
                                   long acks_per_sec, int hold, ...) {
    fault_run_setup(r, mc, name, partitions, per_partition, acks_per_sec, hold);
    va_list ap;
    va_start(ap, hold);
    fault_run_vlaunch(r, max_in_flight, ap);
    va_end(ap);
}

static inline long fault_run_handled(fault_run_t *r) {
    return atomic_load_explicit(&r->handled, memory_order_relaxed);
}

/* Waits until at least n handles happened; asserts it within timeout_ms. */
static inline void fault_run_wait_handled(fault_run_t *r, long n, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    while (fault_run_handled(r) < n) {
        cr_assert(clock_now_ms() < deadline, "%s: handled %ld of %ld before the deadline", r->topic,
                  fault_run_handled(r), n);
        clock_sleep_ms(5);
    }
}

/* The fault is over (the broker is back, the errors are injected, ...):
 * recovery time is measured from here. */
static inline void fault_run_fault_over(fault_run_t *r) {
    pthread_mutex_lock(&r->lock);
    r->fault_end_us = clock_now_us();
    pthread_mutex_unlock(&r->lock);
}

/* Stops the consumer (kaffe_consumer_stop's status is returned), then its
 * acker, and destroys it; messages still pending for the acker are gone
 * with it. fault_run_launch may start another consumer afterwards. */
static inline kaffe_status_t fault_run_halt(fault_run_t *r) {
    kaffe_status_t st = kaffe_consumer_stop(r->consumer);
    atomic_store(&r->acker_stop, 1);
    pthread_join(r->acker, NULL);
    kaffe_consumer_destroy(r->consumer);
    r->consumer = NULL;
    r->pending_count = 0;
    return st;
}

static inline void fault_run_tally(fault_run_t *r, fault_result_t *res);

/* Waits (with a plain client) until every committed offset is the log end,
 * while the consumer runs; then stops it and checks the counts: lost == 0,
 * replays of acked == 0, duplicates <= the at-risk sum (res->dup_bound is
 * set to it). Fills res (scenario from the caller). */
static inline void fault_run_finish(fault_run_t *r, fault_result_t *res, int timeout_ms) {
    int reached = fault_wait_committed_end(r->bootstraps, r->group, r->topic, r->partitions,
                                           r->log_end, timeout_ms);
    int64_t committed[FAULT_MAX_PARTITIONS];
    fault_committed_offsets(r->bootstraps, r->group, r->topic, r->partitions, committed);
    for (int p = 0; p < r->partitions; p++)
        if (!reached && committed[p] != r->log_end[p])
            cr_assert(reached,
                      "%s: partition %d committed %lld, log end %lld (handled %ld, acked %ld)",
                      r->topic, p, (long long)committed[p], (long long)r->log_end[p],
                      fault_run_handled(r), atomic_load(&r->acked));
    cr_assert(reached, "%s: committed offsets did not reach the log end in time", r->topic);
    cr_assert_eq(fault_run_halt(r), KAFFE_OK, "%s: the consumer stopped with an error", r->topic);
    fault_run_tally(r, res);
}

/* The mid-run scenarios of test_faults_broker.c and test_faults_errors.c
 * share one shape: FAULT_MIDRUN_PARTITIONS partitions of
 * fault_scaled(2500, 400) messages, FAULT_MIDRUN_IN_FLIGHT unacked per
 * partition, acks paced to ~1 s for all (the in-flight limit and
 * pause/resume make it slower). fault_run_start_midrun returns once a
 * quarter is handled, so the fault then lands mid-run. */
enum { FAULT_MIDRUN_PARTITIONS = 4 };
#define FAULT_MIDRUN_IN_FLIGHT "200"

static inline void fault_run_start_midrun(fault_run_t *r, mock_cluster_t *mc, const char *name) {
    long pp = fault_scaled(2500, 400);
    fault_run_start(r, mc, name, FAULT_MIDRUN_PARTITIONS, pp, FAULT_MIDRUN_IN_FLIGHT,
                    pp * FAULT_MIDRUN_PARTITIONS, 0, NULL);
    fault_run_wait_handled(r, pp * FAULT_MIDRUN_PARTITIONS / 4, 60000);
}

/* Finishes r (checks, at most 90 s for the committed log end) and records
 * its row as scenario. */
static inline void fault_run_finish_and_record(fault_run_t *r, const char *scenario) {
    fault_result_t res = {.scenario = scenario};
    fault_run_finish(r, &res, 90000);
    fault_result_record(&res);
}

/* Checks the counts and fills res (see fault_run_finish), then frees the
 * run. After fault_run_halt; the caller may first add handles to counts
 * that happened elsewhere (e.g. a dead-letter topic's copies). */
static inline void fault_run_tally(fault_run_t *r, fault_result_t *res) {
    long lost = 0, dups = 0;
    int64_t recovery_us = -1;
    for (int p = 0; p < r->partitions; p++) {
        for (int64_t o = 0; o < r->log_end[p]; o++) {
            if (r->counts[p][o] == 0)
                lost++;
            else
                dups += r->counts[p][o] - 1;
        }
        if (r->fault_end_us && r->first_after_us[p] &&
            r->first_after_us[p] - r->fault_end_us > recovery_us)
            recovery_us = r->first_after_us[p] - r->fault_end_us;
    }
    fprintf(stderr,
            "%s: handled %ld, acked %ld, assignments %ld, errors %ld (commit failures %ld), "
            "lost %ld, duplicates %ld (at risk %ld), replays of acked %ld\n",
            r->topic, fault_run_handled(r), atomic_load(&r->acked), r->assignments,
            atomic_load(&r->errors), atomic_load(&r->commit_failures), lost, dups, r->at_risk,
            r->replays);
    cr_assert_eq(r->out_of_range, 0, "%s: handled offsets past the log end", r->topic);
    cr_assert_eq(r->replays, 0, "%s: %ld handles of offsets committed as acked", r->topic,
                 r->replays);
    cr_assert_eq(lost, 0, "%s: %ld messages never handled", r->topic, lost);
    res->dup_bound = r->at_risk;
    res->bound_text = "handled, not committed as done at a reassignment";
    cr_assert_leq(dups, res->dup_bound, "%s: %ld duplicates, bound %ld (%s)", r->topic, dups,
                  res->dup_bound, res->bound_text);
    res->messages = r->messages;
    res->lost = lost;
    res->duplicates = dups;
    res->replays_of_acked = r->replays;
    res->recovery_ms = recovery_us < 0 ? -1 : (long)(recovery_us / 1000);
    for (int p = 0; p < r->partitions; p++) {
        free(r->counts[p]);
        fault_done_free(&r->done[p]);
    }
    free(r->pending);
    pthread_mutex_destroy(&r->lock);
}

/* --- process scenarios: cluster, log directory, consumer processes --------- */

/* A one-broker embedded cluster for a process scenario, and a directory
 * for its processes' logs (/tmp/kaffe-<name>-XXXXXX, dir_size >= 64). */
static inline mock_cluster_t *fault_procs_setup(const char *name, char *dir, size_t dir_size) {
    mock_cluster_t *mc = test_mock_cluster_start(1, NULL, 0);
    snprintf(dir, dir_size, "/tmp/kaffe-%s-XXXXXX", name);
    cr_assert_not_null(mkdtemp(dir));
    return mc;
}

/* Stops the cluster and removes the log directory, unless
 * KAFFE_FAULTS_KEEP is set (then it says where the logs are). */
static inline void fault_procs_teardown(mock_cluster_t *mc, const char *name, const char *dir) {
    mock_cluster_stop(mc);
    if (getenv("KAFFE_FAULTS_KEEP")) {
        fprintf(stderr, "faults_%s: logs kept in %s\n", name, dir);
        return;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* Starts a tests/faults/fault_consumer process on the embedded cluster
 * (fault_consumer_start_at with its bootstraps). */
static inline void fault_consumer_start(subprocess_t *sp, mock_cluster_t *mc, const char *topic,
                                        const char *group, const char *log, unsigned seed,
                                        long max_in_flight, long acks_per_sec) {
    fault_consumer_start_at(sp, mock_cluster_bootstraps(mc), topic, group, log, seed, max_in_flight,
                            acks_per_sec);
}

#endif /* KAFFE_TESTS_FAULT_HELPERS_H */
