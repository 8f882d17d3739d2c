/* The real broker over PLAINTEXT: produce, consume with a consumer group,
 * a rebalance between two members, commits read back. The librdkafka
 * handles come from kaffe configurations through conf_to_rdkafka(). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "support/broker_env.h"
#include "support/plain_client.h"
#include "common/clock.h"

#define PARTITIONS 4

static void load_env(void) {
    char err[512];
    cr_assert(broker_env_load(err, sizeof err), "%s", err);
}

TestSuite(plaintext, .init = load_env);

static int noop_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

static kaffe_conf_t *make_conf(const char *topic, const char *group) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(
        kaffe_conf_set(conf, "endpoints", broker_env("KAFFE_BROKER_PLAINTEXT"), err, sizeof err),
        KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "topics", topic, err, sizeof err), KAFFE_OK);
    if (group) {
        cr_assert_eq(kaffe_conf_set(conf, "consumer_group", group, err, sizeof err), KAFFE_OK);
        cr_assert_eq(kaffe_conf_set(conf, "start_with_earliest_message", "true", err, sizeof err),
                     KAFFE_OK);
        /* Kaffe's names, mapped: a fetch returns quickly in a test. */
        cr_assert_eq(kaffe_conf_set(conf, "max_wait_time", "100", err, sizeof err), KAFFE_OK);
        /* Rebalances are noticed on the next heartbeat: keep them short. */
        cr_assert_eq(kaffe_conf_set(conf, "rdkafka.session.timeout.ms", "6000", err, sizeof err),
                     KAFFE_OK);
        cr_assert_eq(kaffe_conf_set(conf, "rdkafka.heartbeat.interval.ms", "300", err, sizeof err),
                     KAFFE_OK);
        kaffe_conf_set_message_handler(conf, noop_handler, NULL);
    }
    return conf;
}

typedef struct member {
    rd_kafka_t *rk;
    broker_events_t events;
    int64_t next_offset[PARTITIONS]; /* consumed position per partition, -1 none */
    int consumed;
} member_t;

static void member_start(member_t *m, const char *topic, const char *group) {
    memset(m, 0, sizeof *m);
    broker_events_init(&m->events);
    for (int p = 0; p < PARTITIONS; p++)
        m->next_offset[p] = -1;
    kaffe_conf_t *conf = make_conf(topic, group);
    char err[512];
    m->rk = broker_handle_new(conf, RD_KAFKA_CONSUMER, &m->events, err, sizeof err);
    cr_assert_not_null(m->rk, "%s", err);
    kaffe_conf_destroy(conf);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    cr_assert_eq(rd_kafka_subscribe(m->rk, topics), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(topics);
}

/* One poll; records the message. seen[] counts each value index. */
static void member_poll(member_t *m, int *seen, int seen_size) {
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, 50);
    if (!msg)
        return;
    if (!msg->err) {
        cr_assert(msg->partition >= 0 && msg->partition < PARTITIONS);
        m->next_offset[msg->partition] = msg->offset + 1;
        m->consumed++;
        int index = -1;
        sscanf((const char *)msg->payload, "value-%d", &index);
        cr_assert(index >= 0 && index < seen_size, "unexpected value");
        seen[index]++;
    } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        cr_log_warn("consumer: %s", rd_kafka_message_errstr(msg));
    }
    rd_kafka_message_destroy(msg);
}

static int assigned_count(member_t *m) {
    rd_kafka_topic_partition_list_t *list = NULL;
    cr_assert_eq(rd_kafka_assignment(m->rk, &list), RD_KAFKA_RESP_ERR_NO_ERROR);
    int n = list->cnt;
    rd_kafka_topic_partition_list_destroy(list);
    return n;
}

