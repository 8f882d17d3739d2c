/* Misuse of the public API, every case a documented error and never a
 * crash, a hang or a lost message; a plain program so that it also runs
 * under ThreadSanitizer (and AddressSanitizer + UBSan with the rest of the
 * race tier). Needs the embedded cluster (real TCP on 127.0.0.1).
 *
 *   null_arguments_and_wrong_states   NULLs everywhere; start twice, stop
 *       before start, wait/commit before start, rebalance callback after
 *       start, nack with KAFFE_OK, ack of another consumer's message, ack in
 *       sync mode.
 *   lifecycle_calls_from_many_handlers   stop, destroy and wait from handlers
 *       on 8 workers at once: KAFFE_ERR_STATE, the stop requested, nothing
 *       handled twice or lost; commit, allowed there, alongside.
 *   acks_racing_stop   application threads ack while another thread stops:
 *       each ack is KAFFE_OK or KAFFE_ERR_STOPPED, and what was acked before
 *       the stop is committed.
 *   subscription_changes_racing_stop   4 threads add and remove a topic
 *       while messages flow and another thread stops: each call is
 *       KAFFE_OK, KAFFE_ERR_INVALID_ARG (another thread removed it first) or
 *       KAFFE_ERR_STATE (stopping), and the stop returns.
 *   producer_calls_from_its_delivery_callback   sync produce, flush and
 *       destroy from a delivery callback: KAFFE_ERR_STATE, the producer
 *       keeps working. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "common/clock.h"
#include "mock/mock_cluster.h"
#include "support/check.h"
#include "support/plain_client.h"
#include "support/race_support.h"
#include "support/tsan_c11_threads.h" /* librdkafka threads, seen by TSan */

enum { N = 600, PARTITIONS = 2 };

static mock_cluster_t *mc;

