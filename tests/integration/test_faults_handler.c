/* Fault suite, handler failures under each failure policy: on_error = retry
 * (retry_exhausted = dead_letter | skip), dead_letter with its topic's
 * broker down (shorter and longer than produce_timeout_ms), pause, and stop
 * (the default) with a restart. Each scenario runs a consumer with async
 * out-of-order acks (fault_helpers.h) whose handler fails chosen messages
 * (a seeded random share, or fixed offsets), and checks with plain
 * librdkafka clients that the committed offsets reach the log end, that
 * nothing is lost (every message handled OK at least once, or, where the
 * policy says so, dead-lettered — read back from the dead-letter topic — or
 * skipped), that each failing message was attempted exactly as often as the
 * policy says, with kaffe_message_attempt() counting 1..n, and that the
 * failure counters match. Recovery, per scenario, is stated in its row.
 *
 * Duplicate bound asserted (fault_run_tally): as in the other fault tests,
 * the offsets handled and not committed as done at a (re)assignment; with
 * one member and no rebalance that is 0. Failed attempts and their retries
 * are not duplicates (the handler did not accept the message). */
#include <limits.h>

#include "fault_helpers.h"
#include "support/mock_suite.h"

MOCK_CLUSTER_SUITE(faults_handler, 3, 150);

enum { PARTITIONS = 4, DLQ_BROKER = 3 };
#define IN_FLIGHT_S "200"
#define PERMANENT INT_MAX

static long per_partition(void) {
    return fault_scaled(1000, 200);
}

/* --- the failing handler ---------------------------------------------------
 *
 * Which messages fail, and how often: a seeded share of all offsets
 * (permanent_pm per mille always, transient_pm per mille 1..transient_max
 * times), plus at most one forced offset per partition. The hook
 * (fault_run_t.fail) runs on the workers under r.lock and records every
 * handler call. */

typedef struct plan {
    fault_run_t r;
    unsigned seed;
    int permanent_pm, transient_pm, transient_max;
    int64_t forced[PARTITIONS]; /* -1: none */
    int forced_fails;           /* PERMANENT: always */
    int last_attempt;           /* the policy's last attempt (retry_max_attempts) */
    int lane_waits;             /* ordering=partition and a policy that holds the lane */
    int nacks;                  /* the plan's failures are nacks (the handler accepts all) */
    /* Under r.lock. */
    unsigned char *calls[PARTITIONS]; /* handler calls per offset (saturating) */
    unsigned char *base[PARTITIONS];  /* calls before the current consumer started */
    int64_t *first_fail_us[PARTITIONS];
    long bad_attempt; /* kaffe_message_attempt() != the call number */
    long ok[PARTITIONS];
    long failed_calls;
    long longest_wait_us;            /* first failure -> handled OK */
    int64_t wait_offset[PARTITIONS]; /* the message p's lane waits for, or -1 */
    long others_at_wait[PARTITIONS];
    long waits, others_during_waits, lane_violations;
    int64_t violation[3];            /* the first: partition, offset run, offset waited for */
    int64_t recalled_us[PARTITIONS]; /* first call of an attempt > 1 */
} plan_t;

