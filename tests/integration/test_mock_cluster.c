/* The embedded cluster speaks real Kafka: plain librdkafka clients produce
 * and consume through it over TCP on 127.0.0.1. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "mock/mock_cluster.h"
#include "support/plain_client.h"

Test(mock_cluster, serves_produce_and_consume_over_tcp) {
    char err[256];
    mock_topic_t topics[] = {{"orders", 3}};
    mock_cluster_t *mc = mock_cluster_start(3, topics, 1, err, sizeof err);
    cr_assert_not_null(mc, "%s", err);
    const char *bootstraps = mock_cluster_bootstraps(mc);
    cr_assert(strncmp(bootstraps, "127.0.0.1:", 10) == 0, "bootstraps: %s", bootstraps);

    cr_assert_eq(plain_produce(bootstraps, "orders", RD_KAFKA_PARTITION_UA, 300, 0, 10), 300);
    plain_message_t *msgs;
    size_t n = plain_consume_all(bootstraps, "orders", 1000, 3000, &msgs);
    cr_assert_eq(n, 300);
    /* Every value arrives exactly once. */
    char seen[300] = {0};
    for (size_t i = 0; i < n; i++) {
        int index = -1;
        cr_assert_eq(sscanf(msgs[i].value, "value-%d", &index), 1);
        cr_assert(index >= 0 && index < 300);
        cr_assert_eq(seen[index], 0, "value-%d twice", index);
        seen[index] = 1;
    }
    int64_t total = 0;
    for (int p = 0; p < 3; p++)
        total += plain_log_end(bootstraps, "orders", p);
    cr_assert_eq(total, 300);
    plain_messages_free(msgs, n);
    mock_cluster_stop(mc);
}

Test(mock_cluster, refuses_zero_brokers_with_a_message) {
    char err[256] = "";
    cr_assert_null(mock_cluster_start(0, NULL, 0, err, sizeof err));
    cr_assert(strstr(err, "broker"), "got: %s", err);
}

Test(mock_cluster, creates_topics_while_running) {
    char err[256];
    mock_cluster_t *mc = mock_cluster_start(1, NULL, 0, err, sizeof err);
    cr_assert_not_null(mc, "%s", err);
    cr_assert_eq(mock_cluster_create_topic(mc, "late", 2), 0);
    cr_assert_eq(plain_produce(mock_cluster_bootstraps(mc), "late", 1, 10, 0, 0), 10);
    cr_assert_eq(plain_log_end(mock_cluster_bootstraps(mc), "late", 1), 10);
    mock_cluster_stop(mc);
}
