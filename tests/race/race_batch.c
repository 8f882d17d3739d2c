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
#include "support/error_counter.h"
#include "support/check.h"
#include "support/race_support.h"
#include "support/tsan_c11_threads.h" /* librdkafka threads, seen by TSan */

enum { N = 2000, PARTITIONS = 2, ACKERS = 4, FAIL_EVERY = 50 };

typedef struct shared {
    race_run_t run;       /* the consumer, done, bad */
    race_queue_t pending; /* accepted, handed to ackers */
    pthread_mutex_t lock; /* guards seen */
    char *seen;           /* handles per value index */
    atomic_long accepted; /* messages left for the ackers */
    atomic_long acks_ok;
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
                atomic_fetch_add(&s->run.bad, 1);
            continue;
        }
        atomic_fetch_add(&s->accepted, 1);
        if (!race_queue_push(&s->pending, m))
            atomic_fetch_add(&s->run.bad, 1);
    }
    return KAFFE_OK;
}

static void *acker_main(void *arg) {
    shared_t *s = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    while (!atomic_load(&s->run.done)) {
        kaffe_message_t *m = race_queue_take_random(&s->pending, &seed);
        if (!m) {
            race_nap();
            continue;
        }
        if (kaffe_consumer_ack(s->run.c, m) == KAFFE_OK)
            atomic_fetch_add(&s->acks_ok, 1);
        else
            atomic_fetch_add(&s->run.bad, 1);
    }
    return NULL;
}

static atomic_long errors_told; /* expected: counted, not printed */

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
    kaffe_conf_set_error_cb(conf, error_counter_cb, &errors_told);
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
    s.run.c = kaffe_consumer_new(conf, err, sizeof err);
    CHECK(s.run.c != NULL, "%s", err);
    if (!s.run.c)
        return;
    pthread_t ackers[ACKERS], committer;
    for (int i = 0; i < ACKERS; i++)
        pthread_create(&ackers[i], NULL, acker_main, &s);
    CHECK(kaffe_consumer_start(s.run.c) == KAFFE_OK, "start");
    pthread_create(&committer, NULL, race_committer_main, &s.run);
    race_wait_for(&s.acks_ok, N, 120000);
    CHECK(atomic_load(&s.acks_ok) == N, "acked %ld of %d", atomic_load(&s.acks_ok), N);
    pthread_t stopper;
    pthread_create(&stopper, NULL, race_stopper_main, &s.run);
    pthread_join(stopper, NULL);
    atomic_store(&s.run.done, 1);
    for (int i = 0; i < ACKERS; i++)
        pthread_join(ackers[i], NULL);
    pthread_join(committer, NULL);
    CHECK(atomic_load(&s.run.bad) == 0, "%d unexpected results", atomic_load(&s.run.bad));
    for (int i = 0; i < N; i++) {
        int want = i % FAIL_EVERY == 3 ? 2 : 1;
        CHECK(s.seen[i] == want, "value-%d handled %d times, not %d", i, s.seen[i], want);
    }
    race_check_committed_to_the_end(b, "race-batch-async", PARTITIONS);
    kaffe_consumer_destroy(s.run.c);
    race_queue_destroy(&s.pending);
    free(s.seen);
    pthread_mutex_destroy(&s.lock);
}

/* Sync, key order: no two batches of one key lane run at once, and each
 * key's offsets rise across batches. */
typedef struct keyed {
    race_keys_t keys;
    atomic_long handled;
} keyed_t;

static int keyed_batch(kaffe_batch_t *b, void *opaque) {
    keyed_t *k = opaque;
    size_t n = kaffe_batch_count(b);
    /* Each (partition, key id) of the batch is entered once, left at the end. */
    bool entered[RACE_KEY_PARTITIONS][RACE_KEY_IDS] = {{false}};
    for (size_t i = 0; i < n; i++) {
        kaffe_message_t *m = kaffe_batch_message(b, i);
        int kid = race_key_id(m);
        int p = kaffe_message_partition(m);
        if (kid < 0)
            continue;
        if (!entered[p][kid]) {
            race_keys_enter(&k->keys, p, kid);
            entered[p][kid] = true;
        }
        race_keys_saw(&k->keys, p, kid, kaffe_message_offset(m));
    }
    for (int p = 0; p < RACE_KEY_PARTITIONS; p++)
        for (int kid = 0; kid < RACE_KEY_IDS; kid++)
            if (entered[p][kid])
                race_keys_leave(&k->keys, p, kid);
    atomic_fetch_add(&k->handled, (long)n);
    return KAFFE_OK;
}

static void sync_key_batches_on_many_workers(void) {
    const char *b = mock_cluster_bootstraps(mc);
    keyed_t k = {0};
    race_keys_init(&k.keys);
    kaffe_conf_t *conf = make_conf(b, "race-batch-key", "false", "key");
    kaffe_conf_set_batch_handler(conf, keyed_batch, &k);
    race_run_sync(b, "race-batch-key", conf, &k.handled, N, PARTITIONS);
    CHECK(atomic_load(&k.keys.bad) == 0, "%d key-order violations", atomic_load(&k.keys.bad));
}

int main(void) {
    if (!(mc = race_start_cluster(PARTITIONS, N)))
        return 1;
    RUN_CASE(async_batches_acked_from_many_threads);
    RUN_CASE(sync_key_batches_on_many_workers);
    mock_cluster_stop(mc);
    return check_summary("race_batch");
}