static uint64_t plan_hash(unsigned seed, int32_t p, int64_t o) {
    uint64_t z = ((uint64_t)seed << 40) ^ ((uint64_t)(uint32_t)p << 32) ^ (uint64_t)o;
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* How many handler calls of (p, o) fail (PERMANENT: all). */
static int planned(const plan_t *pl, int32_t p, int64_t o) {
    if (pl->forced[p] == o)
        return pl->forced_fails;
    uint64_t h = plan_hash(pl->seed, p, o);
    int v = (int)(h % 1000);
    if (v < pl->permanent_pm)
        return PERMANENT;
    if (v < pl->permanent_pm + pl->transient_pm)
        return 1 + (int)((h >> 32) % (uint64_t)pl->transient_max);
    return 0;
}

static long others_ok(const plan_t *pl, int32_t p) {
    long n = 0;
    for (int q = 0; q < PARTITIONS; q++)
        n += q == p ? 0 : pl->ok[q];
    return n;
}

static int plan_fail(fault_run_t *r, kaffe_message_t *m) {
    plan_t *pl = r->fail_arg;
    int32_t p = kaffe_message_partition(m);
    int64_t o = kaffe_message_offset(m);
    int attempt = kaffe_message_attempt(m);
    int64_t now = clock_now_us();
    int fail = 0;
    pthread_mutex_lock(&r->lock);
    if (p >= 0 && p < PARTITIONS && o >= 0 && o < r->log_end[p]) {
        int calls = pl->calls[p][o] < 255 ? ++pl->calls[p][o] : 255;
        pl->bad_attempt += attempt != calls - pl->base[p][o];
        if (attempt > 1 && !pl->recalled_us[p])
            pl->recalled_us[p] = now;
        if (pl->wait_offset[p] >= 0) {
            /* p's lane waited for this message: nothing else of p may run
             * first; meanwhile the other partitions went on. */
            if (pl->wait_offset[p] != o) {
                if (pl->lane_violations == 0) {
                    pl->violation[0] = p;
                    pl->violation[1] = o;
                    pl->violation[2] = pl->wait_offset[p];
                }
                pl->lane_violations++;
            } else {
                pl->waits++;
                pl->others_during_waits += others_ok(pl, p) - pl->others_at_wait[p];
                pl->wait_offset[p] = -1;
            }
        }
        fail = !pl->nacks && calls <= planned(pl, p, o);
        if (fail) {
            pl->failed_calls++;
            if (calls == 1)
                pl->first_fail_us[p][o] = now;
            if (pl->lane_waits && calls < pl->last_attempt) {
                pl->wait_offset[p] = o;
                pl->others_at_wait[p] = others_ok(pl, p);
            }
        } else {
            pl->ok[p]++;
            if (calls > 1 && now - pl->first_fail_us[p][o] > pl->longest_wait_us)
                pl->longest_wait_us = now - pl->first_fail_us[p][o];
        }
    }
    pthread_mutex_unlock(&r->lock);
    return fail ? KAFFE_ERR_HANDLER : KAFFE_OK;
}

/* The acker's hook with nacks: the message's failures are nacks instead of
 * handler returns. A nacked message is not accepted after all (its handle
 * is taken back; its retry is the handle that counts). Acker thread. */
static int plan_nack(fault_run_t *r, kaffe_message_t *m) {
    plan_t *pl = r->fail_arg;
    int32_t p = kaffe_message_partition(m);
    int64_t o = kaffe_message_offset(m);
    int nack = 0;
    pthread_mutex_lock(&r->lock);
    if (p >= 0 && p < PARTITIONS && o >= 0 && o < r->log_end[p]) {
        nack = pl->calls[p][o] <= planned(pl, p, o);
        if (nack) {
            pl->failed_calls++;
            r->counts[p][o]--;
            if (pl->calls[p][o] == 1)
                pl->first_fail_us[p][o] = clock_now_us();
        }
    }
    pthread_mutex_unlock(&r->lock);
    return nack ? KAFFE_ERR_HANDLER : KAFFE_OK;
}

/* Produces the data (fault_run_setup) and arms the hook. Seed:
 * KAFFE_FAULTS_SEED, else the clock (printed, to repeat a run). */
static void plan_setup(plan_t *pl, const char *name, long acks_per_sec) {
    const char *s = getenv("KAFFE_FAULTS_SEED");
    unsigned seed = s && *s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)clock_now_us();
    fault_run_setup(&pl->r, mc, name, PARTITIONS, per_partition(), acks_per_sec, 0);
    pl->r.fail = plan_fail;
    pl->r.fail_arg = pl;
    pl->seed = seed;
    pl->last_attempt = PERMANENT;
    pl->forced_fails = PERMANENT;
    for (int p = 0; p < PARTITIONS; p++) {
        pl->forced[p] = -1;
        pl->wait_offset[p] = -1;
        pl->calls[p] = calloc((size_t)pl->r.log_end[p], 1);
        pl->base[p] = calloc((size_t)pl->r.log_end[p], 1);
        pl->first_fail_us[p] = calloc((size_t)pl->r.log_end[p], sizeof *pl->first_fail_us[p]);
        cr_assert(pl->calls[p] && pl->base[p] && pl->first_fail_us[p]);
    }
    fprintf(stderr, "%s: seed %u (KAFFE_FAULTS_SEED)\n", name, seed);
}

/* Before a consumer restarts: it counts attempts from 1 again. No consumer
 * runs. */
static void plan_restart(plan_t *pl) {
    for (int p = 0; p < PARTITIONS; p++)
        memcpy(pl->base[p], pl->calls[p], (size_t)pl->r.log_end[p]);
}

/* Messages the plan fails at least once / always, and the failing calls
 * planned when each is attempted at most last_attempt times. */
typedef struct plan_totals {
    long failing, permanent, failed_calls;
} plan_totals_t;

static plan_totals_t plan_totals(const plan_t *pl) {
    plan_totals_t t = {0};
    for (int p = 0; p < PARTITIONS; p++)
        for (int64_t o = 0; o < pl->r.log_end[p]; o++) {
            int n = planned(pl, p, o);
            t.failing += n > 0;
            t.permanent += n == PERMANENT;
            t.failed_calls += n > pl->last_attempt ? pl->last_attempt : n;
        }
    return t;
}

