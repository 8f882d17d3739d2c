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
 * the sanitizer runs in scripts/test.sh may set it lower). */
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
#include "support/mock_suite.h"
#include "support/plain_client.h"
#include "support/subprocess.h"
#include "common/clock.h"

#define FAULT_MAX_PARTITIONS 8

/* Mock cluster request API keys (rdkafka_protocol.h is not public). */
enum {
    FAULT_API_FETCH = 1,
    FAULT_API_OFFSET_COMMIT = 8,
    FAULT_API_JOIN_GROUP = 11,
    FAULT_API_HEARTBEAT = 12,
    FAULT_API_SYNC_GROUP = 14,
};

/* n scaled by KAFFE_FAULTS_SCALE (a positive float), at least min. */
static inline long fault_scaled(long n, long min) {
    const char *s = getenv("KAFFE_FAULTS_SCALE");
    double f = s ? atof(s) : 1.0;
    if (f <= 0)
        f = 1.0;
    long v = (long)((double)n * f);
    return v < min ? min : v;
}

/* --- results --------------------------------------------------------------- */

typedef struct fault_result {
    const char *scenario;
    long messages;
    long lost;
    long duplicates;
    long replays_of_acked;
    long recovery_ms; /* -1: not applicable */
    long dup_bound;
    const char *bound_text; /* how dup_bound is derived */
} fault_result_t;

/* Appends one '|'-separated line to $KAFFE_FAULTS_RESULTS (if set) and prints
 * it. Called after the asserts passed: a failing scenario leaves no row. */
static inline void fault_result_record(const fault_result_t *r) {
    char line[512];
    snprintf(line, sizeof line, "%s|%ld|%ld|%ld|%ld|%ld|%ld|%s\n", r->scenario, r->messages,
             r->lost, r->duplicates, r->replays_of_acked, r->recovery_ms, r->dup_bound,
             r->bound_text);
    fprintf(stderr, "fault result: %s", line);
    const char *path = getenv("KAFFE_FAULTS_RESULTS");
    if (path && *path) {
        FILE *f = fopen(path, "a");
        if (f) {
            fputs(line, f);
            fclose(f);
        }
    }
}

/* --- committed state (read with a plain client) ---------------------------- */

/* Committed offset of each partition (-1001 when none). */
static inline void fault_committed_offsets(const char *b, const char *group, const char *topic,
                                           int partitions, int64_t *out) {
    for (int p = 0; p < partitions; p++)
        out[p] = plain_committed(b, group, topic, p, NULL);
}

/* Waits until every partition's committed offset equals its log end; true
 * when it does before timeout_ms. */
static inline int fault_wait_committed_end(const char *b, const char *group, const char *topic,
                                           int partitions, const int64_t *log_end, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    for (;;) {
        int all = 1;
        for (int p = 0; p < partitions && all; p++)
            all = plain_committed(b, group, topic, p, NULL) == log_end[p];
        if (all)
            return 1;
        if (clock_now_ms() > deadline)
            return 0;
        clock_sleep_ms(100);
    }
}

/* The committed "done" set of a partition: offsets below the committed
 * offset plus those the metadata marks acked. */
typedef struct fault_done {
    int64_t committed; /* < 0: nothing committed */
    ack_snapshot_t snap;
} fault_done_t;

static inline void fault_done_read(const char *b, const char *group, const char *topic, int32_t p,
                                   fault_done_t *d) {
    char *metadata = NULL;
    d->committed = plain_committed(b, group, topic, p, &metadata);
    memset(&d->snap, 0, sizeof d->snap);
    if (d->committed >= 0) {
        kaffe_status_t st = ack_metadata_decode(
            metadata ? metadata : "", metadata ? strlen(metadata) : 0, d->committed, &d->snap);
        cr_assert_eq(st, KAFFE_OK, "committed metadata of partition %d does not decode", (int)p);
    }
    free(metadata);
}

