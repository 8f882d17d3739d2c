/* Regressions found by the fault suite.
 *
 * inherited_acks_survive_an_early_commit: a partition assigned with commit
 * metadata (acks above the committed offset, from the previous owner) used
 * to commit, before its dispatch reached those offsets, the watermark with
 * only its own acks: the inherited acks vanished from the group's metadata
 * and the next owner handled them again (seen as "replays of acked" under
 * group churn, test_faults_churn).
 *
 * a_cooperative_rebalance_settles_while_handling: a member that gives up
 * partitions in a cooperative rebalance rejoins right after its revoke.
 * kaffe's interval commits sent meanwhile waited behind its JoinGroup,
 * reached the coordinator in the next generation (ILLEGAL_GENERATION), and
 * librdkafka before 2.10.0 then dropped the generation it had just joined
 * (its issue #4059): the member lost its assignment and rejoined, and
 * whichever member committed during its JoinGroup next did the same. The
 * group never settled and the committed offsets stayed behind the log end
 * (the group-churn stall, test_faults_churn). With such a librdkafka,
 * interval commits now wait while the member rebalances; with a fixed one
 * they go on (src/common/rdkafka_compat.h), and the group settles all the
 * same.
 *
 * a_commit_during_the_rejoin_without_the_hold: the same with the hold
 * forced off, whatever the version: a fixed librdkafka settles with no
 * assignment lost; one with the bug loses an assignment (which shows the
 * hold is needed there). */
#include "consumer_helpers.h"
#include "common/rdkafka_compat.h"
#include "consumer/internal.h"
#include "fault_helpers.h"
#include "support/mock_suite.h"

MOCK_CLUSTER_SUITE(faults_regress, 1, 120, {"r-inherit", 1}, {"r-coop", 4});

static kaffe_consumer_t *start_consumer(kaffe_conf_t *conf, recorder_t *r) {
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    r->consumer = c;
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    return c;
}

Test(faults_regress, inherited_acks_survive_an_early_commit) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { N = 200, HOLE_END = 100 };
    cr_assert_eq(plain_produce(b, "r-inherit", 0, N, 0, 0), N);
    /* First owner: acks HOLE_END..N-1, not 0..HOLE_END-1. */
    recorder_t r1;
    recorder_init(&r1);
    r1.keep = 1;
    kaffe_consumer_t *c1 = start_consumer(test_conf(b, "r-inherit", "g-r-inherit", record_handler,
                                                    &r1, "async_message_ack", "true", "ordering",
                                                    "unordered", "drain_timeout_ms", "100", NULL),
                                          &r1);
    cr_assert(wait_handled(&r1, N, 30000), "handled %ld", recorder_handled(&r1));
    for (size_t i = 0; i < r1.count; i++)
        if (r1.msgs[i].offset >= HOLE_END)
            cr_assert_eq(kaffe_consumer_ack(c1, r1.msgs[i].m), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_commit(c1), KAFFE_OK);
    kaffe_consumer_destroy(c1);
    recorder_free(&r1);
    fault_done_t before;
    fault_done_read(b, "g-r-inherit", "r-inherit", 0, &before);
    cr_assert_eq(before.committed, 0);
    cr_assert(fault_done_has(&before, HOLE_END + 50), "the first owner's acks are committed");
    fault_done_free(&before);

    /* Second owner: one message in flight at a time and nothing acked, so
     * its dispatch stays far below the inherited acks; it commits now. */
    recorder_t r2;
    recorder_init(&r2);
    r2.keep = 1;
    kaffe_consumer_t *c2 = start_consumer(
        test_conf(b, "r-inherit", "g-r-inherit", record_handler, &r2, "async_message_ack", "true",
                  "max_in_flight_messages", "1", "drain_timeout_ms", "100", NULL),
        &r2);
    cr_assert(wait_handled(&r2, 1, 30000));
    cr_assert_eq(kaffe_consumer_commit(c2), KAFFE_OK);
    fault_done_t after;
    fault_done_read(b, "g-r-inherit", "r-inherit", 0, &after);
    cr_assert_eq(after.committed, 0);
    for (int64_t o = HOLE_END; o < N; o++)
        cr_assert(fault_done_has(&after, o), "inherited ack of offset %lld lost by a commit",
                  (long long)o);
    fault_done_free(&after);
    kaffe_consumer_destroy(c2);
    recorder_free(&r2);
}

