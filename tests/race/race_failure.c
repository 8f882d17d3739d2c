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
#include "support/plain_client.h"
#include "support/tsan_c11_threads.h" /* librdkafka threads, seen by TSan */

enum { N = 1000, PARTITIONS = 2, ACKERS = 4 };

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

static int value_index(kaffe_message_t *m) {
    size_t vlen;
    const char *v = kaffe_message_value(m, &vlen);
    return v && vlen > 6 ? atoi(v + 6) : -1;
}

typedef struct shared {
    pthread_mutex_t lock;
    kaffe_message_t **queue; /* handed to ackers */
    size_t head, tail, cap;
    char *acked; /* per value: acked OK, under lock */
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
    int v = value_index(m);
    if (v % 7 == 0 && kaffe_message_attempt(m) == 1)
        return KAFFE_ERR_HANDLER;
    pthread_mutex_lock(&s->lock);
    if (s->tail < s->cap)
        s->queue[s->tail++] = m;
    else
        atomic_fetch_add(&s->bad, 1);
    pthread_mutex_unlock(&s->lock);
    return KAFFE_OK;
}

/* Nacks values % 5 == 0 on their first attempt, acks everything else, in a
 * random order. */
static void *acker_main(void *arg) {
    shared_t *s = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    while (!atomic_load(&s->done)) {
        kaffe_message_t *m = NULL;
        pthread_mutex_lock(&s->lock);
        size_t avail = s->tail - s->head;
        if (avail > 0) {
            size_t k = s->head + (size_t)rand_r(&seed) % avail;
            kaffe_message_t *t = s->queue[k];
            s->queue[k] = s->queue[s->head];
            s->queue[s->head] = t;
            m = s->queue[s->head++];
        }
        pthread_mutex_unlock(&s->lock);
        if (!m) {
            nap();
            continue;
        }
        int v = value_index(m);
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
    kaffe_conf_t *conf = kaffe_conf_new();
    const char *kv[][2] = {{"endpoints", bootstraps},
                           {"topics", "race"},
                           {"consumer_group", group},
                           {"start_with_earliest_message", "true"},
                           {"async_message_ack", async},
                           {"ordering", ordering},
                           {"on_error", on_error},
                           {"retry_max_attempts", "3"},
                           {"retry_initial_backoff_ms", "1"},
                           {"retry_max_backoff_ms", "5"},
                           {"workers", "4"},
                           {"commit_interval_ms", "50"},
                           {"rdkafka.session.timeout.ms", "6000"},
                           {"rdkafka.heartbeat.interval.ms", "200"},
                           {"rdkafka.fetch.wait.max.ms", "20"},
                           {"rdkafka.log_level", "2"}};
    char err[256];
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kaffe_conf_set(conf, kv[i][0], kv[i][1], err, sizeof err) != KAFFE_OK)
            CHECK(0, "%s", err);
    kaffe_conf_set_message_handler(conf, handler, opaque);
    return conf;
}

static mock_cluster_t *mc;

static void committed_to_the_end(const char *group) {
    const char *b = mock_cluster_bootstraps(mc);
    for (int p = 0; p < PARTITIONS; p++)
        CHECK(plain_committed(b, group, "race", p, NULL) == plain_log_end(b, "race", p),
              "%s: partition %d not fully committed", group, p);
}

static void retries_and_nacks_from_many_threads(void) {
    shared_t s = {0};
    pthread_mutex_init(&s.lock, NULL);
    s.cap = 4 * N;
    s.queue = calloc(s.cap, sizeof *s.queue);
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
    int64_t deadline = now_ms() + 120000;
    while (atomic_load(&s.acked_values) < N && now_ms() < deadline)
        nap();
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
    free(s.queue);
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
    return value_index(m) % 50 == 0 && kaffe_message_attempt(m) == 1 ? KAFFE_ERR_HANDLER : KAFFE_OK;
}

static void *resumer_main(void *arg) {
    paused_t *p = arg;
    while (!atomic_load(&p->done)) {
        for (int i = 0; i < PARTITIONS; i++)
            kaffe_consumer_resume_partition(p->c, "race", i);
        nap();
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
    int64_t deadline = now_ms() + 120000;
    while (atomic_load(&p.handled) < want && now_ms() < deadline)
        nap();
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

int main(void) {
    char err[256];
    mock_topic_t topics[] = {{"race", PARTITIONS}};
    mc = mock_cluster_start(1, topics, 1, err, sizeof err);
    if (!mc) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (plain_produce(mock_cluster_bootstraps(mc), "race", RD_KAFKA_PARTITION_UA, N, 0, 16) != N) {
        fprintf(stderr, "produce failed\n");
        return 1;
    }
    RUN_CASE(retries_and_nacks_from_many_threads);
    RUN_CASE(pause_and_resume_from_another_thread);
    mock_cluster_stop(mc);
    return check_summary("race_failure");
}