static inline int fault_done_has(const fault_done_t *d, int64_t o) {
    if (d->committed < 0)
        return 0;
    return o < d->committed || ack_snapshot_is_done(&d->snap, o);
}

static inline void fault_done_free(fault_done_t *d) {
    ack_snapshot_free(&d->snap);
}

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

/* --- consumer processes (tests/faults/fault_consumer.c) -------------------- */

typedef struct fault_event {
    char kind; /* 'H' handled, 'A' about to ack */
    int32_t partition;
    int64_t offset;
    int64_t t_us; /* CLOCK_MONOTONIC (system-wide) */
} fault_event_t;

/* A 'C' line: the committed state a partition was assigned with. */
typedef struct fault_assignment {
    int32_t partition;
    int64_t t_us;
    fault_done_t done;
} fault_assignment_t;

typedef struct fault_log {
    fault_event_t *ev;
    size_t count, cap;
    fault_assignment_t *as;
    size_t as_count, as_cap;
} fault_log_t;

static inline void fault_log_free(fault_log_t *log) {
    for (size_t i = 0; i < log->as_count; i++)
        fault_done_free(&log->as[i].done);
    free(log->as);
    free(log->ev);
}

/* Appends the events of a fault_consumer log file to log. A last line cut
 * short by a SIGKILL is impossible (one write(2) per line) but skipped if
 * malformed anyway. */
static inline void fault_log_read(fault_log_t *log, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    static char line[8192]; /* metadata is at most 4 KB */
    while (fgets(line, sizeof line, f)) {
        fault_event_t e;
        long long o, t;
        int p;
        if (sscanf(line, "%c %d %lld %lld", &e.kind, &p, &o, &t) != 4)
            continue;
        if (e.kind == 'C') {
            char *metadata = line;
            for (int field = 0; field < 4 && metadata; field++) {
                metadata = strchr(metadata, ' ');
                if (metadata)
                    metadata++;
            }
            cr_assert_not_null(metadata, "%s: malformed C line", path);
            metadata[strcspn(metadata, "\n")] = '\0';
            if (strcmp(metadata, "-") == 0)
                *metadata = '\0';
            if (log->as_count == log->as_cap) {
                log->as_cap = log->as_cap ? log->as_cap * 2 : 64;
                log->as = realloc(log->as, log->as_cap * sizeof *log->as);
                cr_assert_not_null(log->as);
            }
            fault_assignment_t *a = &log->as[log->as_count++];
            a->partition = p;
            a->t_us = t;
            a->done.committed = o;
            memset(&a->done.snap, 0, sizeof a->done.snap);
            if (o >= 0)
                cr_assert_eq(ack_metadata_decode(metadata, strlen(metadata), o, &a->done.snap),
                             KAFFE_OK, "%s: committed metadata does not decode", path);
            continue;
        }
        e.partition = p;
        e.offset = o;
        e.t_us = t;
        if (log->count == log->cap) {
            log->cap = log->cap ? log->cap * 2 : 4096;
            log->ev = realloc(log->ev, log->cap * sizeof *log->ev);
            cr_assert_not_null(log->ev);
        }
        log->ev[log->count++] = e;
    }
    fclose(f);
}

/* Handles in path (a fault_consumer log) so far. */
static inline long fault_log_handles(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long n = 0;
    char line[128];
    while (fgets(line, sizeof line, f))
        n += line[0] == 'H';
    fclose(f);
    return n;
}

/* First handle at or after t_us in path, or -1. */
static inline int64_t fault_log_first_handle_after(const char *path, int64_t t_us) {
    fault_log_t log = {0};
    fault_log_read(&log, path);
    int64_t first = -1;
    for (size_t i = 0; i < log.count; i++)
        if (log.ev[i].kind == 'H' && log.ev[i].t_us >= t_us &&
            (first < 0 || log.ev[i].t_us < first))
            first = log.ev[i].t_us;
    fault_log_free(&log);
    return first;
}

/* A committed-state snapshot (after a kill), complete at t_us: what it has
 * as committed done must never be handled after t_us. */