/* A group member of a_cooperative_rebalance_settles_while_handling. */
typedef struct member {
    atomic_int gate;                /* 0: the handler waits (nothing is acked) */
    atomic_long entered, handled;   /* handler calls begun, finished */
    atomic_long illegal_generation; /* commits the coordinator refused so */
    atomic_long assigned, revoked;  /* rebalance callbacks, per partition */
} member_t;

/* Sync mode: the message is acked when this returns. Waits for the gate,
 * then takes a few ms, so acks (and interval commits) keep flowing. */
static int gated_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    member_t *mb = opaque;
    atomic_fetch_add(&mb->entered, 1);
    while (!atomic_load(&mb->gate))
        clock_sleep_ms(1);
    clock_sleep_ms(4);
    atomic_fetch_add(&mb->handled, 1);
    return KAFFE_OK;
}

static void member_error_cb(int status, const char *reason, void *opaque) {
    (void)reason;
    member_t *mb = opaque;
    if (status == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION)
        atomic_fetch_add(&mb->illegal_generation, 1);
}

/* Poll thread. The first revoke opens the gate: acks flow from then on,
 * while the member rejoins (cooperative: it gave up partitions). */
static void member_rebalance_cb(kaffe_consumer_t *c, int assigned, const char *topic,
                                int32_t partition, void *opaque) {
    (void)c;
    (void)topic;
    (void)partition;
    member_t *mb = opaque;
    atomic_fetch_add(assigned ? &mb->assigned : &mb->revoked, 1);
    if (!assigned)
        atomic_store(&mb->gate, 1);
}

static kaffe_consumer_t *start_member(const char *b, member_t *mb) {
    kaffe_conf_t *conf =
        test_conf(b, "r-coop", "g-r-coop", gated_handler, mb, "commit_interval_ms", "20",
                  "drain_timeout_ms", "200", "rdkafka.session.timeout.ms", "3000", NULL);
    kaffe_conf_set_error_cb(conf, member_error_cb, mb);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_set_rebalance_cb(c, member_rebalance_cb, mb), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    return c;
}

/* What one run of the cooperative rebalance saw. */
typedef struct coop_run {
    member_t first, second;
    bool settled;               /* the committed offsets reached the log end */
    long revoked[2];            /* partitions revoked before the stop (first, second) */
    long illegal_generation[2]; /* commits refused so before the stop */
    uint64_t holds[2];          /* interval-commit holds (first, second) */
    long handled, total;
} coop_run_t;

/* A member that gave up partitions or lost its assignment more than the one
 * cooperative round asks for: the first member revokes the two partitions
 * the second one takes, and nothing else is ever revoked. */
static bool assignment_lost(const coop_run_t *run) {
    return atomic_load(&run->first.revoked) > 2 || atomic_load(&run->second.revoked) > 0;
}

/* assignment_lost as it stood when the run stopped waiting (the stop
 * itself revokes everything). */
static bool assignment_lost_before_stop(const coop_run_t *run) {
    return run->revoked[0] > 2 || run->revoked[1] > 0;
}

/* Four partitions; the first member takes them all and holds its handler
 * (it acks nothing) until its first revoke: the second member's join makes
 * it give up two partitions, then rejoin at once, while its acks and
 * interval commits (every 20 ms) now flow. Waits up to settle_ms for the
 * committed offsets to reach the log end (returning early once an
 * assignment was lost when stop_on_loss), then stops both members. */
