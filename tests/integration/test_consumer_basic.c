/* The consumer end to end on the embedded cluster: every message handled in
 * each mode and ordering, order kept per partition and per key, distinct
 * keys run in parallel, offsets committed up to the log end. */
#include <errno.h>

#include <criterion/criterion.h>

#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "producer_helpers.h"
#include "support/plain_client.h"

enum { PER_TOPIC = 600, PARTITIONS = 3 };
enum { MEET_KEYS = 16, MEET_WAVES = 3 }; /* topic "keys": key-0..key-15, 3 times */

static mock_cluster_t *mc;

static void start_cluster(void) {
    mock_topic_t topics[] = {
        {"alpha", PARTITIONS}, {"beta", PARTITIONS}, {"keys", 1}, {"headers", 1}};
    mc = test_mock_cluster_start(1, topics, 4);
    /* Keys key-0..key-39; every 7th message has a null key (key_mod 0). */
    const char *b = mock_cluster_bootstraps(mc);
    cr_assert_eq(plain_produce(b, "alpha", RD_KAFKA_PARTITION_UA, PER_TOPIC - 100, 0, 40),
                 PER_TOPIC - 100);
    cr_assert_eq(plain_produce(b, "alpha", RD_KAFKA_PARTITION_UA, 100, PER_TOPIC - 100, 0), 100);
    cr_assert_eq(plain_produce(b, "beta", RD_KAFKA_PARTITION_UA, PER_TOPIC, PER_TOPIC, 40),
                 PER_TOPIC);
    cr_assert_eq(plain_produce(b, "keys", 0, MEET_KEYS * MEET_WAVES, 0, MEET_KEYS),
                 MEET_KEYS * MEET_WAVES);
}

static void stop_cluster(void) {
    mock_cluster_stop(mc);
}

