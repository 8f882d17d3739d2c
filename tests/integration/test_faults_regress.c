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
 * librdkafka 2.0.2 then dropped the generation it had just joined (its
 * issue #4059): the member lost its assignment and rejoined, and whichever
 * member committed during its JoinGroup next did the same. The group never
 * settled and the committed offsets stayed behind the log end (the
 * group-churn stall, test_faults_churn). Interval commits now wait while
 * the member rebalances. */
#include "consumer_helpers.h"
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

Test(faults_regress, a_cooperative_rebalance_settles_while_handling) {
    const char *b = mock_cluster_bootstraps(mc);
    enum { PARTITIONS = 4 };
    long per_partition = fault_scaled(1000, 400);
    int64_t log_end[PARTITIONS];
    for (int p = 0; p < PARTITIONS; p++) {
        cr_assert_eq(plain_produce(b, "r-coop", p, (size_t)per_partition, 0, 0),
                     (size_t)per_partition);
        log_end[p] = per_partition;
    }
    /* The first member takes all four partitions; its handler waits, so it
     * acks nothing and has nothing new to commit until its first revoke. */
    member_t first = {0}, second = {0};
    atomic_store(&second.gate, 1);
    kaffe_consumer_t *c1 = start_member(b, &first);
    int64_t deadline = clock_now_ms() + 30000;
    while (atomic_load(&first.entered) < 4) {
        cr_assert(clock_now_ms() < deadline, "the first member got no message");
        clock_sleep_ms(5);
    }
    /* The second member's join makes it give up two partitions: revoke, the
     * rest of the round, then a rejoin at once, while acks now flow. */
    kaffe_consumer_t *c2 = start_member(b, &second);
    int reached = fault_wait_committed_end(b, "g-r-coop", "r-coop", PARTITIONS, log_end, 60000);
    long total = per_partition * PARTITIONS;
    long handled = atomic_load(&first.handled) + atomic_load(&second.handled);
    fprintf(stderr,
            "a_cooperative_rebalance_settles: handled %ld of %ld; partitions assigned %ld + %ld, "
            "revoked %ld + %ld; commits refused ILLEGAL_GENERATION %ld + %ld\n",
            handled, total, atomic_load(&first.assigned), atomic_load(&second.assigned),
            atomic_load(&first.revoked), atomic_load(&second.revoked),
            atomic_load(&first.illegal_generation), atomic_load(&second.illegal_generation));
    cr_assert(reached, "the committed offsets never reached the log end");
    cr_assert_geq(atomic_load(&first.revoked), 2, "the first member gave up no partition");
    /* Its interval commits waited for the rejoin: none reached the
     * coordinator in the next generation, so its assignment was not lost
     * (which made it hand out everything handled since its last commit). */
    cr_assert_eq(atomic_load(&first.illegal_generation), 0,
                 "commits sent during the rejoin were refused (ILLEGAL_GENERATION)");
    cr_assert_eq(atomic_load(&second.illegal_generation), 0);
    cr_assert_eq(kaffe_consumer_stop(c2), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c1), KAFFE_OK);
    kaffe_consumer_destroy(c2);
    kaffe_consumer_destroy(c1);
}
