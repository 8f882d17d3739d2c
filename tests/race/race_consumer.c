/* The consumer under ThreadSanitizer: handlers on many workers, async acks
 * from several application threads in random order, duplicate acks racing
 * the real ones, headers read first on the worker or first on an acker,
 * commits requested from another thread, and stop called from a thread
 * other than the one that started it. Needs the embedded
 * cluster (real TCP on 127.0.0.1). */
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

enum { N = 2000, PARTITIONS = 2, ACKERS = 4 };

typedef struct shared {
    race_run_t run;          /* the consumer, done, bad */
    race_queue_t pending;    /* handled, handed to ackers */
    pthread_mutex_t lock;    /* guards acked, acked_count, seen */
    kaffe_message_t **acked; /* for duplicate acks */
    size_t acked_count;
    atomic_long handled;
    atomic_long acks_ok;
    atomic_long duplicates_refused;
    char *seen; /* handles per value index */
} shared_t;

static int async_handler(kaffe_message_t *m, void *opaque) {
    shared_t *s = opaque;
    int idx = race_value_index(m);
    pthread_mutex_lock(&s->lock);
    if (idx >= 0 && idx < N)
        s->seen[idx]++;
    pthread_mutex_unlock(&s->lock);
    /* Headers are parsed on first read: by this worker for even offsets, by
     * the acker thread for odd ones (no message here carries headers). */
    if (kaffe_message_offset(m) % 2 == 0 && kaffe_message_header_count(m) != 0)
        atomic_fetch_add(&s->run.bad, 1);
    if (!race_queue_push(&s->pending, m))
        atomic_fetch_add(&s->run.bad, 1);
    atomic_fetch_add(&s->handled, 1);
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
        const char *name = NULL;
        if (kaffe_message_header_count(m) != 0 ||
            kaffe_message_header(m, 0, &name, NULL, NULL) != KAFFE_ERR_INVALID_ARG)
            atomic_fetch_add(&s->run.bad, 1);
        kaffe_status_t st = kaffe_consumer_ack(s->run.c, m);
        if (st != KAFFE_OK) {
            atomic_fetch_add(&s->run.bad, 1);
            continue;
        }
        atomic_fetch_add(&s->acks_ok, 1);
        pthread_mutex_lock(&s->lock);
        s->acked[s->acked_count++] = m;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

/* Re-acks messages that were acked already: always refused. */
static void *duplicate_main(void *arg) {
    shared_t *s = arg;
    unsigned seed = 7;
    while (!atomic_load(&s->run.done)) {
        kaffe_message_t *m = NULL;
        pthread_mutex_lock(&s->lock);
        if (s->acked_count > 0)
            m = s->acked[(size_t)rand_r(&seed) % s->acked_count];
        pthread_mutex_unlock(&s->lock);
        if (m) {
            kaffe_status_t st = kaffe_consumer_ack(s->run.c, m);
            if (st == KAFFE_ERR_ACK_DUPLICATE)
                atomic_fetch_add(&s->duplicates_refused, 1);
            else
                atomic_fetch_add(&s->run.bad, 1);
        }
        race_nap();
    }
    return NULL;
}

static kaffe_conf_t *make_conf(const char *bootstraps, const char *group, void *opaque,
                               kaffe_message_handler_t handler, const char *async,
                               const char *ordering) {
    const char *const extra[][2] = {{"async_message_ack", async},
                                    {"ordering", ordering},
                                    {"workers", "8"},
                                    {"max_in_flight_messages", "300"}};
    return race_consumer_conf(bootstraps, group, handler, opaque, extra,
                              sizeof extra / sizeof extra[0]);
}

static mock_cluster_t *mc;

static void async_acks_from_many_threads(void) {
    const char *b = mock_cluster_bootstraps(mc);
    shared_t s = {0};
    pthread_mutex_init(&s.lock, NULL);
    race_queue_init(&s.pending, 2 * N);
    s.acked = calloc(2 * N, sizeof *s.acked);
    s.seen = calloc(N, 1);
    char err[512];
    s.run.c = kaffe_consumer_new(make_conf(b, "race-async", &s, async_handler, "true", "unordered"),
                                 err, sizeof err);
    CHECK(s.run.c != NULL, "%s", err);
    if (!s.run.c)
        return;
    pthread_t ackers[ACKERS], dup, committer;
    for (int i = 0; i < ACKERS; i++)
        pthread_create(&ackers[i], NULL, acker_main, &s);
    pthread_create(&dup, NULL, duplicate_main, &s);
    CHECK(kaffe_consumer_start(s.run.c) == KAFFE_OK, "start");
    pthread_create(&committer, NULL, race_committer_main, &s.run);
    race_wait_for(&s.acks_ok, N, 120000);
    CHECK(atomic_load(&s.acks_ok) == N, "acked %ld of %d", atomic_load(&s.acks_ok), N);
    CHECK(kaffe_consumer_commit(s.run.c) == KAFFE_OK, "commit");
    /* Stop from yet another thread while the others still run. */
    pthread_t stopper;
    pthread_create(&stopper, NULL, race_stopper_main, &s.run);
    pthread_join(stopper, NULL);
    atomic_store(&s.run.done, 1);
    for (int i = 0; i < ACKERS; i++)
        pthread_join(ackers[i], NULL);
    pthread_join(dup, NULL);
    pthread_join(committer, NULL);
    CHECK(atomic_load(&s.run.bad) == 0, "%d unexpected results", atomic_load(&s.run.bad));
    CHECK(atomic_load(&s.duplicates_refused) > 0, "no duplicate ack was tried");
    for (int i = 0; i < N; i++)
        CHECK(s.seen[i] == 1, "value-%d handled %d times", i, s.seen[i]);
    race_check_committed_to_the_end(b, "race-async", PARTITIONS);
    kaffe_consumer_destroy(s.run.c);
    race_queue_destroy(&s.pending);
    free(s.acked);
    free(s.seen);
    pthread_mutex_destroy(&s.lock);
}

/* Sync, key order: a handler checks it never runs two messages of one key
 * at once and sees each key's offsets rising. */
typedef struct keyed {
    race_keys_t keys;
    atomic_long handled;
} keyed_t;

static int keyed_handler(kaffe_message_t *m, void *opaque) {
    keyed_t *k = opaque;
    int kid = race_key_id(m);
    int p = kaffe_message_partition(m);
    if (kid >= 0) {
        race_keys_enter(&k->keys, p, kid);
        race_keys_saw(&k->keys, p, kid, kaffe_message_offset(m));
        race_keys_leave(&k->keys, p, kid);
    }
    atomic_fetch_add(&k->handled, 1);
    return KAFFE_OK;
}

static void sync_key_order_on_many_workers(void) {
    const char *b = mock_cluster_bootstraps(mc);
    keyed_t k = {0};
    race_keys_init(&k.keys);
    race_run_sync(b, "race-key", make_conf(b, "race-key", &k, keyed_handler, "false", "key"),
                  &k.handled, N, PARTITIONS);
    CHECK(atomic_load(&k.keys.bad) == 0, "%d key-order violations", atomic_load(&k.keys.bad));
}

int main(void) {
    if (!(mc = race_start_cluster(PARTITIONS, N)))
        return 1;
    RUN_CASE(async_acks_from_many_threads);
    RUN_CASE(sync_key_order_on_many_workers);
    mock_cluster_stop(mc);
    return check_summary("race_consumer");
}