static int noop(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

static kaffe_consumer_t *consumer(const char *group, kaffe_message_handler_t handler, void *opaque,
                                  const char *async) {
    const char *const extra[][2] = {{"async_message_ack", async},
                                    {"ordering", "unordered"},
                                    {"workers", "8"},
                                    {"drain_timeout_ms", "2000"}};
    char err[512];
    kaffe_consumer_t *c =
        kaffe_consumer_new(race_consumer_conf(mock_cluster_bootstraps(mc), group, handler, opaque,
                                              extra, sizeof extra / sizeof extra[0]),
                           err, sizeof err);
    CHECK(c != NULL, "%s", err);
    return c;
}

/* --- null_arguments_and_wrong_states ------------------------------------ */

typedef struct keeper {
    pthread_mutex_t lock;
    kaffe_message_t *kept[N];
    size_t count;
    atomic_long handled;
} keeper_t;

static int keep(kaffe_message_t *m, void *opaque) {
    keeper_t *k = opaque;
    pthread_mutex_lock(&k->lock);
    if (k->count < N)
        k->kept[k->count++] = m;
    pthread_mutex_unlock(&k->lock);
    atomic_fetch_add(&k->handled, 1);
    return KAFFE_OK;
}

static void null_arguments_and_wrong_states(void) {
    char err[256];
    /* Configuration. */
    CHECK(kaffe_conf_set(NULL, "topics", "t", err, sizeof err) == KAFFE_ERR_INVALID_ARG, "set");
    size_t size = 0;
    CHECK(kaffe_conf_get(NULL, "topics", NULL, &size) == KAFFE_ERR_INVALID_ARG, "get");
    CHECK(kaffe_conf_load(NULL, "/nonexistent", err, sizeof err) == KAFFE_ERR_INVALID_ARG, "load");
    CHECK(kaffe_conf_dup(NULL) == NULL, "dup");
    kaffe_conf_set_message_handler(NULL, noop, NULL);
    kaffe_conf_set_error_cb(NULL, NULL, NULL);
    kaffe_conf_set_log_cb(NULL, NULL, NULL);
    kaffe_conf_set_partitioner(NULL, NULL, NULL);
    kaffe_conf_destroy(NULL);
    /* Consumer. */
    CHECK(kaffe_consumer_new(NULL, err, sizeof err) == NULL, "new");
    CHECK(kaffe_consumer_start(NULL) == KAFFE_ERR_INVALID_ARG, "start");
    CHECK(kaffe_consumer_stop(NULL) == KAFFE_ERR_INVALID_ARG, "stop");
    CHECK(kaffe_consumer_request_stop(NULL) == KAFFE_ERR_INVALID_ARG, "request_stop");
    CHECK(kaffe_consumer_wait(NULL, 0) == KAFFE_ERR_INVALID_ARG, "wait");
    CHECK(kaffe_consumer_commit(NULL) == KAFFE_ERR_INVALID_ARG, "commit");
    CHECK(kaffe_consumer_ack(NULL, NULL) == KAFFE_ERR_INVALID_ARG, "ack");
    CHECK(kaffe_consumer_nack(NULL, NULL, 1) == KAFFE_ERR_INVALID_ARG, "nack");
    CHECK(kaffe_consumer_last_error(NULL, NULL, 0) == KAFFE_ERR_INVALID_ARG, "last_error");
    CHECK(kaffe_consumer_failure_counters(NULL, NULL) == KAFFE_ERR_INVALID_ARG, "counters");
    CHECK(kaffe_consumer_resume_partition(NULL, "t", 0) == KAFFE_ERR_INVALID_ARG, "resume");
    CHECK(kaffe_consumer_set_rebalance_cb(NULL, NULL, NULL) == KAFFE_ERR_INVALID_ARG, "rebal");
    const char *one[] = {"t"};
    CHECK(kaffe_consumer_subscribe(NULL, one, 1) == KAFFE_ERR_INVALID_ARG, "subscribe");
    CHECK(kaffe_consumer_unsubscribe(NULL, one, 1) == KAFFE_ERR_INVALID_ARG, "unsubscribe");
    kaffe_consumer_stats_t stats = {0};
    CHECK(kaffe_consumer_stats(NULL, &stats) == KAFFE_ERR_INVALID_ARG, "stats");
    kaffe_consumer_destroy(NULL);
    /* Producer. */
    CHECK(kaffe_producer_new(NULL, err, sizeof err) == NULL, "producer_new");
    CHECK(kaffe_produce_sync(NULL, "k", 1, "v", 1) == KAFFE_ERR_INVALID_ARG, "produce_sync");
    CHECK(kaffe_produce_async(NULL, NULL, NULL, NULL) == KAFFE_ERR_INVALID_ARG, "produce_async");
    CHECK(kaffe_producer_flush(NULL, 0) == KAFFE_ERR_INVALID_ARG, "flush");
    kaffe_producer_stats_t pstats = {0};
    CHECK(kaffe_producer_stats(NULL, &pstats) == KAFFE_ERR_INVALID_ARG, "producer_stats");
    kaffe_producer_destroy(NULL);
    /* Messages. */
    CHECK(kaffe_message_topic(NULL) == NULL && kaffe_message_offset(NULL) == -1 &&
              kaffe_message_attempt(NULL) == 0 && kaffe_message_header_count(NULL) == 0,
          "message accessors");

    /* Wrong states, async. */
    keeper_t k = {.lock = PTHREAD_MUTEX_INITIALIZER};
    kaffe_consumer_t *c = consumer("misuse-states", keep, &k, "true");
    if (!c)
        return;
    CHECK(kaffe_consumer_wait(c, 0) == KAFFE_ERR_STATE, "wait before start");
    CHECK(kaffe_consumer_commit(c) == KAFFE_ERR_STATE, "commit before start");
    CHECK(kaffe_consumer_start(c) == KAFFE_OK, "start");
    CHECK(kaffe_consumer_start(c) == KAFFE_ERR_STATE, "start twice");
    CHECK(kaffe_consumer_set_rebalance_cb(c, NULL, NULL) == KAFFE_ERR_STATE, "rebalance cb");
    race_wait_for(&k.handled, N, 60000);
    CHECK(atomic_load(&k.handled) == N, "handled %ld", atomic_load(&k.handled));
    kaffe_consumer_t *other = consumer("misuse-other", noop, NULL, "true");
    for (size_t i = 0; i < k.count; i++) {
        kaffe_message_t *m = k.kept[i];
        if (i == 0) {
            CHECK(kaffe_consumer_nack(c, m, KAFFE_OK) == KAFFE_ERR_INVALID_ARG, "nack OK");
            if (other)
                CHECK(kaffe_consumer_ack(other, m) == KAFFE_ERR_INVALID_ARG, "foreign ack");
        }
        CHECK(kaffe_consumer_ack(c, m) == KAFFE_OK, "ack %zu", i);
    }
    kaffe_consumer_destroy(other);
    CHECK(kaffe_consumer_stop(c) == KAFFE_OK, "stop");
    CHECK(kaffe_consumer_stop(c) == KAFFE_OK, "stop twice");
    CHECK(kaffe_consumer_start(c) == KAFFE_ERR_STATE, "start after stop");
    CHECK(kaffe_consumer_commit(c) == KAFFE_ERR_STOPPED, "commit after stop");
    race_check_committed_to_the_end(mock_cluster_bootstraps(mc), "misuse-states", PARTITIONS);
    kaffe_consumer_destroy(c);

    /* Sync mode: an ack is refused, the handler's return is the ack. */
    keeper_t s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    c = consumer("misuse-sync", keep, &s, "false");
    if (!c)
        return;
    CHECK(kaffe_consumer_stop(c) == KAFFE_OK, "stop before start");
    kaffe_consumer_destroy(c);
}

/* --- lifecycle_calls_from_many_handlers --------------------------------- */

typedef struct inside {
    kaffe_consumer_t *c;
    atomic_long handled, refused, committed, wrong;
    char seen[N];
} inside_t;

static int call_lifecycle(kaffe_message_t *m, void *opaque) {
    inside_t *in = opaque;
    long n = atomic_fetch_add(&in->handled, 1);
    int idx = race_value_index(m);
    if (idx >= 0 && idx < N)
        in->seen[idx]++; /* each message is on one worker: no two writers per index */
    kaffe_status_t st = KAFFE_OK;
    switch (n % 4) {
        case 0:
            st = kaffe_consumer_wait(in->c, 0);
            break;
        case 1: /* allowed from a handler: waits for the poll thread */
            st = kaffe_consumer_commit(in->c);
            if (st == KAFFE_OK || st == KAFFE_ERR_STOPPED) {
                atomic_fetch_add(&in->committed, 1);
                return KAFFE_OK;
            }
            break;
        case 2:
            if (n > N / 2) /* late: the stop request ends the run */
                st = kaffe_consumer_stop(in->c);
            else
                st = kaffe_consumer_wait(in->c, 10);
            break;
        default:
            if (n > N / 2)
                kaffe_consumer_destroy(in->c); /* refused: reported, nothing freed */
            st = KAFFE_ERR_STATE;
            break;
    }
    if (st == KAFFE_ERR_STATE)
        atomic_fetch_add(&in->refused, 1);
    else
        atomic_fetch_add(&in->wrong, 1);
    return KAFFE_OK;
}

static void lifecycle_calls_from_many_handlers(void) {
    inside_t *in = calloc(1, sizeof *in);
    in->c = consumer("misuse-inside", call_lifecycle, in, "false");
    if (!in->c) {
        free(in);
        return;
    }
    CHECK(kaffe_consumer_start(in->c) == KAFFE_OK, "start");
    /* A stop from a handler is a request: the consumer stops by itself. */
    CHECK(kaffe_consumer_wait(in->c, 60000) == KAFFE_OK, "the stop requested from a handler");
    CHECK(kaffe_consumer_stop(in->c) == KAFFE_OK, "stop");
    CHECK(atomic_load(&in->wrong) == 0, "%ld calls from a handler were not refused",
          atomic_load(&in->wrong));
    CHECK(atomic_load(&in->refused) + atomic_load(&in->committed) == atomic_load(&in->handled),
          "refused %ld and committed %ld of %ld", atomic_load(&in->refused),
          atomic_load(&in->committed), atomic_load(&in->handled));
    for (int i = 0; i < N; i++)
        CHECK(in->seen[i] <= 1, "value-%d handled %d times in one run", i, in->seen[i]);
    /* Nothing handled is lost: a second member handles exactly the rest. */
    kaffe_consumer_destroy(in->c);
    keeper_t *rest = calloc(1, sizeof *rest);
    pthread_mutex_init(&rest->lock, NULL);
    kaffe_consumer_t *c = consumer("misuse-inside", keep, rest, "false");
    if (c) {
        CHECK(kaffe_consumer_start(c) == KAFFE_OK, "restart");
        long want = N - atomic_load(&in->handled);
        race_wait_for(&rest->handled, want > 0 ? want : 0, 60000);
        clock_sleep_ms(300);
        CHECK(atomic_load(&rest->handled) >= want, "the rest: %ld of %ld",
              atomic_load(&rest->handled), want);
        CHECK(kaffe_consumer_stop(c) == KAFFE_OK, "stop");
        race_check_committed_to_the_end(mock_cluster_bootstraps(mc), "misuse-inside", PARTITIONS);
        kaffe_consumer_destroy(c);
    }
    pthread_mutex_destroy(&rest->lock);
    free(rest);
    free(in);
}

/* --- acks_racing_stop ----------------------------------------------------- */

typedef struct racing {
    keeper_t k;
    kaffe_consumer_t *c;
    atomic_long next, ok, stopped, wrong;
} racing_t;

static void *acker(void *arg) {
    racing_t *r = arg;
    for (;;) {
        long i = atomic_fetch_add(&r->next, 1);
        if (i >= (long)r->k.count)
            return NULL;
        kaffe_status_t st = kaffe_consumer_ack(r->c, r->k.kept[i]);
        if (st == KAFFE_OK)
            atomic_fetch_add(&r->ok, 1);
        else if (st == KAFFE_ERR_STOPPED)
            atomic_fetch_add(&r->stopped, 1);
        else
            atomic_fetch_add(&r->wrong, 1);
    }
}

static void acks_racing_stop(void) {
    racing_t *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->k.lock, NULL);
    r->c = consumer("misuse-racing", keep, &r->k, "true");
    if (!r->c) {
        free(r);
        return;
    }
    CHECK(kaffe_consumer_start(r->c) == KAFFE_OK, "start");
    race_wait_for(&r->k.handled, N, 60000);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, acker, r);
    CHECK(kaffe_consumer_stop(r->c) == KAFFE_OK, "stop");
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(atomic_load(&r->wrong) == 0, "%ld acks neither OK nor STOPPED", atomic_load(&r->wrong));
    CHECK(atomic_load(&r->ok) + atomic_load(&r->stopped) == (long)r->k.count, "acks counted");
    int64_t committed = 0;
    for (int p = 0; p < PARTITIONS; p++) {
        int64_t o =
            plain_committed(mock_cluster_bootstraps(mc), "misuse-racing", RACE_TOPIC, p, NULL);
        committed += o > 0 ? o : 0;
    }
    CHECK(committed <= atomic_load(&r->ok), "committed %lld past the %ld acked",
          (long long)committed, atomic_load(&r->ok));
    kaffe_consumer_destroy(r->c);
    pthread_mutex_destroy(&r->k.lock);
    free(r);
}