static int cmp_seen(const void *a, const void *b) {
    const seen_msg_t *x = a, *y = b;
    int t = strcmp(x->topic, y->topic);
    if (t)
        return t;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Acks, from this thread, whatever the async handler kept, until stopped. */
typedef struct acker {
    recorder_t *r;
    atomic_int stop;
    size_t next;
    long acked;
} acker_t;

static void *acker_main(void *arg) {
    acker_t *a = arg;
    while (!atomic_load(&a->stop)) {
        pthread_mutex_lock(&a->r->lock);
        size_t end = a->r->count;
        pthread_mutex_unlock(&a->r->lock);
        for (; a->next < end; a->next++) {
            pthread_mutex_lock(&a->r->lock);
            kaffe_message_t *m = a->r->msgs[a->next].m;
            pthread_mutex_unlock(&a->r->lock);
            kaffe_status_t st = kaffe_consumer_ack(a->r->consumer, m);
            if (st == KAFFE_OK)
                a->acked++;
        }
        clock_sleep_ms(1);
    }
    return NULL;
}

static void run_mode(const char *async, const char *ordering, const char *workers) {
    recorder_t r;
    recorder_init(&r);
    r.keep = strcmp(async, "true") == 0;
    char group[64];
    snprintf(group, sizeof group, "basic-%s-%s", async, ordering);
    kaffe_conf_t *conf =
        test_conf(mock_cluster_bootstraps(mc), "alpha,beta", group, record_handler, &r,
                  "async_message_ack", async, "ordering", ordering, "workers", workers, NULL);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    r.consumer = c;
    acker_t acker = {.r = &r};
    pthread_t th;
    if (r.keep)
        pthread_create(&th, NULL, acker_main, &acker);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    cr_assert(wait_handled(&r, 2 * PER_TOPIC, 30000), "handled %ld of %d", recorder_handled(&r),
              2 * PER_TOPIC);
    if (r.keep) {
        /* Wait for the acker to catch up, then stop it. */
        int64_t deadline = clock_now_ms() + 10000;
        while (acker.next < 2 * PER_TOPIC && clock_now_ms() < deadline)
            clock_sleep_ms(5);
    }
    cr_assert_eq(kaffe_consumer_commit(c), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    if (r.keep) {
        atomic_store(&acker.stop, 1);
        pthread_join(th, NULL);
        cr_assert_eq(acker.acked, 2 * PER_TOPIC, "acked %ld", acker.acked);
    }

    /* Every message at least once (no failures, no rebalance: exactly once). */
    cr_assert_eq(r.count, 2 * PER_TOPIC);
    char *seen = calloc(2 * PER_TOPIC, 1);
    for (size_t i = 0; i < r.count; i++) {
        long v = r.msgs[i].value_index;
        cr_assert(v >= 0 && v < 2 * PER_TOPIC, "value %ld", v);
        seen[v]++;
    }
    for (int v = 0; v < 2 * PER_TOPIC; v++)
        cr_assert_eq(seen[v], 1, "value-%d handled %d times", v, seen[v]);
    free(seen);

    /* Order: per partition (partition ordering), per key (key ordering). The
     * recorder appends under a lock after the handler started, and a lane
     * runs one handler at a time, so handling order is the append order. */
    if (strcmp(ordering, "unordered") != 0) {
        for (size_t i = 0; i < r.count; i++)
            for (size_t j = i + 1; j < r.count && j < i + 400; j++) {
                seen_msg_t *a = &r.msgs[i], *b = &r.msgs[j];
                if (strcmp(a->topic, b->topic) || a->partition != b->partition)
                    continue;
                int same_lane = strcmp(ordering, "partition") == 0 ||
                                (a->has_key && b->has_key && strcmp(a->key, b->key) == 0);
                if (same_lane)
                    cr_assert(a->offset < b->offset, "%s [%d]: offset %lld handled before %lld",
                              a->topic, a->partition, (long long)a->offset, (long long)b->offset);
            }
    }

    /* Committed = log end on every partition, read by a plain client. */
    qsort(r.msgs, r.count, sizeof *r.msgs, cmp_seen);
    const char *topics[] = {"alpha", "beta"};
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < PARTITIONS; p++) {
            int64_t end = plain_log_end(mock_cluster_bootstraps(mc), topics[t], p);
            int64_t committed =
                plain_committed(mock_cluster_bootstraps(mc), group, topics[t], p, NULL);
            cr_assert_eq(committed, end, "%s [%d]: committed %lld, log end %lld", topics[t], p,
                         (long long)committed, (long long)end);
        }
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

TestSuite(consumer_basic, .init = start_cluster, .fini = stop_cluster, .timeout = 120);

Test(consumer_basic, sync_partition_order_handles_everything_in_order) {
    run_mode("false", "partition", "4");
}

Test(consumer_basic, sync_key_order_handles_everything_in_key_order) {
    run_mode("false", "key", "8");
}

Test(consumer_basic, sync_unordered_handles_everything) {
    run_mode("false", "unordered", "8");
}

Test(consumer_basic, async_partition_order_handles_everything_in_order) {
    run_mode("true", "partition", "4");
}

Test(consumer_basic, async_key_order_handles_everything_in_key_order) {
    run_mode("true", "key", "8");
}

Test(consumer_basic, async_unordered_handles_everything) {
    run_mode("true", "unordered", "8");
}

/* Key order runs distinct keys in parallel whenever workers are free, not
 * only keys whose hashes land on different lanes: each handler waits (up to
 * 5 s) until a message of every one of the 16 keys is in a handler at once.
 * With 16 keys hashed onto 64 lanes, two keys would share a lane in 87% of
 * consumers (a random salt each), and their wave could never meet. */
typedef struct meeting {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int present, wave, met, timeouts, order_violations;
    int64_t last_offset[MEET_KEYS];
    atomic_int handled;
} meeting_t;

static int meeting_handler(kaffe_message_t *m, void *opaque) {
    meeting_t *mt = opaque;
    size_t len = 0;
    const char *key = kaffe_message_key(m, &len);
    int k = key && len > 4 ? atoi(key + 4) : -1; /* "key-<k>" */
    pthread_mutex_lock(&mt->lock);
    if (k < 0 || k >= MEET_KEYS || kaffe_message_offset(m) <= mt->last_offset[k])
        mt->order_violations++;
    else
        mt->last_offset[k] = kaffe_message_offset(m);
    int wave = mt->wave;
    if (++mt->present == MEET_KEYS) {
        mt->present = 0;
        mt->wave++;
        mt->met++;
        pthread_cond_broadcast(&mt->cond);
    } else {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 5;
        while (mt->wave == wave &&
               pthread_cond_timedwait(&mt->cond, &mt->lock, &deadline) != ETIMEDOUT) {
        }
        if (mt->wave == wave) {
            mt->present--;
            mt->timeouts++;
        }
    }
    pthread_mutex_unlock(&mt->lock);
    atomic_fetch_add(&mt->handled, 1);
    return KAFFE_OK;
}

Test(consumer_basic, key_order_runs_every_key_in_parallel) {
    meeting_t mt = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    for (int k = 0; k < MEET_KEYS; k++)
        mt.last_offset[k] = -1;
    kaffe_conf_t *conf = test_conf(mock_cluster_bootstraps(mc), "keys", "basic-meeting",
                                   meeting_handler, &mt, "ordering", "key", "workers", "16", NULL);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    int64_t deadline = clock_now_ms() + 60000;
    while (atomic_load(&mt.handled) < MEET_KEYS * MEET_WAVES && clock_now_ms() < deadline)
        clock_sleep_ms(5);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_consumer_destroy(c);
    cr_assert_eq(atomic_load(&mt.handled), MEET_KEYS * MEET_WAVES);
    cr_assert_eq(mt.order_violations, 0, "%d messages out of key order", mt.order_violations);
    cr_assert_eq(mt.timeouts, 0, "%d handlers waited 5 s for keys that did not come", mt.timeouts);
    cr_assert_eq(mt.met, MEET_WAVES, "all %d keys met in %d of %d waves", MEET_KEYS, mt.met,
                 MEET_WAVES);
}

/* Headers reach the handler as produced (order, repeated names, null
 * values), are parsed on first read, and read the same on another thread
 * after the handler returned (async: the message lives until its ack). */
typedef struct header_seen {
    pthread_mutex_t lock;
    kaffe_message_t *kept[3];
    int count;
    size_t counts[3];
    char first_name[3][16], last_a[3][16];
    bool null_value_ok[3];
} header_seen_t;

static int headers_handler(kaffe_message_t *m, void *opaque) {
    header_seen_t *h = opaque;
    pthread_mutex_lock(&h->lock);
    int i = h->count < 3 ? h->count++ : 2;
    h->kept[i] = m;
    int64_t off = kaffe_message_offset(m);
    if (off % 2 == 0) { /* even offsets: first read here; odd: on the test's thread */
        h->counts[i] = kaffe_message_header_count(m);
        const char *name = NULL;
        if (kaffe_message_header(m, 0, &name, NULL, NULL) == KAFFE_OK)
            snprintf(h->first_name[i], sizeof h->first_name[i], "%s", name);
    }
    pthread_mutex_unlock(&h->lock);
    return KAFFE_OK;
}

Test(consumer_basic, headers_reach_the_handler_as_produced) {
    const char *b = mock_cluster_bootstraps(mc);
    kaffe_producer_t *p = producer_with(b, "headers", NULL);
    kaffe_header_t first[] = {{"a", "1", 1}, {"b", NULL, 0}, {"a", "2", 1}};
    kaffe_header_t third[] = {{"trace", "xyz", 3}};
    kaffe_produce_msg_t msgs[3] = {KAFFE_PRODUCE_MSG_INIT, KAFFE_PRODUCE_MSG_INIT,
                                   KAFFE_PRODUCE_MSG_INIT};
    const kaffe_header_t *hs[3] = {first, NULL, third};
    size_t hn[3] = {3, 0, 1};
    for (int i = 0; i < 3; i++) {
        msgs[i].topic = "headers";
        msgs[i].partition = 0;
        msgs[i].value = "v";
        msgs[i].value_len = 1;
        msgs[i].headers = hs[i];
        msgs[i].header_count = hn[i];
        cr_assert_eq(kaffe_produce_sync_msg(p, &msgs[i], NULL), KAFFE_OK);
    }
    kaffe_producer_destroy(p);

    header_seen_t h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    kaffe_conf_t *conf = test_conf(b, "headers", "basic-headers", headers_handler, &h,
                                   "async_message_ack", "true", NULL);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    int64_t deadline = clock_now_ms() + 30000;
    for (;;) {
        pthread_mutex_lock(&h.lock);
        int n = h.count;
        pthread_mutex_unlock(&h.lock);
        if (n == 3 || clock_now_ms() > deadline)
            break;
        clock_sleep_ms(5);
    }
    cr_assert_eq(h.count, 3);
    for (int i = 0; i < 3; i++) {
        kaffe_message_t *m = h.kept[i];
        cr_assert_eq(kaffe_message_offset(m), i);
        if (i % 2 == 1) { /* first read on this thread */
            h.counts[i] = kaffe_message_header_count(m);
            const char *name = NULL;
            if (kaffe_message_header(m, 0, &name, NULL, NULL) == KAFFE_OK)
                snprintf(h.first_name[i], sizeof h.first_name[i], "%s", name);
        }
        cr_assert_eq(kaffe_message_header_count(m), hn[i]);
        cr_assert_eq(h.counts[i], hn[i], "message %d: %zu headers", i, h.counts[i]);
        const void *v = NULL;
        size_t len = 0;
        if (i == 0) {
            cr_assert_str_eq(h.first_name[0], "a");
            cr_assert_eq(kaffe_message_header_last(m, "a", &v, &len), KAFFE_OK);
            cr_assert(len == 1 && memcmp(v, "2", 1) == 0, "last a: %.*s", (int)len,
                      (const char *)v);
            const char *name = NULL;
            cr_assert_eq(kaffe_message_header(m, 1, &name, &v, &len), KAFFE_OK);
            cr_assert_str_eq(name, "b");
            cr_assert_null(v);
            cr_assert_eq(kaffe_message_header(m, 3, &name, &v, &len), KAFFE_ERR_INVALID_ARG);
        } else if (i == 1) {
            cr_assert_eq(kaffe_message_header_last(m, "a", &v, &len), KAFFE_ERR_INVALID_ARG);
        } else {
            cr_assert_str_eq(h.first_name[2], "trace");
            cr_assert_eq(kaffe_message_header_last(m, "trace", &v, &len), KAFFE_OK);
            cr_assert(len == 3 && memcmp(v, "xyz", 3) == 0);
        }
        cr_assert_eq(kaffe_consumer_ack(c, m), KAFFE_OK);
    }
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_OK);
    kaffe_consumer_destroy(c);
}