/* No lane ran a message while it waited for an earlier one (a retry, a
 * paused message, or one released unhandled by stop). */
static void assert_lane_kept(const plan_t *pl) {
    cr_assert_eq(pl->lane_violations, 0,
                 "%s: %ld handles on a waiting lane; the first: partition %lld offset %lld ran "
                 "while offset %lld waited",
                 pl->r.topic, pl->lane_violations, (long long)pl->violation[0],
                 (long long)pl->violation[1], (long long)pl->violation[2]);
}

/* Every message was called as the plan says: planned + 1 times when it
 * succeeds within last_attempt, last_attempt times when it never does. */
static void plan_check_calls(plan_t *pl) {
    for (int p = 0; p < PARTITIONS; p++)
        for (int64_t o = 0; o < pl->r.log_end[p]; o++) {
            int n = planned(pl, p, o);
            int want = n >= pl->last_attempt ? pl->last_attempt : n + 1;
            cr_assert_eq(pl->calls[p][o], want, "%s: partition %d offset %lld: %d calls, want %d",
                         pl->r.topic, p, (long long)o, pl->calls[p][o], want);
        }
    cr_assert_eq(pl->bad_attempt, 0, "%s: kaffe_message_attempt() did not count the calls",
                 pl->r.topic);
    assert_lane_kept(pl);
}

/* Counts the permanently failing messages (called last_attempt times) as
 * handled once more: dead-lettered or skipped, so not lost. */
static void plan_count_exhausted(plan_t *pl) {
    for (int p = 0; p < PARTITIONS; p++)
        for (int64_t o = 0; o < pl->r.log_end[p]; o++)
            if (planned(pl, p, o) >= pl->last_attempt && pl->r.counts[p][o] < 65535)
                pl->r.counts[p][o]++;
}

static void plan_free(plan_t *pl) {
    for (int p = 0; p < PARTITIONS; p++) {
        free(pl->calls[p]);
        free(pl->base[p]);
        free(pl->first_fail_us[p]);
    }
}

static kaffe_failure_counters_t counters(plan_t *pl) {
    kaffe_failure_counters_t k;
    cr_assert_eq(kaffe_consumer_failure_counters(pl->r.consumer, &k), KAFFE_OK);
    return k;
}

/* Waits until the committed offsets reach the log end, reads the failure
 * counters, and stops the consumer (which must stop cleanly). */
static kaffe_failure_counters_t plan_finish(plan_t *pl, int timeout_ms) {
    fault_run_t *r = &pl->r;
    cr_assert(fault_wait_committed_end(r->bootstraps, r->group, r->topic, PARTITIONS, r->log_end,
                                       timeout_ms),
              "%s: committed offsets did not reach the log end in time (handled %ld)", r->topic,
              fault_run_handled(r));
    kaffe_failure_counters_t k = counters(pl);
    cr_assert_eq(fault_run_halt(r), KAFFE_OK, "%s: the consumer stopped with an error", r->topic);
    return k;
}

/* Waits until partition p's committed offset is want. */
static void wait_committed(plan_t *pl, int32_t p, int64_t want, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms, got;
    while ((got = plain_committed(pl->r.bootstraps, pl->r.group, pl->r.topic, p, NULL)) != want) {
        cr_assert(clock_now_ms() < deadline, "%s: partition %d committed %lld, want %lld",
                  pl->r.topic, p, (long long)got, (long long)want);
        clock_sleep_ms(50);
    }
}

/* p's committed offset is o exactly, and o is not in its metadata. */
static void assert_held_at(plan_t *pl, int32_t p, int64_t o) {
    fault_done_t d;
    fault_done_read(pl->r.bootstraps, pl->r.group, pl->r.topic, p, &d);
    cr_assert_eq(d.committed, o, "%s: partition %d committed %lld, the failed message is %lld",
                 pl->r.topic, p, (long long)d.committed, (long long)o);
    cr_assert(!fault_done_has(&d, o), "%s: the failed message is committed as done", pl->r.topic);
    fault_done_free(&d);
}

/* Records the row of a tallied run with its scenario text. */
static void record_row(fault_result_t *res, const char *scenario) {
    res->scenario = scenario;
    fault_result_record(res);
}

/* Tallies the run (fault_run_tally: lost, duplicates, replays asserted),
 * records its row with recovery_ms (-1: n/a) and the scenario text, and
 * frees the plan. */