typedef struct fault_checkpoint {
    int64_t t_us;
    fault_done_t done[FAULT_MAX_PARTITIONS];
} fault_checkpoint_t;

static inline void fault_checkpoint_take(fault_checkpoint_t *cp, const char *b, const char *group,
                                         const char *topic, int partitions) {
    for (int p = 0; p < partitions; p++)
        fault_done_read(b, group, topic, p, &cp->done[p]);
    /* Stamped after the reads: live members (churn) go on handling and
     * committing while partition after partition is read, so a message
     * committed by its read may have been handled after the first read.
     * Everything read was committed, hence acked, by now. */
    cp->t_us = clock_now_us();
}

/* Offsets handled (in log, before cp->t_us) that cp does not have as done:
 * the most a restart after that checkpoint may hand out again. */
static inline long fault_checkpoint_at_risk(const fault_checkpoint_t *cp, const fault_log_t *log,
                                            int partitions, const int64_t *log_end) {
    long n = 0;
    for (int p = 0; p < partitions; p++) {
        unsigned char *seen = calloc((size_t)log_end[p] + 1, 1);
        for (size_t i = 0; i < log->count; i++) {
            const fault_event_t *e = &log->ev[i];
            if (e->kind != 'H' || e->partition != p || e->t_us >= cp->t_us ||
                e->offset >= log_end[p] || seen[e->offset])
                continue;
            seen[e->offset] = 1;
            n += !fault_done_has(&cp->done[p], e->offset);
        }
        free(seen);
    }
    return n;
}

/* The sum over every assignment in the logs ('C' lines) of the offsets of
 * that partition handled before it and not done in the state it was
 * assigned with: the most that (re)assignments can hand out again. */
static inline long fault_assignments_at_risk(const fault_log_t *log, const int64_t *log_end) {
    long n = 0;
    for (size_t a = 0; a < log->as_count; a++) {
        const fault_assignment_t *as = &log->as[a];
        int32_t p = as->partition;
        unsigned char *seen = calloc((size_t)log_end[p] + 1, 1);
        for (size_t i = 0; i < log->count; i++) {
            const fault_event_t *e = &log->ev[i];
            if (e->kind != 'H' || e->partition != p || e->t_us >= as->t_us ||
                e->offset >= log_end[p] || seen[e->offset])
                continue;
            seen[e->offset] = 1;
            n += !fault_done_has(&as->done, e->offset);
        }
        free(seen);
    }
    return n;
}

/* The verdict over all process logs and checkpoints: lost (offsets below
 * the log end never handled), duplicates, replays of acked (handles after a
 * checkpoint of offsets it had as done), and committed-but-never-acked
 * (offsets a checkpoint had as done with no 'A' line before it: a commit of
 * something the application did not ack, which would be a loss). */
typedef struct fault_verdict {
    long messages, lost, duplicates, committed_unacked;
    long replays_of_acked;         /* the sum of the next two */
    long replays_after_kill;       /* against the checkpoints after kills */
    long replays_after_assignment; /* against the states logged at assignments only */
} fault_verdict_t;

