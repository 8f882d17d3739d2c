/* The failure path under ThreadSanitizer: handlers failing on many workers
 * (retries holding key lanes, woken by the poll thread), async nacks and
 * acks from several application threads, pause and resume from another
 * thread, and stop from yet another. Needs the embedded cluster. */
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

enum { N = 1000, PARTITIONS = 2, ACKERS = 4 };

typedef struct shared {
    race_queue_t pending; /* handled, handed to ackers */
    pthread_mutex_t lock; /* guards acked */
    char *acked;          /* per value: acked OK */
    atomic_long acked_values;
    atomic_long nacks;
    atomic_long handled;
    atomic_int done;
    atomic_int bad;
    kaffe_consumer_t *c;
} shared_t;

/* Fails values % 7 == 0 on their first attempt (a retry that holds the
 * key lane); queues the rest for the ackers. */
static int async_handler(kaffe_message_t *m, void *opaque) {
    shared_t *s = opaque;
    atomic_fetch_add(&s->handled, 1);
    int v = race_value_index(m);
    if (v % 7 == 0 && kaffe_message_attempt(m) == 1)
        return KAFFE_ERR_HANDLER;
    if (!race_queue_push(&s->pending, m))
        atomic_fetch_add(&s->bad, 1);
    return KAFFE_OK;
}

/* Nacks values % 5 == 0 on their first attempt, acks everything else, in a
 * random order. */