static void plan_record(plan_t *pl, long recovery_ms, const char *fmt, ...) {
    static char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fault_result_t res = {0};
    fault_run_tally(&pl->r, &res);
    res.recovery_ms = recovery_ms;
    record_row(&res, text);
    plan_free(pl);
}

/* --- the dead-letter topic, read back with a plain client ----------------- */

/* The value of header name in a plain_message_t's "name=value\n" list, as a
 * number (LLONG_MIN when absent), or compared with want (0 when equal). */
static long long header_num(const char *headers, const char *name) {
    size_t len = strlen(name);
    for (const char *h = headers; h && *h; h = strchr(h, '\n') ? strchr(h, '\n') + 1 : NULL)
        if (strncmp(h, name, len) == 0 && h[len] == '=')
            return atoll(h + len + 1);
    return LLONG_MIN;
}

static int header_is(const char *headers, const char *name, const char *want) {
    size_t len = strlen(name), wlen = strlen(want);
    for (const char *h = headers; h && *h; h = strchr(h, '\n') ? strchr(h, '\n') + 1 : NULL)
        if (strncmp(h, name, len) == 0 && h[len] == '=')
            return strncmp(h + len + 1, want, wlen) == 0 && h[len + 1 + wlen] == '\n';
    return 0;
}

/* Reads the dead-letter topic and checks each copy: the original's value
 * and provenance (topic, partition, offset, error, attempts), a message the
 * plan fails at its last attempt, each exactly once. Adds each copy to the
 * run's handle counts (dead-lettered = not lost). Returns the copies. */
static long check_dead_letters(plan_t *pl, const char *dlq, long expected, int attempts) {
    fault_run_t *r = &pl->r;
    plain_message_t *msgs = NULL;
    size_t got = plain_consume_all(r->bootstraps, dlq, (size_t)expected + 16, 1500, &msgs);
    char code[16];
    snprintf(code, sizeof code, "%d", KAFFE_ERR_HANDLER);
    unsigned char *seen[PARTITIONS];
    for (int p = 0; p < PARTITIONS; p++)
        seen[p] = calloc((size_t)r->log_end[p], 1);
    for (size_t i = 0; i < got; i++) {
        const char *h = msgs[i].headers;
        long long p = header_num(h, "kaffe.original.partition");
        long long o = header_num(h, "kaffe.original.offset");
        cr_assert(p >= 0 && p < PARTITIONS && o >= 0 && o < r->log_end[p],
                  "%s: a dead letter with no valid provenance", dlq);
        cr_assert(header_is(h, "kaffe.original.topic", r->topic));
        cr_assert(header_is(h, "kaffe.error.code", code), "%s: error code", dlq);
        cr_assert(header_is(h, "kaffe.error.text", kaffe_strerror(KAFFE_ERR_HANDLER)));
        cr_assert_eq(header_num(h, "kaffe.attempts"), attempts, "%s: attempts", dlq);
        cr_assert_gt(header_num(h, "kaffe.failed.at"), 1600000000000LL);
        char value[32];
        snprintf(value, sizeof value, "value-%lld", p * r->log_end[0] + o);
        cr_assert(msgs[i].value_len == strlen(value) &&
                      memcmp(msgs[i].value, value, msgs[i].value_len) == 0,
                  "%s: the copy of %lld/%lld is not the original", dlq, p, o);
        cr_assert_geq(planned(pl, (int32_t)p, o), pl->last_attempt,
                      "%s: partition %lld offset %lld was dead-lettered but handled OK", dlq, p, o);
        cr_assert_eq(seen[p][o]++, 0, "%s: partition %lld offset %lld dead-lettered twice", dlq, p,
                     o);
        if (r->counts[p][o] < 65535)
            r->counts[p][o]++;
    }
    cr_assert_eq((long)got, expected, "%s: %zu dead letters, want %ld", dlq, got, expected);
    plain_messages_free(msgs, got);
    for (int p = 0; p < PARTITIONS; p++)
        free(seen[p]);
    return (long)got;
}

/* --- scenarios ------------------------------------------------------------ */

/* 2% of the messages fail 1..2 times, then succeed: by the handler's
 * return, or (nacks) by the acker's nack; on_error=retry, 5 attempts, in
 * the given ordering. Runs to the committed log end; checks the calls and
 * the counters. */
