/* tests/support — the rolling-restart group scenario, shared by the
 * embedded cluster (tests/integration/test_group_protocol.c) and the real
 * broker (tests/broker/test_broker_group_protocol.c), each run once per
 * consumer group protocol (classic and KIP-848's consumer). Header-only,
 * for Criterion test binaries.
 *
 * Three tests/faults/fault_consumer processes (async acks, acked out of
 * order by an acker thread) consume one topic in one group while a producer
 * thread writes to every partition. Members leave and join one after
 * another, a rolling restart: SIGTERM (drain, commit, leave the group), and
 * a new member starts at once; it has handled a message before the next one
 * leaves. Checked over all the members' logs (support/fault_check.h):
 * lost == 0, replays of acked == 0 (no handle of an offset after an
 * assignment whose committed state had it as done: with graceful leaves
 * every ack must reach the next owner), committed-but-never-acked == 0,
 * every stop exits 0, and the committed offsets reach the log end. */
#ifndef KAFFE_TESTS_SUPPORT_GROUP_ROLL_H
#define KAFFE_TESTS_SUPPORT_GROUP_ROLL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "support/fault_check.h"

enum { GROUP_ROLL_MEMBERS = 3, GROUP_ROLL_MAX_LOGS = 16 };

typedef struct group_roll {
    const char *bootstraps, *topic, *group;
    int partitions;          /* at most FAULT_MAX_PARTITIONS; the topic exists */
    int leaves;              /* leave+join events, members in turn */
    const char *member_conf; /* KAFFE_FAULT_CONSUMER_CONF of every member */
    const char *dir;         /* for the members' logs */
    int join_timeout_ms;     /* a new member's first handle, at most */
} group_roll_t;

/* The producer thread: a batch to every partition, then a pause, until
 * told to stop. */
typedef struct group_roll_producer {
    const group_roll_t *g;
    atomic_int stop;
    long produced[FAULT_MAX_PARTITIONS];
    pthread_t thread;
} group_roll_producer_t;

static inline void *group_roll_producer_main(void *arg) {
    group_roll_producer_t *pr = arg;
    /* relaxed: a stop flag; join() orders the counts. */
    while (!atomic_load_explicit(&pr->stop, memory_order_relaxed)) {
        for (int p = 0; p < pr->g->partitions; p++)
            pr->produced[p] += (long)plain_produce(pr->g->bootstraps, pr->g->topic, p, 20,
                                                   (size_t)pr->produced[p], 0);
        clock_sleep_ms(100);
    }
    return NULL;
}

typedef struct group_roll_state {
    const group_roll_t *g;
    subprocess_t members[GROUP_ROLL_MEMBERS];
    char logs[GROUP_ROLL_MAX_LOGS][160];
    int64_t started_us[GROUP_ROLL_MAX_LOGS];
    int member_log[GROUP_ROLL_MEMBERS];
    int log_count;
} group_roll_state_t;

static inline void group_roll_member_start(group_roll_state_t *s, int i, unsigned seed) {
    cr_assert_lt(s->log_count, GROUP_ROLL_MAX_LOGS);
    int l = s->member_log[i] = s->log_count++;
    snprintf(s->logs[l], sizeof s->logs[l], "%s/member-%d.log", s->g->dir, l);
    s->started_us[l] = clock_now_us();
    fault_consumer_start_at(&s->members[i], s->g->bootstraps, s->g->topic, s->g->group, s->logs[l],
                            seed, 1000, 3000);
}

/* Waits until member i's current process has handled a message; the time
 * it took from its start, in ms. */
static inline long group_roll_await_first(group_roll_state_t *s, int i) {
    int l = s->member_log[i];
    int64_t deadline = clock_now_ms() + s->g->join_timeout_ms;
    while (fault_log_handles(s->logs[l]) == 0) {
        cr_assert(clock_now_ms() < deadline, "member %d (log %d) handled nothing within %d ms", i,
                  l, s->g->join_timeout_ms);
        clock_sleep_ms(20);
    }
    return (long)((fault_log_first_handle_after(s->logs[l], s->started_us[l]) - s->started_us[l]) /
                  1000);
}

/* Runs the scenario and asserts its verdict; *res gets the figures (its
 * scenario text from the caller). */
