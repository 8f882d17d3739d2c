/* The real broker: a topic grows from 2 to 4 partitions (the Admin API's
 * CreatePartitions) while one producer keeps using it. The embedded cluster
 * cannot add partitions, so this lives in the broker tier.
 *
 *   - An explicit partition beyond the cached count makes the producer re-read
 *     the topic's metadata (at most once a second): producing to partition 3
 *     succeeds after the growth without a new producer, with the periodic
 *     refresh out of the way.
 *   - round_robin, murmur2 and a partitioner function reach partitions 2 and
 *     3 after the periodic refresh (partition_refresh_ms); murmur2 then places
 *     every key as the Java client does with 4 partitions; the count the
 *     partitioner function is given never goes down.
 *   - Every message reported OK is read back, with a plain librdkafka
 *     consumer, at the partition and offset its result named, and nothing
 *     else is in the topic.
 *
 * Waiting is by polling a condition with a deadline (the broker's metadata,
 * the producer's choices); the only fixed pauses are the poll intervals. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include <kaffe/kaffe.h>

#include "producer/producer.h"
#include "support/broker_env.h"
#include "support/plain_client.h"
#include "common/clock.h"

#define GROWN 4

static void load_env(void) {
    char err[512];
    cr_assert(broker_env_load(err, sizeof err), "%s", err);
}

TestSuite(growth, .init = load_env, .timeout = 180);

static const char *bootstraps(void) {
    return broker_env("KAFFE_BROKER_PLAINTEXT");
}

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- The cluster side ---------------------------------------------------- */

/* The topic's partition count as the broker reports it now, or -1; *led is
 * set when every partition has a leader. */
static int broker_partitions(rd_kafka_t *rk, const char *topic, bool *led) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int count = -1;
    *led = false;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && !md->topics[0].err) {
            count = md->topics[0].partition_cnt;
            *led = true;
            for (int i = 0; i < count; i++)
                *led = *led && md->topics[0].partitions[i].leader >= 0;
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return count;
}

/* Grows topic to partitions with CreatePartitions and waits (deadline 30 s)
 * until the broker's metadata shows them all with a leader. */
