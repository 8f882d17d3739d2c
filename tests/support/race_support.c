/* Shared parts of the consumer race programs: see race_support.h. */
#include "support/race_support.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdio.h>

#include "mock/mock_cluster.h"
#include "support/check.h"
#include "support/plain_client.h"
#include "common/clock.h"

void race_nap(void) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

long race_wait_for(atomic_long *counter, long want, int64_t timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    long seen;
    while ((seen = atomic_load(counter)) < want && clock_now_ms() < deadline)
        race_nap();
    return seen;
}

int race_value_index(kaffe_message_t *m) {
    size_t vlen;
    const char *v = kaffe_message_value(m, &vlen);
    return v && vlen > 6 ? atoi(v + 6) : -1;
}

kaffe_conf_t *race_consumer_conf(const char *bootstraps, const char *group,
                                 kaffe_message_handler_t handler, void *opaque,
                                 const char *const (*extra)[2], size_t extra_count) {
    kaffe_conf_t *conf = kaffe_conf_new();
    const char *const base[][2] = {{"endpoints", bootstraps},
                                   {"topics", RACE_TOPIC},
                                   {"consumer_group", group},
                                   {"start_with_earliest_message", "true"},
                                   {"commit_interval_ms", "50"},
                                   {"rdkafka.session.timeout.ms", "6000"},
                                   {"rdkafka.heartbeat.interval.ms", "200"},
                                   {"rdkafka.fetch.wait.max.ms", "20"},
                                   {"rdkafka.log_level", "2"}};
    char err[256];
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        if (kaffe_conf_set(conf, base[i][0], base[i][1], err, sizeof err) != KAFFE_OK)
            CHECK(0, "%s", err);
    for (size_t i = 0; i < extra_count; i++)
        if (kaffe_conf_set(conf, extra[i][0], extra[i][1], err, sizeof err) != KAFFE_OK)
            CHECK(0, "%s", err);
    kaffe_conf_set_message_handler(conf, handler, opaque);
    return conf;
}

mock_cluster_t *race_start_cluster(int partitions, int messages) {
    char err[256];
    mock_topic_t topics[] = {{RACE_TOPIC, partitions}};
    mock_cluster_t *mc = mock_cluster_start(1, topics, 1, err, sizeof err);
    if (!mc) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    if (plain_produce(mock_cluster_bootstraps(mc), RACE_TOPIC, RD_KAFKA_PARTITION_UA,
                      (size_t)messages, 0, 16) != (size_t)messages) {
        fprintf(stderr, "produce failed\n");
        mock_cluster_stop(mc);
        return NULL;
    }
    return mc;
}

void race_check_committed_to_the_end(const char *bootstraps, const char *group, int partitions) {
    for (int p = 0; p < partitions; p++)
        CHECK(plain_committed(bootstraps, group, RACE_TOPIC, p, NULL) ==
                  plain_log_end(bootstraps, RACE_TOPIC, p),
              "%s: partition %d not fully committed", group, p);
}

void race_queue_init(race_queue_t *q, size_t cap) {
    pthread_mutex_init(&q->lock, NULL);
    q->items = calloc(cap, sizeof *q->items);
    q->head = q->tail = 0;
    q->cap = q->items ? cap : 0;
}

void race_queue_destroy(race_queue_t *q) {
    free(q->items);
    pthread_mutex_destroy(&q->lock);
}

bool race_queue_push(race_queue_t *q, kaffe_message_t *m) {
    pthread_mutex_lock(&q->lock);
    bool kept = q->tail < q->cap;
    if (kept)
        q->items[q->tail++] = m;
    pthread_mutex_unlock(&q->lock);
    return kept;
}

kaffe_message_t *race_queue_take_random(race_queue_t *q, unsigned *seed) {
    kaffe_message_t *m = NULL;
    pthread_mutex_lock(&q->lock);
    size_t avail = q->tail - q->head;
    if (avail > 0) {
        /* Swap a random pending message to the head and take it. */
        size_t k = q->head + (size_t)rand_r(seed) % avail;
        m = q->items[k];
        q->items[k] = q->items[q->head];
        q->items[q->head++] = m;
    }
    pthread_mutex_unlock(&q->lock);
    return m;
}

void race_run_sync(const char *bootstraps, const char *group, kaffe_conf_t *conf,
                   atomic_long *handled, long want, int partitions) {
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    CHECK(c != NULL, "%s", err);
    if (!c)
        return;
    CHECK(kaffe_consumer_start(c) == KAFFE_OK, "start");
    race_wait_for(handled, want, 120000);
    CHECK(atomic_load(handled) == want, "handled %ld of %ld", atomic_load(handled), want);
    CHECK(kaffe_consumer_stop(c) == KAFFE_OK, "stop");
    race_check_committed_to_the_end(bootstraps, group, partitions);
    kaffe_consumer_destroy(c);
}

void race_keys_init(race_keys_t *k) {
    memset(k, 0, sizeof *k);
    for (int p = 0; p < RACE_KEY_PARTITIONS; p++)
        for (int i = 0; i < RACE_KEY_IDS; i++)
            k->last[p][i] = -1;
}

void race_keys_enter(race_keys_t *k, int partition, int kid) {
    if (atomic_fetch_add(&k->busy[partition][kid], 1) != 0)
        atomic_fetch_add(&k->bad, 1);
}

void race_keys_saw(race_keys_t *k, int partition, int kid, int64_t offset) {
    if (k->last[partition][kid] >= offset)
        atomic_fetch_add(&k->bad, 1);
    k->last[partition][kid] = offset;
}

void race_keys_leave(race_keys_t *k, int partition, int kid) {
    atomic_fetch_sub(&k->busy[partition][kid], 1);
}

int race_key_id(kaffe_message_t *m) {
    size_t klen;
    const char *key = kaffe_message_key(m, &klen);
    return key && klen > 4 ? atoi(key + 4) % RACE_KEY_IDS : -1;
}

void *race_committer_main(void *arg) {
    race_run_t *run = arg;
    while (!atomic_load(&run->done)) {
        kaffe_status_t st = kaffe_consumer_commit(run->c);
        if (st != KAFFE_OK && st != KAFFE_ERR_STOPPED)
            atomic_fetch_add(&run->bad, 1);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

void *race_stopper_main(void *arg) {
    race_run_t *run = arg;
    if (kaffe_consumer_stop(run->c) != KAFFE_OK)
        atomic_fetch_add(&run->bad, 1);
    return NULL;
}
