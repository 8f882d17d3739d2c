/* Batch handlers under ThreadSanitizer: batches on many workers whose
 * messages are acked later from several application threads in random
 * order while some fail inside the batch (kaffe_batch_fail, retried),
 * commits requested from another thread and a stop from yet another; and
 * sync key-ordered batches checked for one-at-a-time, rising offsets per
 * key. Needs the embedded cluster (real TCP on 127.0.0.1). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "mock/mock_cluster.h"
#include "support/check.h"
#include "support/race_support.h"
#include "support/tsan_c11_threads.h" /* librdkafka threads, seen by TSan */

enum { N = 2000, PARTITIONS = 2, ACKERS = 4, FAIL_EVERY = 50 };

typedef struct shared {
    race_queue_t pending; /* accepted, handed to ackers */
    pthread_mutex_t lock; /* guards seen */
    char *seen;           /* handles per value index */
    atomic_long accepted; /* messages left for the ackers */
    atomic_long acks_ok;
    atomic_int done;
    atomic_int bad;
    kaffe_consumer_t *c;
} shared_t;

static int async_batch(kaffe_batch_t *b, void *opaque) {
    shared_t *s = opaque;
    for (size_t i = 0; i < kaffe_batch_count(b); i++) {
        kaffe_message_t *m = kaffe_batch_message(b, i);
        int idx = race_value_index(m);
        pthread_mutex_lock(&s->lock);
        if (idx >= 0 && idx < N)
            s->seen[idx]++;
        pthread_mutex_unlock(&s->lock);
        if (idx % FAIL_EVERY == 3 && kaffe_message_attempt(m) == 1) {
            if (kaffe_batch_fail(b, i, 5) != KAFFE_OK)
                atomic_fetch_add(&s->bad, 1);
            continue;
        }
        atomic_fetch_add(&s->accepted, 1);
        if (!race_queue_push(&s->pending, m))
            atomic_fetch_add(&s->bad, 1);
    }
    return KAFFE_OK;
}

static void *acker_main(void *arg) {
    shared_t *s = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    while (!atomic_load(&s->done)) {
        kaffe_message_t *m = race_queue_take_random(&s->pending, &seed);
        if (!m) {
            race_nap();
            continue;
        }
        if (kaffe_consumer_ack(s->c, m) == KAFFE_OK)
            atomic_fetch_add(&s->acks_ok, 1);
        else
            atomic_fetch_add(&s->bad, 1);
    }
    return NULL;
}