static void grow_topic(const char *topic, int partitions) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps(), err, sizeof err),
                 RD_KAFKA_CONF_OK, "%s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cr_assert_not_null(rk, "admin client: %s", err);
    rd_kafka_NewPartitions_t *np =
        rd_kafka_NewPartitions_new(topic, (size_t)partitions, err, sizeof err);
    cr_assert_not_null(np, "%s", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreatePartitions(rk, &np, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    cr_assert_not_null(ev, "CreatePartitions %s: no answer in 30 s", topic);
    cr_assert_eq(rd_kafka_event_error(ev), RD_KAFKA_RESP_ERR_NO_ERROR, "CreatePartitions: %s",
                 rd_kafka_event_error_string(ev));
    size_t n = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(rd_kafka_topic_result_error(res[0]), RD_KAFKA_RESP_ERR_NO_ERROR,
                 "CreatePartitions %s: %s", topic, rd_kafka_topic_result_error_string(res[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewPartitions_destroy(np);

    bool led = false;
    int count = -1;
    for (int64_t deadline = clock_now_ms() + 30000; clock_now_ms() < deadline; pause_ms(100)) {
        count = broker_partitions(rk, topic, &led);
        if (count == partitions && led)
            break;
    }
    cr_assert(count == partitions && led, "%s: the broker shows %d partitions (all led: %d)", topic,
              count, led);
    rd_kafka_destroy(rk);
}

/* ---- The producer side --------------------------------------------------- */

/* What the test's partitioner function was given, in call order. It runs on
 * the producing (test) thread only. */
typedef struct count_log {
    int32_t counts[4096];
    size_t n;
    uint64_t calls;
} count_log_t;

static int32_t logging_partitioner(const char *topic, int32_t partition_count, const void *key,
                                   size_t key_len, const void *value, size_t value_len,
                                   void *opaque) {
    (void)topic, (void)key, (void)key_len, (void)value, (void)value_len;
    count_log_t *log = opaque;
    if (log->n < sizeof log->counts / sizeof log->counts[0])
        log->counts[log->n++] = partition_count;
    return (int32_t)(log->calls++ % (uint64_t)partition_count);
}

static kaffe_producer_t *new_producer(const char *topic, const char *strategy,
                                      const char *refresh_ms, count_log_t *log) {
    char err[512];
    kaffe_conf_t *conf = kaffe_conf_new();
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", bootstraps(), err, sizeof err), KAFFE_OK, "%s",
                 err);
    cr_assert_eq(kaffe_conf_set(conf, "topics", topic, err, sizeof err), KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "partition_strategy", strategy, err, sizeof err), KAFFE_OK,
                 "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "partition_refresh_ms", refresh_ms, err, sizeof err),
                 KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.log_level", "2", err, sizeof err), KAFFE_OK);
    if (log)
        kaffe_conf_set_partitioner(conf, logging_partitioner, log);
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    cr_assert_not_null(p, "kaffe_producer_new: %s", err);
    return p;
}

/* Every message reported OK: its value (unique in the topic) and where its
 * result said it went. */
typedef struct sent {
    char value[48];
    int32_t partition;
    int64_t offset;
} sent_t;

typedef struct ledger {
    sent_t items[8192];
    size_t n;
    int serial;
} ledger_t;

/* Produces one message (partition KAFFE_PARTITION_ANY: the strategy
 * chooses) with value "<tag>-<serial>"; records it in the ledger when it is
 * reported OK. Returns the status; *partition gets the result's partition. */
static kaffe_status_t produce_one(kaffe_producer_t *p, ledger_t *l, const char *tag,
                                  int32_t partition, const char *key, int32_t *chosen) {
    char value[48];
    snprintf(value, sizeof value, "%s-%d", tag, l->serial++);
    kaffe_produce_msg_t msg = KAFFE_PRODUCE_MSG_INIT;
    msg.partition = partition;
    msg.key = key;
    msg.key_len = key ? strlen(key) : 0;
    msg.value = value;
    msg.value_len = strlen(value);
    kaffe_produce_result_t r;
    kaffe_status_t st = kaffe_produce_sync_msg(p, &msg, &r);
    cr_assert_eq(st, r.status);
    if (chosen)
        *chosen = r.partition;
    if (st == KAFFE_OK) {
        cr_assert(r.partition >= 0 && r.partition < GROWN && r.offset >= 0, "%s: %d/%lld", value,
                  r.partition, (long long)r.offset);
        cr_assert_lt(l->n, sizeof l->items / sizeof l->items[0]);
        sent_t *s = &l->items[l->n++];
        snprintf(s->value, sizeof s->value, "%s", value);
        s->partition = r.partition;
        s->offset = r.offset;
    }
    return st;
}

/* Reads the whole topic back with a plain consumer: exactly the ledger's
 * messages, each at the partition and offset its result named. */
static void check_readback(const char *topic, const ledger_t *l) {
    int64_t total = 0;
    for (int64_t deadline = clock_now_ms() + 15000; clock_now_ms() < deadline; pause_ms(100)) {
        total = 0;
        for (int part = 0; part < GROWN; part++) {
            int64_t end = plain_log_end(bootstraps(), topic, part);
            total += end > 0 ? end : 0;
        }
        if (total >= (int64_t)l->n)
            break;
    }
    cr_assert_eq(total, (int64_t)l->n, "%s holds %lld messages, %zu were reported OK", topic,
                 (long long)total, l->n);
    plain_message_t *msgs = NULL;
    size_t got = plain_consume_all(bootstraps(), topic, l->n, 10000, &msgs);
    cr_assert_eq(got, l->n, "read back %zu of %zu", got, l->n);
    for (size_t i = 0; i < l->n; i++) {
        const sent_t *s = &l->items[i];
        size_t j = 0;
        while (j < got && strcmp(msgs[j].value, s->value) != 0)
            j++;
        cr_assert_lt(j, got, "%s (reported OK at %d/%lld) is not in the topic", s->value,
                     s->partition, (long long)s->offset);
        cr_expect_eq(msgs[j].partition, s->partition, "%s: reported partition %d, found in %d",
                     s->value, s->partition, msgs[j].partition);
        cr_expect_eq(msgs[j].offset, s->offset, "%s: reported offset %lld, found at %lld", s->value,
                     (long long)s->offset, (long long)msgs[j].offset);
    }
    plain_messages_free(msgs, got);
}

static void create_topic(char *topic, size_t size, const char *prefix, int partitions) {
    broker_unique_topic(topic, size, prefix);
    char err[512];
    cr_assert_eq(broker_create_topic(topic, partitions, err, sizeof err), 0, "%s", err);
}

/* ---- Tests --------------------------------------------------------------- */

Test(growth, explicit_partition_beyond_the_cached_count_refreshes_and_succeeds_after_growth) {
    char topic[128];
    create_topic(topic, sizeof topic, "growth-explicit", 2);
    static ledger_t l;
    /* A day: the periodic refresh cannot be what finds the new partitions. */
    kaffe_producer_t *p = new_producer(topic, "round_robin", "86400000", NULL);

    bool seen[GROWN] = {false};
    for (int i = 0; i < 6; i++) {
        int32_t part;
        cr_assert_eq(produce_one(p, &l, "before", KAFFE_PARTITION_ANY, NULL, &part), KAFFE_OK);
        cr_assert(part == 0 || part == 1, "partition %d of a 2-partition topic", part);
        seen[part] = true;
    }
    cr_assert(seen[0] && seen[1]);
    cr_assert_eq(produce_one(p, &l, "explicit", 1, NULL, NULL), KAFFE_OK);
    cr_assert_eq(produce_one(p, &l, "explicit", 3, NULL, NULL), KAFFE_ERR_UNKNOWN_PARTITION);

    grow_topic(topic, GROWN);

    /* The broker shows partition 3 now. The producer re-reads the metadata
     * for an out-of-range partition at most once a second (the rate limit
     * in include/kaffe/producer.h; the refused attempt above was such a
     * read), so an attempt within that second may still be refused; a later
     * one must succeed, with no periodic refresh to help it. */
    kaffe_status_t st = KAFFE_ERR_UNKNOWN_PARTITION;
    int attempts = 0;
    for (int64_t deadline = clock_now_ms() + 10000; clock_now_ms() < deadline; pause_ms(100)) {
        int32_t part = -1;
        attempts++;
        st = produce_one(p, &l, "explicit3", 3, NULL, &part);
        if (st == KAFFE_OK) {
            cr_assert_eq(part, 3);
            break;
        }
        cr_assert_eq(st, KAFFE_ERR_UNKNOWN_PARTITION, "%s", kaffe_err_name(st));
    }
    cr_assert_eq(st, KAFFE_OK, "partition 3 still refused after %d attempts in 10 s", attempts);
    cr_log_info("partition 3 accepted at attempt %d", attempts);
    cr_assert_eq(produce_one(p, &l, "explicit2", 2, NULL, NULL), KAFFE_OK);

    /* The refresh updated the count the strategy uses: consecutive
     * round_robin tickets now cover all four partitions. */
    bool after[GROWN] = {false};
    for (int i = 0; i < 2 * GROWN; i++) {
        int32_t part;
        cr_assert_eq(produce_one(p, &l, "after", KAFFE_PARTITION_ANY, NULL, &part), KAFFE_OK);
        after[part] = true;
    }
    for (int part = 0; part < GROWN; part++)
        cr_expect(after[part], "round_robin never chose partition %d after the growth", part);
    kaffe_producer_destroy(p);
    check_readback(topic, &l);
}

/* Keys that murmur2 places on partitions 2 and 3 of 4 (found, not assumed). */
static void keys_for_new_partitions(char keys[2][16]) {
    bool found[2] = {false, false};
    for (int i = 0; !(found[0] && found[1]); i++) {
        cr_assert_lt(i, 1000);
        char key[16];
        snprintf(key, sizeof key, "key-%d", i);
        int32_t part = producer_partition_murmur2(key, strlen(key), GROWN);
        if (part >= 2 && !found[part - 2]) {
            found[part - 2] = true;
            memcpy(keys[part - 2], key, sizeof key);
        }
    }
}

Test(growth, strategies_reach_new_partitions_after_the_periodic_refresh) {
    char topic[128];
    create_topic(topic, sizeof topic, "growth-periodic", 2);
    static ledger_t l;
    static count_log_t counts;
    kaffe_producer_t *rr = new_producer(topic, "round_robin", "500", NULL);
    kaffe_producer_t *mm = new_producer(topic, "murmur2", "500", NULL);
    kaffe_producer_t *fn = new_producer(topic, "round_robin", "500", &counts);

    char keys[2][16];
    keys_for_new_partitions(keys);
    for (int i = 0; i < 4; i++) {
        int32_t part;
        cr_assert_eq(produce_one(rr, &l, "rr", KAFFE_PARTITION_ANY, NULL, &part), KAFFE_OK);
        cr_assert_lt(part, 2);
        cr_assert_eq(produce_one(fn, &l, "fn", KAFFE_PARTITION_ANY, NULL, &part), KAFFE_OK);
        cr_assert_lt(part, 2);
        const char *key = keys[i % 2];
        cr_assert_eq(produce_one(mm, &l, "mm", KAFFE_PARTITION_ANY, key, &part), KAFFE_OK);
        cr_assert_eq(part, producer_partition_murmur2(key, strlen(key), 2), "key %s", key);
    }

    grow_topic(topic, GROWN);

    /* Until each strategy has used both new partitions (the refresh runs
     * every 500 ms; 30 s is the deadline; at most ~300 rounds of 10). */
    bool rr_seen[GROWN] = {false}, mm_seen[GROWN] = {false}, fn_seen[GROWN] = {false};
    bool mm_grown = false;
    int rounds = 0;
    int64_t deadline = clock_now_ms() + 30000;
    while (!(rr_seen[2] && rr_seen[3] && mm_seen[2] && mm_seen[3] && fn_seen[2] && fn_seen[3])) {
        cr_assert_lt(clock_now_ms(), deadline,
                     "after 30 s: round_robin %d%d, murmur2 %d%d, function %d%d on partitions 2, 3",
                     rr_seen[2], rr_seen[3], mm_seen[2], mm_seen[3], fn_seen[2], fn_seen[3]);
        rounds++;
        int32_t part;
        for (int i = 0; i < GROWN; i++) {
            cr_assert_eq(produce_one(rr, &l, "rr", KAFFE_PARTITION_ANY, NULL, &part), KAFFE_OK);
            rr_seen[part] = true;
            cr_assert_eq(produce_one(fn, &l, "fn", KAFFE_PARTITION_ANY, NULL, &part), KAFFE_OK);
            fn_seen[part] = true;
        }
        for (int k = 0; k < 2; k++) {
            const char *key = keys[k];
            cr_assert_eq(produce_one(mm, &l, "mm", KAFFE_PARTITION_ANY, key, &part), KAFFE_OK);
            mm_seen[part] = true;
            /* Java's placement for the count in use; once the producer has
             * used 4, it never goes back to 2. */
            int32_t with4 = producer_partition_murmur2(key, strlen(key), GROWN);
            int32_t with2 = producer_partition_murmur2(key, strlen(key), 2);
            cr_assert(part == with4 || (!mm_grown && part == with2),
                      "key %s on %d (4 partitions: %d, 2: %d; grown before: %d)", key, part, with4,
                      with2, mm_grown);
            mm_grown = mm_grown || part == with4;
        }
        if (!(rr_seen[2] && rr_seen[3] && mm_seen[2] && mm_seen[3] && fn_seen[2] && fn_seen[3]))
            pause_ms(100);
    }
    cr_log_info("new partitions used after %d rounds", rounds);

    /* The count the partitioner function was given: 2, then 4, never down. */
    cr_assert_gt(counts.n, 0);
    cr_assert_eq(counts.counts[0], 2);
    cr_assert_eq(counts.counts[counts.n - 1], GROWN);
    for (size_t i = 1; i < counts.n; i++)
        cr_assert_geq(counts.counts[i], counts.counts[i - 1], "call %zu: count %d after %d", i,
                      counts.counts[i], counts.counts[i - 1]);

    kaffe_producer_destroy(rr);
    kaffe_producer_destroy(mm);
    kaffe_producer_destroy(fn);
    check_readback(topic, &l);
}