static plan_totals_t run_transient_failures(plan_t *pl, const char *name, int nacks,
                                            const char *ordering) {
    plan_setup(pl, name, 20000);
    pl->transient_pm = 20;
    pl->transient_max = 2;
    pl->last_attempt = 5;
    pl->nacks = nacks;
    pl->r.nack = nacks ? plan_nack : NULL;
    pl->lane_waits = !nacks && strcmp(ordering, "partition") == 0;
    plan_totals_t t = plan_totals(pl);
    cr_assert_gt(t.failing, PARTITIONS, "the seed failed too few messages");
    fault_run_launch(&pl->r, IN_FLIGHT_S, "ordering", ordering, "on_error", "retry",
                     "retry_max_attempts", "5", "retry_initial_backoff_ms", "40",
                     "retry_max_backoff_ms", "160", NULL);
    kaffe_failure_counters_t k = plan_finish(pl, 90000);
    plan_check_calls(pl);
    cr_assert_eq(pl->failed_calls, t.failed_calls);
    cr_assert_eq(k.failures, (uint64_t)t.failed_calls);
    cr_assert_eq(k.retries, (uint64_t)t.failed_calls);
    cr_assert_eq(k.skipped + k.dead_lettered + k.dead_letter_failed + k.paused, 0);
    return t;
}

/* Partition order: a message waiting for its retry holds back its
 * partition (only). Recovery: the longest first failure -> handled OK. */
Test(faults_handler, retry_transient_failures) {
    plan_t pl = {0};
    plan_totals_t t = run_transient_failures(&pl, "h-retry", 0, "partition");
    cr_assert_eq(pl.waits, t.failed_calls, "every wait ended with its own message's retry");
    cr_assert_gt(pl.others_during_waits, 0, "no other partition went on during a backoff");
    plan_record(&pl, pl.longest_wait_us / 1000,
                "handler fails, on_error=retry: %ld msgs fail 1-2 times (%ld retries), partition "
                "order; %ld handled on other partitions during backoffs",
                t.failing, t.failed_calls, pl.others_during_waits);
}

/* Async failures: nacked by the acker, out of order (unordered: a nacked
 * message's retry goes to the back). Recovery: the longest first nack ->
 * last handle. */
Test(faults_handler, retry_async_nacks) {
    plan_t pl = {0};
    plan_totals_t t = run_transient_failures(&pl, "h-nack", 1, "unordered");
    plan_record(&pl, pl.longest_wait_us / 1000,
                "handler fails, async nack + on_error=retry: %ld msgs nacked 1-2 times (%ld "
                "retries), acks out of order",
                t.failing, t.failed_calls);
}

/* 1% fail always (dead-lettered after 2 attempts), 1% once. */
Test(faults_handler, retry_exhausted_dead_letter) {
    plan_t pl = {0};
    plan_setup(&pl, "h-dlq", 20000);
    pl.permanent_pm = 10;
    pl.transient_pm = 10;
    pl.transient_max = 1;
    pl.last_attempt = 2;
    plan_totals_t t = plan_totals(&pl);
    cr_assert_gt(t.permanent, 0, "the seed failed no message permanently");
    const char *dlq = "h-dlq-dead";
    cr_assert_eq(mock_cluster_create_topic(mc, dlq, 1), 0);
    fault_run_launch(&pl.r, IN_FLIGHT_S, "on_error", "retry", "retry_max_attempts", "2",
                     "retry_initial_backoff_ms", "20", "retry_max_backoff_ms", "50",
                     "retry_exhausted", "dead_letter", "dead_letter_topic", dlq, NULL);
    kaffe_failure_counters_t k = plan_finish(&pl, 90000);
    plan_check_calls(&pl);
    cr_assert_eq(k.dead_lettered, (uint64_t)t.permanent);
    cr_assert_eq(k.dead_letter_failed, 0);
    cr_assert_eq(k.failures, (uint64_t)t.failed_calls);
    cr_assert_eq(k.retries, (uint64_t)(t.failed_calls - t.permanent));
    check_dead_letters(&pl, dlq, t.permanent, 2);
    plan_record(&pl, -1,
                "handler fails, retry_exhausted=dead_letter: %ld msgs fail always, %ld once; "
                "%ld dead-lettered, each once in the DLQ",
                t.permanent, t.failing - t.permanent, t.permanent);
}

/* One message fails on partitions 0 and 1 each (partitions 2 and 3 have
 * none), forced_fails times. */
static void force_two(plan_t *pl, int fails) {
    pl->forced[0] = pl->r.log_end[0] / 2;
    pl->forced[1] = pl->r.log_end[1] / 3;
    pl->forced_fails = fails;
}

/* Waits until the plan saw n failing calls. */
static void wait_failed_calls(plan_t *pl, long n, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&pl->r.lock);
        long got = pl->failed_calls;
        pthread_mutex_unlock(&pl->r.lock);
        if (got >= n)
            return;
        cr_assert(clock_now_ms() < deadline, "%s: %ld of %ld failures", pl->r.topic, got, n);
        clock_sleep_ms(10);
    }
}