static void run_cooperative_rebalance(coop_run_t *run, int64_t settle_ms, bool stop_on_loss) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { PARTITIONS = 4 };
    long per_partition = fault_scaled(1000, 400);
    int64_t log_end[PARTITIONS];
    for (int p = 0; p < PARTITIONS; p++) {
        cr_assert_eq(plain_produce(b, "r-coop", p, (size_t)per_partition, 0, 0),
                     (size_t)per_partition);
        log_end[p] = per_partition;
    }
    memset(run, 0, sizeof *run);
    atomic_store(&run->second.gate, 1);
    kaffe_consumer_t *c1 = start_member(b, &run->first);
    int64_t deadline = clock_now_ms() + 30000;
    while (atomic_load(&run->first.entered) < 4) {
        cr_assert(clock_now_ms() < deadline, "the first member got no message");
        clock_sleep_ms(5);
    }
    kaffe_consumer_t *c2 = start_member(b, &run->second);
    deadline = clock_now_ms() + settle_ms;
    while (!run->settled && clock_now_ms() < deadline && !(stop_on_loss && assignment_lost(run)))
        run->settled = fault_wait_committed_end(b, "g-r-coop", "r-coop", PARTITIONS, log_end, 500);
    run->revoked[0] = atomic_load(&run->first.revoked);
    run->revoked[1] = atomic_load(&run->second.revoked);
    run->illegal_generation[0] = atomic_load(&run->first.illegal_generation);
    run->illegal_generation[1] = atomic_load(&run->second.illegal_generation);
    run->total = per_partition * PARTITIONS;
    run->handled = atomic_load(&run->first.handled) + atomic_load(&run->second.handled);
    cr_assert_eq(kaffe_consumer_stop(c2), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c1), KAFFE_OK);
    run->holds[0] = consumer_test_commit_holds(c1);
    run->holds[1] = consumer_test_commit_holds(c2);
    kaffe_consumer_destroy(c2);
    kaffe_consumer_destroy(c1);
    fprintf(stderr,
            "librdkafka %s: %s, handled %ld of %ld; partitions assigned %ld + %ld, revoked "
            "%ld + %ld before the stop; commits refused ILLEGAL_GENERATION %ld + %ld; "
            "interval-commit holds %llu + %llu\n",
            rd_kafka_version_str(), run->settled ? "settled" : "not settled", run->handled,
            run->total, atomic_load(&run->first.assigned), atomic_load(&run->second.assigned),
            run->revoked[0], run->revoked[1], run->illegal_generation[0],
            run->illegal_generation[1], (unsigned long long)run->holds[0],
            (unsigned long long)run->holds[1]);
}

Test(faults_regress, a_cooperative_rebalance_settles_while_handling) {
    coop_run_t run;
    run_cooperative_rebalance(&run, 60000, false);
    cr_assert(run.settled, "the committed offsets never reached the log end");
    cr_assert_geq(run.revoked[0], 2, "the first member gave up no partition");
    cr_assert(!assignment_lost_before_stop(&run), "a member lost its assignment");
    if (rdkafka_commit_during_join_drops_generation()) {
        /* Its interval commits waited for the rejoin: none reached the
         * coordinator in the next generation, so its assignment was not
         * lost (which made it hand out everything handled since its last
         * commit). */
        cr_assert_geq(run.holds[0], 1, "the first member's interval commits were not held");
        cr_assert_eq(run.illegal_generation[0], 0,
                     "commits sent during the rejoin were refused (ILLEGAL_GENERATION)");
        cr_assert_eq(run.illegal_generation[1], 0);
    } else {
        /* Nothing to hold for: interval commits went on through the
         * rebalance (a refused one is harmless there). */
        cr_assert_eq(run.holds[0] + run.holds[1], 0,
                     "interval commits were held although librdkafka %s does not need it (%s)",
                     rd_kafka_version_str(),
                     rdkafka_bug_str(RDKAFKA_BUG_COMMIT_DURING_JOIN_DROPS_GENERATION));
    }
}

Test(faults_regress, a_commit_during_the_rejoin_without_the_hold) {
    bool buggy = rdkafka_commit_during_join_drops_generation();
    rdkafka_bug_assume(RDKAFKA_BUG_COMMIT_DURING_JOIN_DROPS_GENERATION, 0);
    coop_run_t run;
    run_cooperative_rebalance(&run, buggy ? 30000 : 60000, buggy);
    cr_assert_eq(run.holds[0] + run.holds[1], 0, "interval commits were held");
    if (buggy) {
        cr_assert(assignment_lost_before_stop(&run) || !run.settled,
                  "librdkafka %s should lose an assignment when a commit is refused during "
                  "the rejoin (%s): the group settled without",
                  rd_kafka_version_str(),
                  rdkafka_bug_str(RDKAFKA_BUG_COMMIT_DURING_JOIN_DROPS_GENERATION));
    } else {
        cr_assert(run.settled, "the committed offsets never reached the log end");
        cr_assert_geq(run.revoked[0], 2, "the first member gave up no partition");
        cr_assert(!assignment_lost_before_stop(&run), "a member lost its assignment");
    }
}
