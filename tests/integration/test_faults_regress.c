/* Regressions found by the fault suite.
 *
 * inherited_acks_survive_an_early_commit: a partition assigned with commit
 * metadata (acks above the committed offset, from the previous owner) used
 * to commit, before its dispatch reached those offsets, the watermark with
 * only its own acks: the inherited acks vanished from the group's metadata
 * and the next owner handled them again (seen as "replays of acked" under
 * group churn, test_faults_churn). */
#include "consumer_helpers.h"
#include "fault_helpers.h"

static mock_cluster_t *mc;

static void start_cluster(void) {
    char err[256];
    mock_topic_t topics[] = {{"r-inherit", 1}};
    mc = mock_cluster_start(1, topics, 1, err, sizeof err);
    cr_assert_not_null(mc, "%s", err);
}

static void stop_cluster(void) {
    mock_cluster_stop(mc);
}

TestSuite(faults_regress, .init = start_cluster, .fini = stop_cluster, .timeout = 120);

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