static inline fault_verdict_t fault_verdict(const fault_log_t *log, const fault_checkpoint_t *cps,
                                            size_t cp_count, int partitions,
                                            const int64_t *log_end) {
    fault_verdict_t v = {0};
    for (int p = 0; p < partitions; p++) {
        int64_t n = log_end[p];
        v.messages += n;
        long *handles = calloc((size_t)n + 1, sizeof *handles);
        int64_t *first_ack = malloc(((size_t)n + 1) * sizeof *first_ack);
        for (int64_t o = 0; o <= n; o++)
            first_ack[o] = INT64_MAX;
        for (size_t i = 0; i < log->count; i++) {
            const fault_event_t *e = &log->ev[i];
            if (e->partition != p || e->offset < 0 || e->offset >= n)
                continue;
            if (e->kind == 'H') {
                handles[e->offset]++;
                int after_kill = 0, after_assignment = 0;
                for (size_t c = 0; c < cp_count && !after_kill; c++)
                    after_kill =
                        e->t_us > cps[c].t_us && fault_done_has(&cps[c].done[p], e->offset);
                for (size_t a = 0; a < log->as_count && !after_kill && !after_assignment; a++)
                    after_assignment = log->as[a].partition == p && e->t_us > log->as[a].t_us &&
                                       fault_done_has(&log->as[a].done, e->offset);
                if (after_kill && getenv("KAFFE_FAULTS_VERBOSE")) {
                    for (size_t c = 0; c < cp_count; c++)
                        if (e->t_us > cps[c].t_us && fault_done_has(&cps[c].done[p], e->offset)) {
                            fprintf(stderr,
                                    "replay after kill %zu (at %lld, committed %lld): partition "
                                    "%d offset %lld at %lld\n",
                                    c, (long long)cps[c].t_us, (long long)cps[c].done[p].committed,
                                    (int)p, (long long)e->offset, (long long)e->t_us);
                            break;
                        }
                }
                if (after_assignment && getenv("KAFFE_FAULTS_VERBOSE"))
                    fprintf(stderr, "replay: partition %d offset %lld at %lld\n", (int)p,
                            (long long)e->offset, (long long)e->t_us);
                v.replays_after_kill += after_kill;
                v.replays_after_assignment += after_assignment;
                v.replays_of_acked += after_kill + after_assignment;
            } else if (e->kind == 'A' && e->t_us < first_ack[e->offset]) {
                first_ack[e->offset] = e->t_us;
            }
        }
        for (int64_t o = 0; o < n; o++) {
            if (handles[o] == 0)
                v.lost++;
            else
                v.duplicates += handles[o] - 1;
            int unacked = 0;
            for (size_t c = 0; c < cp_count && !unacked; c++)
                unacked = fault_done_has(&cps[c].done[p], o) && first_ack[o] > cps[c].t_us;
            for (size_t a = 0; a < log->as_count && !unacked; a++)
                unacked = log->as[a].partition == p && fault_done_has(&log->as[a].done, o) &&
                          first_ack[o] > log->as[a].t_us;
            v.committed_unacked += unacked;
        }
        free(handles);
        free(first_ack);
    }
    return v;
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

/* The scenario's random seed: KAFFE_FAULTS_SEED, or the time; printed, and
 * srand()ed. */
static inline unsigned fault_seed(const char *name) {
    const char *env = getenv("KAFFE_FAULTS_SEED");
    unsigned seed = env ? (unsigned)atoi(env) : (unsigned)time(NULL);
    fprintf(stderr, "faults_%s: seed %u (KAFFE_FAULTS_SEED to repeat)\n", name, seed);
    srand(seed);
    return seed;
}

/* Starts a tests/faults/fault_consumer process on the cluster, logging to
 * log (its usage line names the arguments). */
static inline void fault_consumer_start(subprocess_t *sp, mock_cluster_t *mc, const char *topic,
                                        const char *group, const char *log, unsigned seed,
                                        long max_in_flight, long acks_per_sec) {
    char seed_s[16], in_flight_s[24], rate_s[24];
    snprintf(seed_s, sizeof seed_s, "%u", seed);
    snprintf(in_flight_s, sizeof in_flight_s, "%ld", max_in_flight);
    snprintf(rate_s, sizeof rate_s, "%ld", acks_per_sec);
    char *argv[] = {KAFFE_FAULT_CONSUMER_PATH,
                    (char *)mock_cluster_bootstraps(mc),
                    (char *)topic,
                    (char *)group,
                    (char *)log,
                    seed_s,
                    in_flight_s,
                    rate_s,
                    NULL};
    cr_assert_eq(subprocess_start(sp, argv, 0), 0, "starting %s", KAFFE_FAULT_CONSUMER_PATH);
}

#endif /* KAFFE_TESTS_FAULT_HELPERS_H */