/* Commits the consumed positions synchronously; returns how many. */
static int member_commit(member_t *m, const char *topic) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        if (m->next_offset[p] >= 0)
            rd_kafka_topic_partition_list_add(list, topic, p)->offset = m->next_offset[p];
    int n = list->cnt;
    if (n)
        cr_assert_eq(rd_kafka_commit(m->rk, list, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(list);
    return n;
}

static void member_stop(member_t *m) {
    rd_kafka_consumer_close(m->rk);
    rd_kafka_destroy(m->rk);
}

static void produce(const char *topic, int count) {
    kaffe_conf_t *conf = make_conf(topic, NULL);
    broker_events_t events;
    broker_events_init(&events);
    char err[512];
    rd_kafka_t *rk = broker_handle_new(conf, RD_KAFKA_PRODUCER, &events, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    cr_assert_eq(broker_produce(rk, &events, topic, count, 30000), count,
                 "not every message was delivered");
    rd_kafka_destroy(rk);
    kaffe_conf_destroy(conf);
}

Test(plaintext, produce_consume_and_commit_with_a_group) {
    char topic[128], group[160], err[512];
    broker_unique_topic(topic, sizeof topic, "plain");
    snprintf(group, sizeof group, "%s-group", topic);
    cr_assert_eq(broker_create_topic(topic, PARTITIONS, err, sizeof err), 0, "%s", err);
    enum { COUNT = 200 };
    produce(topic, COUNT);

    member_t m;
    member_start(&m, topic, group);
    int seen[COUNT] = {0};
    for (int64_t deadline = clock_now_ms() + 60000; m.consumed < COUNT;) {
        cr_assert_lt(clock_now_ms(), deadline, "consumed only %d of %d", m.consumed, COUNT);
        member_poll(&m, seen, COUNT);
    }
    for (int i = 0; i < COUNT; i++)
        cr_assert_eq(seen[i], 1, "value-%d seen %d times", i, seen[i]);
    cr_assert_eq(member_commit(&m, topic), PARTITIONS);

    /* Read back, by the member and by an independent client. */
    int64_t total = 0;
    for (int p = 0; p < PARTITIONS; p++) {
        int64_t committed =
            plain_committed(broker_env("KAFFE_BROKER_PLAINTEXT"), group, topic, p, NULL);
        cr_assert_eq(committed, m.next_offset[p], "partition %d: committed %lld, consumed to %lld",
                     p, (long long)committed, (long long)m.next_offset[p]);
        total += committed;
    }
    cr_assert_eq(total, COUNT);
    member_stop(&m);
}

Test(plaintext, two_members_rebalance_and_commit_their_own_partitions) {
    char topic[128], group[160], err[512];
    broker_unique_topic(topic, sizeof topic, "rebalance");
    snprintf(group, sizeof group, "%s-group", topic);
    cr_assert_eq(broker_create_topic(topic, PARTITIONS, err, sizeof err), 0, "%s", err);
    enum { COUNT = 400 };
    int seen[COUNT] = {0};

    member_t a, b;
    member_start(&a, topic, group);
    for (int64_t deadline = clock_now_ms() + 30000; assigned_count(&a) != PARTITIONS;) {
        cr_assert_lt(clock_now_ms(), deadline, "the first member never got all partitions");
        member_poll(&a, seen, COUNT);
    }
    /* The second member joins: the partitions are shared out. */
    member_start(&b, topic, group);
    for (int64_t deadline = clock_now_ms() + 60000;
         assigned_count(&a) != PARTITIONS / 2 || assigned_count(&b) != PARTITIONS / 2;) {
        cr_assert_lt(clock_now_ms(), deadline, "no 2+2 split: a has %d, b has %d",
                     assigned_count(&a), assigned_count(&b));
        member_poll(&a, seen, COUNT);
        member_poll(&b, seen, COUNT);
    }
    produce(topic, COUNT);
    for (int64_t deadline = clock_now_ms() + 60000; a.consumed + b.consumed < COUNT;) {
        cr_assert_lt(clock_now_ms(), deadline, "consumed only %d of %d", a.consumed + b.consumed,
                     COUNT);
        member_poll(&a, seen, COUNT);
        member_poll(&b, seen, COUNT);
    }
    for (int i = 0; i < COUNT; i++)
        cr_assert_eq(seen[i], 1, "value-%d seen %d times", i, seen[i]);
    /* Each partition was consumed by exactly one member. */
    for (int p = 0; p < PARTITIONS; p++)
        cr_assert((a.next_offset[p] >= 0) != (b.next_offset[p] >= 0),
                  "partition %d: consumed by %s", p, a.next_offset[p] >= 0 ? "both" : "neither");
    cr_assert_gt(a.consumed, 0);
    cr_assert_gt(b.consumed, 0);
    cr_assert_eq(member_commit(&a, topic) + member_commit(&b, topic), PARTITIONS);
    int64_t total = 0;
    for (int p = 0; p < PARTITIONS; p++) {
        int64_t want = a.next_offset[p] >= 0 ? a.next_offset[p] : b.next_offset[p];
        int64_t committed =
            plain_committed(broker_env("KAFFE_BROKER_PLAINTEXT"), group, topic, p, NULL);
        cr_assert_eq(committed, want, "partition %d: committed %lld, want %lld", p,
                     (long long)committed, (long long)want);
        total += committed;
    }
    cr_assert_eq(total, COUNT);

    /* The second member leaves: the first gets every partition back. */
    member_stop(&b);
    for (int64_t deadline = clock_now_ms() + 60000; assigned_count(&a) != PARTITIONS;) {
        cr_assert_lt(clock_now_ms(), deadline, "partitions not returned after a member left");
        member_poll(&a, seen, COUNT);
    }
    member_stop(&a);
}