/* --- subscription_changes_racing_stop ----------------------------------- */

typedef struct changer {
    kaffe_consumer_t *c;
    atomic_long handled, calls, wrong;
} changer_t;

static int count_handled(kaffe_message_t *m, void *opaque) {
    (void)m;
    atomic_fetch_add(&((changer_t *)opaque)->handled, 1);
    return KAFFE_OK;
}

static void *change_subscription(void *arg) {
    changer_t *ch = arg;
    const char *extra[] = {"race-extra"};
    for (int i = 0; i < 40; i++) {
        kaffe_status_t st = i % 2 ? kaffe_consumer_unsubscribe(ch->c, extra, 1)
                                  : kaffe_consumer_subscribe(ch->c, extra, 1);
        atomic_fetch_add(&ch->calls, 1);
        if (st == KAFFE_ERR_STATE)
            return NULL; /* stopping */
        if (st != KAFFE_OK && st != KAFFE_ERR_INVALID_ARG)
            atomic_fetch_add(&ch->wrong, 1);
        clock_sleep_ms(5);
    }
    return NULL;
}

static void subscription_changes_racing_stop(void) {
    CHECK(mock_cluster_create_topic(mc, "race-extra", 1) == 0, "create race-extra");
    changer_t *ch = calloc(1, sizeof *ch);
    ch->c = consumer("misuse-subscription", count_handled, ch, "false");
    if (!ch->c) {
        free(ch);
        return;
    }
    CHECK(kaffe_consumer_start(ch->c) == KAFFE_OK, "start");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, change_subscription, ch);
    race_wait_for(&ch->handled, N, 60000);
    clock_sleep_ms(50);
    CHECK(kaffe_consumer_stop(ch->c) == KAFFE_OK, "stop");
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(atomic_load(&ch->handled) >= N, "handled %ld of %d", atomic_load(&ch->handled), N);
    CHECK(atomic_load(&ch->calls) > 0, "no subscription call ran");
    CHECK(atomic_load(&ch->wrong) == 0, "%ld calls neither OK, INVALID_ARG nor STATE",
          atomic_load(&ch->wrong));
    kaffe_consumer_destroy(ch->c);
    free(ch);
}