static void *committer_main(void *arg) {
    shared_t *s = arg;
    while (!atomic_load(&s->done)) {
        kaffe_status_t st = kaffe_consumer_commit(s->c);
        if (st != KAFFE_OK && st != KAFFE_ERR_STOPPED)
            atomic_fetch_add(&s->bad, 1);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *stopper_main(void *arg) {
    shared_t *s = arg;
    if (kaffe_consumer_stop(s->c) != KAFFE_OK)
        atomic_fetch_add(&s->bad, 1);
    return NULL;
}

/* The retries' failure reports are expected: counted, not printed. */
static atomic_long errors_told;

static void count_error(int status, const char *reason, void *opaque) {
    (void)status;
    (void)reason;
    (void)opaque;
    atomic_fetch_add(&errors_told, 1);
}

static kaffe_conf_t *make_conf(const char *bootstraps, const char *group, const char *async,
                               const char *ordering) {
    const char *const extra[][2] = {{"async_message_ack", async},
                                    {"ordering", ordering},
                                    {"workers", "8"},
                                    {"batch_max_messages", "40"},
                                    {"on_error", "retry"},
                                    {"retry_initial_backoff_ms", "5"},
                                    {"retry_max_backoff_ms", "20"},
                                    {"max_in_flight_messages", "300"}};
    kaffe_conf_t *conf =
        race_consumer_conf(bootstraps, group, NULL, NULL, extra, sizeof extra / sizeof extra[0]);
    kaffe_conf_set_error_cb(conf, count_error, NULL);
    return conf;
}

static mock_cluster_t *mc;

static void async_batches_acked_from_many_threads(void) {
    const char *b = mock_cluster_bootstraps(mc);
    shared_t s = {0};
    pthread_mutex_init(&s.lock, NULL);
    race_queue_init(&s.pending, 2 * N);
    s.seen = calloc(N, 1);
    kaffe_conf_t *conf = make_conf(b, "race-batch-async", "true", "unordered");
    kaffe_conf_set_batch_handler(conf, async_batch, &s);
    char err[512];
    s.c = kaffe_consumer_new(conf, err, sizeof err);
    CHECK(s.c != NULL, "%s", err);
    if (!s.c)
        return;
    pthread_t ackers[ACKERS], committer;
    for (int i = 0; i < ACKERS; i++)
        pthread_create(&ackers[i], NULL, acker_main, &s);
    CHECK(kaffe_consumer_start(s.c) == KAFFE_OK, "start");
    pthread_create(&committer, NULL, committer_main, &s);
    race_wait_for(&s.acks_ok, N, 120000);
    CHECK(atomic_load(&s.acks_ok) == N, "acked %ld of %d", atomic_load(&s.acks_ok), N);
    pthread_t stopper;
    pthread_create(&stopper, NULL, stopper_main, &s);
    pthread_join(stopper, NULL);
    atomic_store(&s.done, 1);
    for (int i = 0; i < ACKERS; i++)
        pthread_join(ackers[i], NULL);
    pthread_join(committer, NULL);
    CHECK(atomic_load(&s.bad) == 0, "%d unexpected results", atomic_load(&s.bad));
    for (int i = 0; i < N; i++) {
        int want = i % FAIL_EVERY == 3 ? 2 : 1;
        CHECK(s.seen[i] == want, "value-%d handled %d times, not %d", i, s.seen[i], want);
    }
    race_check_committed_to_the_end(b, "race-batch-async", PARTITIONS);
    kaffe_consumer_destroy(s.c);
    race_queue_destroy(&s.pending);
    free(s.seen);
    pthread_mutex_destroy(&s.lock);
}

/* Sync, key order: no two batches of one key lane run at once, and each
 * key's offsets rise across batches. */
typedef struct keyed {
    atomic_int busy[PARTITIONS][16]; /* a (partition, key) runs one at a time */
    int64_t last[PARTITIONS][16];    /* plain: ordered by the lanes */
    atomic_long handled;
    atomic_int bad;
} keyed_t;

static int keyed_batch(kaffe_batch_t *b, void *opaque) {
    keyed_t *k = opaque;
    size_t n = kaffe_batch_count(b);
    int kids[64 * 4], parts[64 * 4];
    size_t held = 0;
    for (size_t i = 0; i < n; i++) {
        kaffe_message_t *m = kaffe_batch_message(b, i);
        size_t klen;
        const char *key = kaffe_message_key(m, &klen);
        if (!key || klen <= 4)
            continue;
        int kid = atoi(key + 4) % 16;
        int p = kaffe_message_partition(m);
        /* Mark each (partition, key) of the batch busy once. */
        bool mine = false;
        for (size_t j = 0; j < held && !mine; j++)
            mine = kids[j] == kid && parts[j] == p;
        if (!mine) {
            if (atomic_fetch_add(&k->busy[p][kid], 1) != 0)
                atomic_fetch_add(&k->bad, 1);
            if (held < sizeof kids / sizeof kids[0]) {
                kids[held] = kid;
                parts[held++] = p;
            }
        }
        if (k->last[p][kid] >= kaffe_message_offset(m))
            atomic_fetch_add(&k->bad, 1);
        k->last[p][kid] = kaffe_message_offset(m);
    }
    for (size_t j = 0; j < held; j++)
        atomic_fetch_sub(&k->busy[parts[j]][kids[j]], 1);
    atomic_fetch_add(&k->handled, (long)n);
    return KAFFE_OK;
}

static void sync_key_batches_on_many_workers(void) {
    const char *b = mock_cluster_bootstraps(mc);
    keyed_t k = {0};
    for (int p = 0; p < PARTITIONS; p++)
        for (int i = 0; i < 16; i++)
            k.last[p][i] = -1;
    kaffe_conf_t *conf = make_conf(b, "race-batch-key", "false", "key");
    kaffe_conf_set_batch_handler(conf, keyed_batch, &k);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    CHECK(c != NULL, "%s", err);
    if (!c)
        return;
    CHECK(kaffe_consumer_start(c) == KAFFE_OK, "start");
    race_wait_for(&k.handled, N, 120000);
    CHECK(atomic_load(&k.handled) == N, "handled %ld of %d", atomic_load(&k.handled), N);
    CHECK(kaffe_consumer_stop(c) == KAFFE_OK, "stop");
    CHECK(atomic_load(&k.bad) == 0, "%d key-order violations", atomic_load(&k.bad));
    race_check_committed_to_the_end(b, "race-batch-key", PARTITIONS);
    kaffe_consumer_destroy(c);
}

int main(void) {
    if (!(mc = race_start_cluster(PARTITIONS, N)))
        return 1;
    RUN_CASE(async_batches_acked_from_many_threads);
    RUN_CASE(sync_key_batches_on_many_workers);
    mock_cluster_stop(mc);
    return check_summary("race_batch");
}
