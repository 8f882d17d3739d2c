/* The consumer group protocols on the embedded cluster: the rolling-restart
 * scenario of support/group_roll.h (three consumer processes with async
 * out-of-order acks, members leaving and joining in turn while a producer
 * writes) under the classic protocol and under KIP-848's consumer protocol,
 * each asserting lost 0 and replays of acked 0. The consumer protocol needs
 * a librdkafka >= 2.12.0 (its mock cluster serves ConsumerGroupHeartbeat);
 * on an older one that test is skipped, saying so. */
#include "fault_helpers.h"
#include "support/group_roll.h"

static mock_cluster_t *mc;
static char dir[64];

static void start_cluster(void) {
    mc = fault_procs_setup("group_protocol", dir, sizeof dir);
#if RD_KAFKA_VERSION >= 0x020c0000
    /* The mock's default is 3 s (a broker's 5 s): a rolling restart would
     * mostly wait for heartbeats. */
    rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(mock_cluster_handle(mc), 500);
#endif
}

static void stop_cluster(void) {
    fault_procs_teardown(mc, "group_protocol", dir);
}

TestSuite(group_protocol, .init = start_cluster, .fini = stop_cluster, .timeout = 240);

enum { PARTITIONS = 6, LEAVES = 6 };

static void roll(const char *protocol, const char *member_conf) {
    char topic[64], group[64];
    snprintf(topic, sizeof topic, "roll-%s", protocol);
    snprintf(group, sizeof group, "g-roll-%s", protocol);
    cr_assert_eq(mock_cluster_create_topic(mc, topic, PARTITIONS), 0);
    group_roll_t g = {.bootstraps = mock_cluster_bootstraps(mc),
                      .topic = topic,
                      .group = group,
                      .partitions = PARTITIONS,
                      .leaves = LEAVES,
                      .member_conf = member_conf,
                      .dir = dir,
                      .join_timeout_ms = 30000};
    group_roll_record(&g, protocol, "embedded cluster");
}

Test(group_protocol, classic_rolling_restart_loses_nothing_and_replays_no_ack) {
    roll("classic", "group_protocol=classic");
}

Test(group_protocol, consumer_rolling_restart_loses_nothing_and_replays_no_ack) {
    if (rd_kafka_version() < 0x020c0000)
        cr_skip_test("group_protocol=consumer needs librdkafka >= 2.12.0; this build has %s",
                     rd_kafka_version_str());
    roll("consumer", "group_protocol=consumer");
}