/* --- producer_calls_from_its_delivery_callback --------------------------- */

typedef struct from_cb {
    kaffe_producer_t *p;
    atomic_long delivered, refused, wrong;
    atomic_int state_errors; /* KAFFE_ERR_STATE told to the error callback */
} from_cb_t;

static void delivered(const kaffe_delivery_report_t *report, void *opaque) {
    from_cb_t *f = opaque;
    if (report->status != KAFFE_OK)
        atomic_fetch_add(&f->wrong, 1);
    (kaffe_produce_sync(f->p, "k", 1, "v", 1) == KAFFE_ERR_STATE ? atomic_fetch_add(&f->refused, 1)
                                                                 : atomic_fetch_add(&f->wrong, 1));
    (kaffe_producer_flush(f->p, 0) == KAFFE_ERR_STATE ? atomic_fetch_add(&f->refused, 1)
                                                      : atomic_fetch_add(&f->wrong, 1));
    kaffe_producer_destroy(f->p); /* refused, reported as KAFFE_ERR_STATE */
    atomic_fetch_add(&f->delivered, 1);
}

static void producer_error(int status, const char *reason, void *opaque) {
    (void)reason;
    from_cb_t *f = opaque;
    if (status == KAFFE_ERR_STATE)
        atomic_fetch_add(&f->state_errors, 1);
}

