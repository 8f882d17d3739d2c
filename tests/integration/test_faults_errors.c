/* Fault suite, injected request errors (rd_kafka_mock_push_request_errors)
 * on OffsetCommit, Heartbeat, JoinGroup/SyncGroup and Fetch, each mid-run
 * against a consumer with async out-of-order acks; checks as in
 * fault_helpers.h (committed offsets reach the log end, lost == 0,
 * duplicates within the bound, no acked-and-committed message handled
 * again after a reassignment).
 *
 * Duplicate bound asserted (fault_run_finish): the sum, over the
 * (re)assignments the errors force, of the offsets handled and not committed
 * as done in the state the partition was assigned with (in-flight messages,
 * plus acks since the last successful commit when the member was expelled);
 * acked offsets above the watermark travel in the commit metadata and are
 * never handled again. */
#include "fault_helpers.h"
#include "support/mock_suite.h"

MOCK_CLUSTER_SUITE(faults_errors, 1, 150);

enum { PARTITIONS = FAULT_MIDRUN_PARTITIONS };
#define IN_FLIGHT_S FAULT_MIDRUN_IN_FLIGHT

/* Commits that fail must be retried: every message is handled first with
 * acks held back, then the errors are queued, then the acks are released.
 * The commits of the final state hit the errors, and the committed offset
 * still has to reach the log end while the consumer runs. */
Test(faults_errors, offset_commit_errors_are_retried) {
    fault_run_t r;
    /* Fewer messages than the in-flight limit: all are handled unacked. */
    long pp = 150;
    fault_run_start(&r, mc, "e-commit", PARTITIONS, pp, IN_FLIGHT_S, 2000, 1, NULL);
    fault_run_wait_handled(&r, pp * PARTITIONS, 60000);
    rd_kafka_mock_cluster_t *h = mock_cluster_handle(mc);
    /* Errors librdkafka hands back to the application (it does not retry
     * them itself), interleaved with ones it retries internally. */
    rd_kafka_mock_push_request_errors(
        h, FAULT_API_OFFSET_COMMIT, 12, RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE,
        RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE, RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE,
        RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE, RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE,
        RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE, RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE,
        RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE);
    atomic_store(&r.hold, 0);
    fault_run_fault_over(&r);
    /* Wait for the committed end first (in finish), then check the errors
     * were really seen: the end was reached through failed commits. */
    fault_result_t res = {.scenario = "OffsetCommit fails 12 times in a row (final commits)"};
    int64_t released_us = clock_now_us();
    int reached =
        fault_wait_committed_end(r.bootstraps, r.group, r.topic, PARTITIONS, r.log_end, 60000);
    cr_assert(reached, "the committed offsets never reached the log end");
    cr_assert_geq(atomic_load(&r.commit_failures), 5, "only %ld commit failures reported",
                  atomic_load(&r.commit_failures));
    long recovery_ms = (long)((clock_now_us() - released_us) / 1000);
    fault_run_finish(&r, &res, 10000);
    /* Recovery here: from the acks' release to the committed log end. */
    res.recovery_ms = recovery_ms;
    fault_result_record(&res);
}

Test(faults_errors, offset_commit_errors_mid_run) {
    fault_run_t r;
    fault_run_start_midrun(&r, mc, "e-commit-mid");
    rd_kafka_mock_push_request_errors(
        mock_cluster_handle(mc), FAULT_API_OFFSET_COMMIT, 8, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_INVALID_COMMIT_OFFSET_SIZE);
    fault_run_fault_over(&r);
    fault_run_finish_and_record(&r, "OffsetCommit errors mid-run (8 mixed)");
}

/* Waits until some partition was assigned again (a rejoin happened). */
static void wait_reassigned(fault_run_t *r, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        long assignments = r->assignments;
        pthread_mutex_unlock(&r->lock);
        if (assignments > PARTITIONS)
            return;
        cr_assert(clock_now_ms() < deadline, "%s: the injected errors caused no reassignment",
                  r->topic);
        clock_sleep_ms(10);
    }
}

Test(faults_errors, heartbeat_errors_force_rejoins) {
    fault_run_t r;
    fault_run_start_midrun(&r, mc, "e-heartbeat");
    rd_kafka_mock_push_request_errors(
        mock_cluster_handle(mc), FAULT_API_HEARTBEAT, 4, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID);
    fault_run_fault_over(&r);
    /* Up to two JoinGroup holds of session - 1 s, and a stale member's expiry. */
    wait_reassigned(&r, 60000);
    fault_run_finish_and_record(&r,
                                "Heartbeat errors (rebalance in progress, unknown member, ...)");
}

Test(faults_errors, join_and_sync_group_errors) {
    rd_kafka_mock_cluster_t *h = mock_cluster_handle(mc);
    /* Errors on the first join too: queued before the consumer starts. */
    rd_kafka_mock_push_request_errors(h, FAULT_API_JOIN_GROUP, 2,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
    rd_kafka_mock_push_request_errors(h, FAULT_API_SYNC_GROUP, 1,
                                      RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
    fault_run_t r;
    fault_run_start_midrun(&r, mc, "e-join");
    /* Mid-run: force a rejoin, whose JoinGroup and SyncGroup fail first. */
    rd_kafka_mock_push_request_errors(h, FAULT_API_JOIN_GROUP, 2,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                                      RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
    rd_kafka_mock_push_request_errors(h, FAULT_API_SYNC_GROUP, 2,
                                      RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
    rd_kafka_mock_push_request_errors(h, FAULT_API_HEARTBEAT, 1,
                                      RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
    fault_run_fault_over(&r);
    /* A cooperative rejoin that keeps the assignment calls no rebalance
     * callback, so a reassignment is not required here (it happens when the
     * mock rejects the commits of the old generation meanwhile). */
    fault_run_finish_and_record(&r, "JoinGroup/SyncGroup errors at start and on a forced rejoin");
}

Test(faults_errors, fetch_errors) {
    fault_run_t r;
    fault_run_start_midrun(&r, mc, "e-fetch");
    rd_kafka_mock_push_request_errors(
        mock_cluster_handle(mc), FAULT_API_FETCH, 8, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
    fault_run_fault_over(&r);
    fault_run_finish_and_record(&r, "Fetch errors (8 mixed: not leader, timeout, storage, ...)");
}