/* While the failed messages of partitions 0 and 1 wait (a dead-letter
 * produce, a pause), those partitions stay at them; 2 and 3 reach their log
 * end. */
static void assert_held_while_others_advance(plan_t *pl) {
    for (int32_t p = 2; p < PARTITIONS; p++)
        wait_committed(pl, p, pl->r.log_end[p], 30000);
    for (int32_t p = 0; p < 2; p++) {
        wait_committed(pl, p, pl->forced[p], 30000);
        assert_held_at(pl, p, pl->forced[p]);
    }
}

/* A dead-letter outage: topic "<name>", its dead-letter topic "<name>-dead"
 * whose only partition is led by DLQ_BROKER (the source topic's by the
 * others, the group coordinator is broker 1), DLQ_BROKER down; then a
 * consumer with on_error=dead_letter starts and fails force_two's messages
 * once each. */
static void dead_letter_outage_start(plan_t *pl, const char *name, char *dlq, size_t dlq_size,
                                     const char *produce_timeout_ms, const char *ordering) {
    plan_setup(pl, name, 20000);
    force_two(pl, PERMANENT);
    pl->last_attempt = 1;
    snprintf(dlq, dlq_size, "%s-dead", name);
    rd_kafka_mock_cluster_t *h = mock_cluster_handle(mc);
    cr_assert_eq(mock_cluster_create_topic(mc, dlq, 1), 0);
    cr_assert_eq(rd_kafka_mock_partition_set_leader(h, dlq, 0, DLQ_BROKER), 0);
    for (int32_t p = 0; p < PARTITIONS; p++)
        cr_assert_eq(rd_kafka_mock_partition_set_leader(h, pl->r.topic, p, 1 + p % 2), 0);
    cr_assert_eq(rd_kafka_mock_coordinator_set(h, "group", pl->r.group, 1), 0);
    cr_assert_eq(rd_kafka_mock_broker_set_down(h, DLQ_BROKER), 0);
    fault_run_launch(&pl->r, IN_FLIGHT_S, "on_error", "dead_letter", "dead_letter_topic", dlq,
                     "produce_timeout_ms", produce_timeout_ms, "ordering", ordering, NULL);
}

/* DLQ_BROKER comes back: the fault is over (returned: when). */
static int64_t dead_letter_outage_end(plan_t *pl) {
    cr_assert_eq(rd_kafka_mock_broker_set_up(mock_cluster_handle(mc), DLQ_BROKER), 0);
    fault_run_fault_over(&pl->r);
    return clock_now_us();
}

/* DLQ_BROKER is back (the fault is over at up_us); waits for the committed
 * log end, checks both messages are dead-lettered once (and, with
 * check_calls, every message called as planned: only one consumer ran),
 * and records the row with recovery = up_us -> committed log end. */
static void dead_letter_outage_finish(plan_t *pl, const char *dlq, int64_t up_us, int check_calls,
                                      const char *scenario) {
    kaffe_failure_counters_t k = plan_finish(pl, 60000);
    long recovery_ms = (long)((clock_now_us() - up_us) / 1000); /* within the 100 ms poll */
    /* Only now: before the committed log end, messages behind the held
     * ones may still be on their way to the handler. */
    if (check_calls)
        plan_check_calls(pl);
    cr_assert_eq(pl->bad_attempt, 0);
    cr_assert_eq(k.dead_lettered, 2);
    check_dead_letters(pl, dlq, 2, 1);
    plan_record(pl, recovery_ms, "%s", scenario);
}

/* The dead-letter topic's broker is down when the two messages fail; the
 * produce waits in librdkafka's queue, within produce_timeout_ms: the two
 * are not acked, while the partitions go on; then the broker comes back
 * and the produce completes. */
Test(faults_handler, dead_letter_topic_unavailable_then_back) {
    plan_t pl = {0};
    char dlq[64];
    dead_letter_outage_start(&pl, "h-dlqdown", dlq, sizeof dlq, "60000", "unordered");
    wait_failed_calls(&pl, 2, 30000);
    assert_held_while_others_advance(&pl);
    kaffe_failure_counters_t k = counters(&pl);
    cr_assert_eq(k.dead_lettered + k.dead_letter_failed, 0, "the dead-letter produce completed");
    /* Still held a little later. */
    clock_sleep_ms(300);
    for (int32_t p = 0; p < 2; p++)
        assert_held_at(&pl, p, pl.forced[p]);
    int64_t up_us = dead_letter_outage_end(&pl);
    dead_letter_outage_finish(&pl, dlq, up_us, 1,
                              "handler fails, on_error=dead_letter, DLQ leader down (within "
                              "produce_timeout_ms): 2 msgs held uncommitted, other partitions "
                              "at log end; then dead-lettered");
}