static inline void group_roll_run(const group_roll_t *g, fault_result_t *res) {
    cr_assert_leq(g->partitions, FAULT_MAX_PARTITIONS);
    setenv("KAFFE_FAULT_CONSUMER_CONF", g->member_conf, 1);
    group_roll_state_t s = {.g = g};
    group_roll_producer_t pr = {.g = g};
    cr_assert_eq(pthread_create(&pr.thread, NULL, group_roll_producer_main, &pr), 0);
    unsigned seed = fault_seed("group_roll");
    for (int i = 0; i < GROUP_ROLL_MEMBERS; i++)
        group_roll_member_start(&s, i, seed + (unsigned)i);
    for (int i = 0; i < GROUP_ROLL_MEMBERS; i++)
        group_roll_await_first(&s, i);

    long slowest_join_ms = 0;
    for (int e = 0; e < g->leaves; e++) {
        clock_sleep_ms(500 + rand() % 500);
        int i = e % GROUP_ROLL_MEMBERS;
        int rc = subprocess_stop(&s.members[i], SIGTERM, 30000);
        cr_assert_eq(rc, 0, "leave %d: member %d exited with %d", e, i, rc);
        group_roll_member_start(&s, i, seed + 100 + (unsigned)e);
        long join_ms = group_roll_await_first(&s, i);
        slowest_join_ms = join_ms > slowest_join_ms ? join_ms : slowest_join_ms;
    }

    atomic_store_explicit(&pr.stop, 1, memory_order_relaxed);
    pthread_join(pr.thread, NULL);
    int64_t log_end[FAULT_MAX_PARTITIONS];
    long produced = 0;
    for (int p = 0; p < g->partitions; p++) {
        log_end[p] = plain_log_end(g->bootstraps, g->topic, p);
        cr_assert_eq(log_end[p], pr.produced[p], "partition %d: log end vs produced", p);
        produced += pr.produced[p];
    }
    cr_assert(
        fault_wait_committed_end(g->bootstraps, g->group, g->topic, g->partitions, log_end, 60000),
        "the committed offsets never reached the log end");
    for (int i = 0; i < GROUP_ROLL_MEMBERS; i++) {
        int rc = subprocess_stop(&s.members[i], SIGTERM, 30000);
        cr_assert_eq(rc, 0, "member %d exited with %d at the end", i, rc);
    }

    fault_log_t log = {0};
    for (int l = 0; l < s.log_count; l++)
        fault_log_read(&log, s.logs[l]);
    long bound = fault_assignments_at_risk(&log, log_end);
    fault_verdict_t v = fault_verdict(&log, NULL, 0, g->partitions, log_end);
    fprintf(stderr,
            "group_roll %s: produced %ld, %zu assignments, lost %ld, duplicates %ld (bound %ld), "
            "replays of acked %ld, committed unacked %ld, slowest join %ld ms\n",
            g->member_conf, produced, log.as_count, v.lost, v.duplicates, bound, v.replays_of_acked,
            v.committed_unacked, slowest_join_ms);
    cr_assert_eq(v.messages, produced);
    cr_assert_eq(v.lost, 0, "%ld messages never handled", v.lost);
    cr_assert_eq(v.replays_of_acked, 0, "%ld handles of offsets committed as acked before",
                 v.replays_of_acked);
    cr_assert_eq(v.committed_unacked, 0, "%ld offsets committed as done without an ack",
                 v.committed_unacked);
    cr_assert_leq(v.duplicates, bound, "%ld duplicates, more than the %ld at risk", v.duplicates,
                  bound);
    /* Every member had partitions at some point: the group did share. */
    cr_assert_gt(log.as_count, (size_t)g->partitions, "only %zu assignments", log.as_count);
    res->messages = v.messages;
    res->lost = v.lost;
    res->duplicates = v.duplicates;
    res->replays_of_acked = v.replays_of_acked;
    res->recovery_ms = slowest_join_ms;
    res->dup_bound = bound;
    res->bound_text = "handled, not committed as done at a reassignment";
    fault_log_free(&log);
}

/* Runs the scenario with g's members under group_protocol protocol and
 * records its figures (fault_result_record) as "rolling restart,
 * group_protocol=<protocol>: ... (<where>)". */
static inline void group_roll_record(const group_roll_t *g, const char *protocol,
                                     const char *where) {
    char scenario[200];
    snprintf(scenario, sizeof scenario,
             "rolling restart, group_protocol=%s: %d members, %d leaves and joins, producing "
             "throughout (%s)",
             protocol, GROUP_ROLL_MEMBERS, g->leaves, where);
    fault_result_t res = {.scenario = scenario};
    group_roll_run(g, &res);
    fault_result_record(&res);
}

#endif /* KAFFE_TESTS_SUPPORT_GROUP_ROLL_H */
