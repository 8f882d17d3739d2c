/* Fault suite, broker faults: a broker down and up mid-run, all brokers down
 * and up, partition leaders moving, the group coordinator moving, raised
 * round-trip time. Each scenario
 * consumes data it produced (async, out-of-order acks) on a 3-broker
 * embedded cluster, injects the fault in the middle of the run, and checks
 * with a plain client that committed offsets reach the log end, nothing is
 * lost and duplicates stay within the bound (see fault_helpers.h).
 *
 * Duplicate bound asserted: the sum, over the (re)assignments the fault
 * caused, of the offsets already handled and not committed as done in the
 * state the partition was assigned with. While the member stays in the
 * group, a revoke drains and commits, so that is at most the in-flight
 * (unacked) messages; when the group expels it (an outage longer than the
 * session timeout, counting librdkafka's reconnect backoff) the revoke's
 * commit fails and what was acked since the last successful commit is
 * handed out again too. */
#include "fault_helpers.h"
#include "support/mock_suite.h"

MOCK_CLUSTER_SUITE(faults_broker, 3, 150);

enum { PARTITIONS = FAULT_MIDRUN_PARTITIONS };

Test(faults_broker, one_broker_down_then_up) {
    fault_run_t r;
    fault_run_start_midrun(&r, mc, "f-down1");
    rd_kafka_mock_cluster_t *h = mock_cluster_handle(mc);
    /* Broker 1 leads partition 0 (set here) and whatever else it holds. */
    cr_assert_eq(rd_kafka_mock_partition_set_leader(h, r.topic, 0, 1), 0);
    cr_assert_eq(rd_kafka_mock_broker_set_down(h, 1), 0);
    clock_sleep_ms(3000);
    cr_assert_eq(rd_kafka_mock_broker_set_up(h, 1), 0);
    fault_run_fault_over(&r);
    fault_run_finish_and_record(&r, "one broker (leader of partition 0) down 3 s, then up");
}

Test(faults_broker, all_brokers_down_then_up) {
    fault_run_t r;
    fault_run_start_midrun(&r, mc, "f-downall");
    rd_kafka_mock_cluster_t *h = mock_cluster_handle(mc);
    for (int32_t b = 1; b <= 3; b++)
        cr_assert_eq(rd_kafka_mock_broker_set_down(h, b), 0);
    long before = fault_run_handled(&r);
    clock_sleep_ms(3000);
    for (int32_t b = 1; b <= 3; b++)
        cr_assert_eq(rd_kafka_mock_broker_set_up(h, b), 0);
    fault_run_fault_over(&r);
    /* While every broker was down, at most what was already fetched (the
     * in-flight limit per partition, plus librdkafka's queue) was handled. */
    cr_assert_lt(fault_run_handled(&r) - before, r.messages, "the outage did not stop fetching");
    fault_run_finish_and_record(&r, "all 3 brokers down 3 s, then up");
}

Test(faults_broker, partition_leaders_move) {
    fault_run_t r;
    fault_run_start_midrun(&r, mc, "f-leader");
    rd_kafka_mock_cluster_t *h = mock_cluster_handle(mc);
    /* Six moves, 300 ms apart: every partition's leader visits each broker. */
    for (int move = 1; move <= 6; move++) {
        for (int32_t p = 0; p < PARTITIONS; p++)
            cr_assert_eq(
                rd_kafka_mock_partition_set_leader(h, r.topic, p, (int32_t)((p + move) % 3) + 1),
                0);
        clock_sleep_ms(300);
    }
    fault_run_fault_over(&r);
    fault_run_finish_and_record(&r, "partition leaders move 6 times, 300 ms apart");
}

Test(faults_broker, raised_round_trip_time) {
    fault_run_t r;
    fault_run_start_midrun(&r, mc, "f-rtt");
    rd_kafka_mock_cluster_t *h = mock_cluster_handle(mc);
    for (int32_t b = 1; b <= 3; b++)
        cr_assert_eq(rd_kafka_mock_broker_set_rtt(h, b, 500), 0);
    clock_sleep_ms(2500);
    for (int32_t b = 1; b <= 3; b++)
        cr_assert_eq(rd_kafka_mock_broker_set_rtt(h, b, 0), 0);
    fault_run_fault_over(&r);
    fault_run_finish_and_record(&r, "round-trip time 500 ms on all brokers for 2.5 s");
}

Test(faults_broker, group_coordinator_moves) {
    fault_run_t r;
    fault_run_start_midrun(&r, mc, "f-coord");
    rd_kafka_mock_cluster_t *h = mock_cluster_handle(mc);
    /* Four moves, 200 ms apart (two commit intervals each): commits and
     * heartbeats in flight meet NOT_COORDINATOR and must find the new one;
     * the consumer must neither stop nor lose an ack. */
    for (int move = 1; move <= 4; move++) {
        cr_assert_eq(rd_kafka_mock_coordinator_set(h, "group", r.group, (int32_t)(move % 3) + 1),
                     0);
        clock_sleep_ms(200);
    }
    fault_run_fault_over(&r);
    fault_run_finish_and_record(&r, "group coordinator moves 4 times, 200 ms apart");
}