/* As above, but the outage outlives produce_timeout_ms: the consumer stops
 * with the produce's error, the messages stay uncommitted, and a consumer
 * restarted after the broker is back dead-letters them. */
Test(faults_handler, dead_letter_topic_unavailable_longer_than_produce_timeout) {
    plan_t pl = {0};
    char dlq[64];
    /* Partition order: everything before a failed message is handled (and
     * acked in the drain) before it fails. */
    dead_letter_outage_start(&pl, "h-dlqlong", dlq, sizeof dlq, "1500", "partition");
    cr_assert_eq(kaffe_consumer_wait(pl.r.consumer, 60000), KAFFE_OK);
    kaffe_failure_counters_t k = counters(&pl);
    cr_assert_geq(k.dead_letter_failed, 1);
    cr_assert_eq(k.dead_lettered, 0);
    kaffe_status_t st = fault_run_halt(&pl.r);
    cr_assert(st != KAFFE_OK && st != KAFFE_ERR_HANDLER, "stopped with %s", kaffe_err_name(st));
    for (int32_t p = 0; p < 2; p++) {
        pthread_mutex_lock(&pl.r.lock);
        int failed = pl.calls[p][pl.forced[p]] > 0;
        pthread_mutex_unlock(&pl.r.lock);
        if (failed)
            assert_held_at(&pl, p, pl.forced[p]);
    }
    int64_t up_us = dead_letter_outage_end(&pl);
    plan_restart(&pl);
    fault_run_launch(&pl.r, IN_FLIGHT_S, "on_error", "dead_letter", "dead_letter_topic", dlq,
                     "produce_timeout_ms", "30000", "ordering", "partition", NULL);
    dead_letter_outage_finish(&pl, dlq, up_us, 0,
                              "handler fails, on_error=dead_letter, DLQ leader down > "
                              "produce_timeout_ms: consumer stops, msg uncommitted; restarted, "
                              "dead-letters it");
}

/* 1% fail always: skipped (acked unhandled) after 3 attempts. */
Test(faults_handler, retry_exhausted_skip) {
    plan_t pl = {0};
    plan_setup(&pl, "h-skip", 20000);
    pl.permanent_pm = 10;
    pl.last_attempt = 3;
    plan_totals_t t = plan_totals(&pl);
    cr_assert_gt(t.permanent, 0, "the seed failed no message");
    fault_run_launch(&pl.r, IN_FLIGHT_S, "on_error", "retry", "retry_max_attempts", "3",
                     "retry_initial_backoff_ms", "20", "retry_max_backoff_ms", "50",
                     "retry_exhausted", "skip", NULL);
    kaffe_failure_counters_t k = plan_finish(&pl, 90000);
    plan_check_calls(&pl);
    cr_assert_eq(k.skipped, (uint64_t)t.permanent);
    cr_assert_eq(k.failures, (uint64_t)t.failed_calls);
    cr_assert_eq(k.retries, (uint64_t)(2 * t.permanent));
    cr_assert_eq(k.dead_lettered + k.paused, 0);
    plan_count_exhausted(&pl);
    plan_record(&pl, -1,
                "handler fails, retry_exhausted=skip: %ld msgs fail always, %ld skipped after 3 "
                "attempts (counted as handled)",
                t.permanent, (long)k.skipped);
}

/* One message fails once on partitions 0 and 1: each pauses its partition
 * (partition order) until the application resumes it. */
static const char *const PAUSE_CONF[] = {"ordering", "partition", "on_error", "pause"};

/* Starts a consumer whose handler fails force_two's messages once, with
 * on_error=pause, and waits until both are paused, holding their
 * partitions (nothing after them handled, committed exactly at them) while
 * the other partitions reach their log end. Returns the messages handled
 * on the other partitions. */
static long pause_start(plan_t *pl, const char *name) {
    plan_setup(pl, name, 20000);
    force_two(pl, 1);
    pl->lane_waits = 1;
    fault_run_launch(&pl->r, IN_FLIGHT_S, PAUSE_CONF[0], PAUSE_CONF[1], PAUSE_CONF[2],
                     PAUSE_CONF[3], NULL);
    wait_failed_calls(pl, 2, 30000);
    assert_held_while_others_advance(pl);
    cr_assert_eq(counters(pl).paused, 2);
    pthread_mutex_lock(&pl->r.lock);
    for (int32_t p = 0; p < 2; p++)
        for (int64_t o = pl->forced[p]; o < pl->r.log_end[p]; o++)
            cr_assert_eq(pl->r.counts[p][o], 0, "partition %d went on past its paused message", p);
    long others = pl->ok[2] + pl->ok[3];
    pthread_mutex_unlock(&pl->r.lock);
    return others;
}