static void producer_calls_from_its_delivery_callback(void) {
    from_cb_t f = {0};
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    CHECK(kaffe_conf_set(conf, "endpoints", mock_cluster_bootstraps(mc), err, sizeof err) ==
              KAFFE_OK,
          "%s", err);
    CHECK(kaffe_conf_set(conf, "topics", RACE_TOPIC, err, sizeof err) == KAFFE_OK, "%s", err);
    kaffe_conf_set_error_cb(conf, producer_error, &f);
    f.p = kaffe_producer_new(conf, err, sizeof err);
    CHECK(f.p != NULL, "%s", err);
    if (!f.p)
        return;
    enum { M = 50 };
    for (int i = 0; i < M; i++) {
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.value = "x";
        m.value_len = 1;
        CHECK(kaffe_produce_async(f.p, &m, delivered, &f) == KAFFE_OK, "produce %d", i);
    }
    CHECK(kaffe_producer_flush(f.p, 30000) == KAFFE_OK, "flush");
    CHECK(atomic_load(&f.delivered) == M, "delivered %ld", atomic_load(&f.delivered));
    CHECK(atomic_load(&f.refused) == 2 * M, "refused %ld", atomic_load(&f.refused));
    CHECK(atomic_load(&f.wrong) == 0, "%ld wrong results", atomic_load(&f.wrong));
    CHECK(atomic_load(&f.state_errors) == M, "destroy refusals told: %d",
          atomic_load(&f.state_errors));
    /* Still working after all that. */
    CHECK(kaffe_produce_sync(f.p, "k", 1, "v", 1) == KAFFE_OK, "produce after");
    kaffe_producer_destroy(f.p);
}

int main(void) {
    if (!(mc = race_start_cluster(PARTITIONS, N)))
        return 1;
    RUN_CASE(null_arguments_and_wrong_states);
    RUN_CASE(lifecycle_calls_from_many_handlers);
    RUN_CASE(acks_racing_stop);
    RUN_CASE(subscription_changes_racing_stop);
    RUN_CASE(producer_calls_from_its_delivery_callback);
    mock_cluster_stop(mc);
    return check_summary("race_misuse");
}
