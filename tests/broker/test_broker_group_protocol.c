/* The consumer group protocols on the real broker: the rolling-restart
 * scenario of support/group_roll.h (three consumer processes with async
 * out-of-order acks, members leaving and joining in turn while a producer
 * writes), under the classic protocol and under KIP-848's consumer
 * protocol, each asserting lost 0 and replays of acked 0.
 *
 * The consumer protocol needs librdkafka >= 2.12.0 (this build's) and a
 * Kafka >= 4.0 broker (KAFFE_BROKER_KAFKA_VERSION in the broker's env
 * file); otherwise that test is skipped, saying which is missing. The
 * classic one runs on every broker. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "support/broker_env.h"
#include "support/group_roll.h"

static char dir[64];

static void setup(void) {
    char err[512];
    cr_assert(broker_env_load(err, sizeof err), "%s", err);
    snprintf(dir, sizeof dir, "/tmp/kaffe-broker-roll-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    if (getenv("KAFFE_FAULTS_KEEP")) {
        fprintf(stderr, "group_protocol: member logs kept in %s\n", dir);
        return;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "group_protocol: could not remove %s\n", dir);
}

TestSuite(broker_group_protocol, .init = setup, .fini = teardown, .timeout = 280);

enum { PARTITIONS = 6, LEAVES = 6 };

static void roll(const char *protocol, const char *member_conf) {
    char topic[128], group[160], err[512];
    broker_unique_topic(topic, sizeof topic, protocol);
    snprintf(group, sizeof group, "g-%s", topic);
    cr_assert_eq(broker_create_topic(topic, PARTITIONS, err, sizeof err), 0, "%s", err);
    group_roll_t g = {.bootstraps = broker_env("KAFFE_BROKER_PLAINTEXT"),
                      .topic = topic,
                      .group = group,
                      .partitions = PARTITIONS,
                      .leaves = LEAVES,
                      .member_conf = member_conf,
                      .dir = dir,
                      .join_timeout_ms = 60000};
    char where[64];
    snprintf(where, sizeof where, "Kafka %s",
             broker_env("KAFFE_BROKER_KAFKA_VERSION") ? broker_env("KAFFE_BROKER_KAFKA_VERSION")
                                                      : "broker");
    group_roll_record(&g, protocol, where);
}

/* The broker's group.min.session.timeout.ms is 6000 (Kafka's default):
 * fault_consumer's 3 s session would be refused. */
Test(broker_group_protocol, classic_rolling_restart_loses_nothing_and_replays_no_ack) {
    roll("classic", "group_protocol=classic;rdkafka.session.timeout.ms=6000;"
                    "rdkafka.heartbeat.interval.ms=500");
}

Test(broker_group_protocol, consumer_rolling_restart_loses_nothing_and_replays_no_ack) {
    if (rd_kafka_version() < 0x020c0000)
        cr_skip_test("group_protocol=consumer needs librdkafka >= 2.12.0; this build has %s "
                     "(configure with -DKAFFE_RDKAFKA_PREFIX=$(bash scripts/rdkafka.sh))",
                     rd_kafka_version_str());
    int version = broker_kafka_version();
    if (version < 400)
        cr_skip_test("group_protocol=consumer needs a Kafka >= 4.0 broker; the broker's env file "
                     "says KAFFE_BROKER_KAFKA_VERSION=%s",
                     broker_env("KAFFE_BROKER_KAFKA_VERSION")
                         ? broker_env("KAFFE_BROKER_KAFKA_VERSION")
                         : "(unset)");
    roll("consumer", "group_protocol=consumer");
}