Test(faults_handler, pause_then_resume) {
    plan_t pl = {0};
    long others = pause_start(&pl, "h-pause");
    kaffe_failure_counters_t k;
    cr_assert_eq(kaffe_consumer_resume_partition(pl.r.consumer, pl.r.topic, 2),
                 KAFFE_ERR_UNKNOWN_PARTITION);
    int64_t resumed_us = clock_now_us();
    for (int32_t p = 0; p < 2; p++)
        cr_assert_eq(kaffe_consumer_resume_partition(pl.r.consumer, pl.r.topic, p), KAFFE_OK);
    fault_run_fault_over(&pl.r);
    k = plan_finish(&pl, 60000);
    plan_check_calls(&pl);
    cr_assert_eq(pl.waits, 2);
    cr_assert_eq(k.paused, 2);
    cr_assert_eq(k.failures, 2);
    long recovery_us = 0;
    for (int32_t p = 0; p < 2; p++) {
        cr_assert_gt(pl.recalled_us[p], resumed_us, "partition %d redelivered before resume", p);
        if (pl.recalled_us[p] - resumed_us > recovery_us)
            recovery_us = (long)(pl.recalled_us[p] - resumed_us);
    }
    /* Recovery: resume -> the paused message handled. */
    plan_record(&pl, recovery_us / 1000,
                "handler fails, on_error=pause: 2 partitions paused at the failed msg, %ld "
                "handled on the others meanwhile; resumed, redelivered",
                others);
}

/* The default: the consumer stops at the failed message; a restarted
 * consumer with the handler fixed redelivers from it. */
Test(faults_handler, stop_then_restart_fixed) {
    plan_t pl = {0};
    plan_setup(&pl, "h-stop", 20000);
    pl.forced[0] = pl.r.log_end[0] / 2;
    pl.last_attempt = 1;
    fault_run_launch(&pl.r, IN_FLIGHT_S, "ordering", "partition", NULL);
    cr_assert_eq(kaffe_consumer_wait(pl.r.consumer, 60000), KAFFE_OK);
    kaffe_failure_counters_t k = counters(&pl);
    cr_assert_eq(k.failures, 1);
    cr_assert_eq(fault_run_halt(&pl.r), KAFFE_ERR_HANDLER);
    assert_held_at(&pl, 0, pl.forced[0]);
    /* The handler is fixed; a new consumer starts from the committed state. */
    pl.forced[0] = -1;
    plan_restart(&pl);
    fault_run_fault_over(&pl.r);
    fault_run_launch(&pl.r, IN_FLIGHT_S, "ordering", "partition", NULL);
    fault_result_t res = {0};
    fault_run_finish(&pl.r, &res, 60000);
    cr_assert_eq(pl.bad_attempt, 0);
    record_row(&res, "handler fails, on_error=stop (default): stops at the failed msg; "
                     "restarted with the handler fixed");
    plan_free(&pl);
}

/* Paused messages that are never resumed: stop releases them unhandled
 * (their partitions stay committed at them) and a restarted consumer
 * redelivers them. */
Test(faults_handler, pause_never_resumed_then_restart) {
    plan_t pl = {0};
    pause_start(&pl, "h-pausestop");
    cr_assert_eq(fault_run_halt(&pl.r), KAFFE_OK);
    for (int32_t p = 0; p < 2; p++)
        assert_held_at(&pl, p, pl.forced[p]);
    /* The handler now succeeds on them (they failed once already). */
    plan_restart(&pl);
    fault_run_fault_over(&pl.r);
    fault_run_launch(&pl.r, IN_FLIGHT_S, PAUSE_CONF[0], PAUSE_CONF[1], PAUSE_CONF[2], PAUSE_CONF[3],
                     NULL);
    fault_result_t res = {0};
    fault_run_finish(&pl.r, &res, 60000);
    cr_assert_eq(pl.bad_attempt, 0);
    assert_lane_kept(&pl);
    for (int32_t p = 0; p < 2; p++)
        cr_assert_eq(pl.calls[p][pl.forced[p]], 2, "partition %d: the paused message", p);
    record_row(&res, "handler fails, on_error=pause, never resumed: stop releases the 2 paused "
                     "msgs uncommitted; restarted, redelivers them");
    plan_free(&pl);
}