static void *acker_main(void *arg) {
    shared_t *s = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    while (!atomic_load(&s->done)) {
        kaffe_message_t *m = race_queue_take_random(&s->pending, &seed);
        if (!m) {
            race_nap();
            continue;
        }
        int v = race_value_index(m);
        if (v % 5 == 0 && kaffe_message_attempt(m) == 1) {
            if (kaffe_consumer_nack(s->c, m, KAFFE_ERR_HANDLER) == KAFFE_OK)
                atomic_fetch_add(&s->nacks, 1);
            else
                atomic_fetch_add(&s->bad, 1);
            continue;
        }
        if (kaffe_consumer_ack(s->c, m) != KAFFE_OK) {
            atomic_fetch_add(&s->bad, 1);
            continue;
        }
        pthread_mutex_lock(&s->lock);
        if (v >= 0 && v < N && !s->acked[v]) {
            s->acked[v] = 1;
            atomic_fetch_add(&s->acked_values, 1);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static kaffe_conf_t *make_conf(const char *bootstraps, const char *group, void *opaque,
                               kaffe_message_handler_t handler, const char *async,
                               const char *ordering, const char *on_error) {
    const char *const extra[][2] = {{"async_message_ack", async},
                                    {"ordering", ordering},
                                    {"on_error", on_error},
                                    {"retry_max_attempts", "3"},
                                    {"retry_initial_backoff_ms", "1"},
                                    {"retry_max_backoff_ms", "5"},
                                    {"workers", "4"}};
    return race_consumer_conf(bootstraps, group, handler, opaque, extra,
                              sizeof extra / sizeof extra[0]);
}

static mock_cluster_t *mc;

static void committed_to_the_end(const char *group) {
    race_check_committed_to_the_end(mock_cluster_bootstraps(mc), group, PARTITIONS);
}

static void retries_and_nacks_from_many_threads(void) {
    shared_t s = {0};
    pthread_mutex_init(&s.lock, NULL);
    race_queue_init(&s.pending, 4 * N);
    s.acked = calloc(N, 1);
    char err[512];
    s.c = kaffe_consumer_new(make_conf(mock_cluster_bootstraps(mc), "race-retry", &s, async_handler,
                                       "true", "key", "retry"),
                             err, sizeof err);
    CHECK(s.c != NULL, "%s", err);
    if (!s.c)
        return;
    pthread_t ackers[ACKERS];
    for (int i = 0; i < ACKERS; i++)
        pthread_create(&ackers[i], NULL, acker_main, &s);
    CHECK(kaffe_consumer_start(s.c) == KAFFE_OK, "start");
    race_wait_for(&s.acked_values, N, 120000);
    CHECK(atomic_load(&s.acked_values) == N, "acked %ld of %d", atomic_load(&s.acked_values), N);
    CHECK(kaffe_consumer_commit(s.c) == KAFFE_OK, "commit");
    CHECK(kaffe_consumer_stop(s.c) == KAFFE_OK, "stop");
    atomic_store(&s.done, 1);
    for (int i = 0; i < ACKERS; i++)
        pthread_join(ackers[i], NULL);
    CHECK(atomic_load(&s.bad) == 0, "%d unexpected results", atomic_load(&s.bad));
    kaffe_failure_counters_t k;
    kaffe_consumer_failure_counters(s.c, &k);
    CHECK(k.retries == k.failures && k.retries > 0, "retries %llu failures %llu",
          (unsigned long long)k.retries, (unsigned long long)k.failures);
    CHECK((long)k.failures - atomic_load(&s.nacks) == (N + 6) / 7, "handler failures %llu",
          (unsigned long long)k.failures);
    committed_to_the_end("race-retry");
    kaffe_consumer_destroy(s.c);
    race_queue_destroy(&s.pending);
    free(s.acked);
    pthread_mutex_destroy(&s.lock);
}

/* Sync, partition order, on_error=pause: values % 50 == 0 fail on their
 * first attempt; another thread keeps resuming both partitions. */
typedef struct paused {
    atomic_long handled;
    atomic_int done;
    kaffe_consumer_t *c;
} paused_t;

static int pause_handler(kaffe_message_t *m, void *opaque) {
    paused_t *p = opaque;
    atomic_fetch_add(&p->handled, 1);
    return race_value_index(m) % 50 == 0 && kaffe_message_attempt(m) == 1 ? KAFFE_ERR_HANDLER
                                                                          : KAFFE_OK;
}

static void *resumer_main(void *arg) {
    paused_t *p = arg;
    while (!atomic_load(&p->done)) {
        for (int i = 0; i < PARTITIONS; i++)
            kaffe_consumer_resume_partition(p->c, RACE_TOPIC, i);
        race_nap();
    }
    return NULL;
}

static void pause_and_resume_from_another_thread(void) {
    paused_t p = {0};
    char err[512];
    p.c = kaffe_consumer_new(make_conf(mock_cluster_bootstraps(mc), "race-pause", &p, pause_handler,
                                       "false", "partition", "pause"),
                             err, sizeof err);
    CHECK(p.c != NULL, "%s", err);
    if (!p.c)
        return;
    pthread_t resumer;
    pthread_create(&resumer, NULL, resumer_main, &p);
    CHECK(kaffe_consumer_start(p.c) == KAFFE_OK, "start");
    long want = N + N / 50;
    race_wait_for(&p.handled, want, 120000);
    CHECK(atomic_load(&p.handled) == want, "handled %ld of %ld", atomic_load(&p.handled), want);
    CHECK(kaffe_consumer_commit(p.c) == KAFFE_OK, "commit");
    CHECK(kaffe_consumer_stop(p.c) == KAFFE_OK, "stop");
    atomic_store(&p.done, 1);
    pthread_join(resumer, NULL);
    kaffe_failure_counters_t k;
    kaffe_consumer_failure_counters(p.c, &k);
    CHECK(k.paused == N / 50, "paused %llu", (unsigned long long)k.paused);
    committed_to_the_end("race-pause");
    kaffe_consumer_destroy(p.c);
}

/* Sync, key order, on_error=pause, never resumed: values % 50 == 0 hold
 * their key lanes when stop comes (from this thread, while workers run
 * other lanes). Stop releases each held message unhandled and, with it,
 * what is queued behind it: no later value of its key may be handled. */
typedef struct held {
    atomic_long handled, paused;
    atomic_char ok[N]; /* handled OK */
} held_t;

static int held_handler(kaffe_message_t *m, void *opaque) {
    held_t *h = opaque;
    int v = race_value_index(m);
    atomic_fetch_add(&h->handled, 1);
    if (v % 50 == 0) {
        atomic_fetch_add(&h->paused, 1);
        return KAFFE_ERR_HANDLER;
    }
    if (v >= 0 && v < N)
        atomic_store(&h->ok[v], 1);
    return KAFFE_OK;
}

static void stop_releases_held_lanes(void) {
    held_t *h = calloc(1, sizeof *h);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(make_conf(mock_cluster_bootstraps(mc), "race-held", h,
                                                       held_handler, "false", "key", "pause"),
                                             err, sizeof err);
    CHECK(c != NULL, "%s", err);
    if (!c) {
        free(h);
        return;
    }
    CHECK(kaffe_consumer_start(c) == KAFFE_OK, "start");
    race_wait_for(&h->paused, 4, 120000);
    CHECK(kaffe_consumer_stop(c) == KAFFE_OK, "stop");
    /* Values of one key share a lane (keys are value % 16). */
    for (int v = 0; v < N; v += 50)
        for (int w = v + 16; w < N; w += 16)
            CHECK(!atomic_load(&h->ok[w]), "value %d handled while value %d held its lane", w, v);
    kaffe_consumer_destroy(c);
    free(h);
}

int main(void) {
    if (!(mc = race_start_cluster(PARTITIONS, N)))
        return 1;
    RUN_CASE(retries_and_nacks_from_many_threads);
    RUN_CASE(pause_and_resume_from_another_thread);
    RUN_CASE(stop_releases_held_lanes);
    mock_cluster_stop(mc);
    return check_summary("race_failure");
}
