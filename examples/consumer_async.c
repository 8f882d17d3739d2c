/* consumer_async — asynchronous acks: Kaffe's handle_message/2 plus
 * Kaffe.Consumer.ack(pid, message), in C.
 *
 * Usage: consumer_async [ENDPOINTS [TOPIC [COUNT]]]
 *
 *   ENDPOINTS  bootstrap brokers, host:port[,host:port]
 *              (default: $KAFFE_ENDPOINTS, else localhost:9092)
 *   TOPIC      the topic to consume (default: $KAFFE_TOPIC, else commitlog)
 *   COUNT      stop after acking this many messages; 0 (the default) runs
 *              until SIGTERM or SIGINT (Ctrl-C)
 *
 * The consumer group is $KAFFE_GROUP, else consumer-async-example. If
 * $KAFFE_CONF names a file, its "name = value" lines are applied on top.
 *
 * With async_message_ack = true the handler only accepts a message: it puts
 * it on the application's own job queue and returns. A pool of APP_WORKERS
 * application threads takes messages off the queue, processes them (here:
 * prints the value in upper case), and acks each one with
 * kaffe_consumer_ack(), in whatever order they finish. kaffe commits, per
 * partition, only up to the first message not yet acked, so a message whose
 * worker never acks it is delivered again after a restart — unlike Kaffe,
 * nothing is skipped.
 *
 * Prints "acked topic/partition@offset key: VALUE" per message (in completion
 * order, not offset order), then "acked N messages". Exit status: 0 on a
 * clean stop, 1 when the consumer failed, 2 for a bad configuration. */
#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <kaffe/kaffe.h>

#define APP_WORKERS 4

/* The application's job queue: a linked list under a mutex. It needs no
 * bound of its own: kaffe stops delivering a partition's messages once
 * max_in_flight_messages of them are accepted and not yet acked. */
typedef struct job {
    kaffe_message_t *m;
    struct job *next;
} job_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job_t *head, **tail;
    bool closed;
} queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &queue.head, false};

static kaffe_consumer_t *consumer;
static long limit;        /* 0: no limit */
static atomic_long acked; /* messages acked with KAFFE_OK */

/* Called on a kaffe worker thread. Returning KAFFE_OK accepts m: it stays
 * valid until we ack it, exactly once, from any thread. */
static int handle_message(kaffe_message_t *m, void *opaque) {
    (void)opaque;
    job_t *job = malloc(sizeof *job);
    if (!job)
        return KAFFE_ERR_NOMEM; /* a handler failure: the consumer stops, m is redelivered later */
    job->m = m;
    job->next = NULL;
    pthread_mutex_lock(&queue.lock);
    *queue.tail = job;
    queue.tail = &job->next;
    pthread_cond_signal(&queue.cond);
    pthread_mutex_unlock(&queue.lock);
    return KAFFE_OK; /* accepted, not yet acked */
}

/* Takes the next message; NULL once the queue is closed and empty. */
static kaffe_message_t *next_message(void) {
    pthread_mutex_lock(&queue.lock);
    while (!queue.head && !queue.closed)
        pthread_cond_wait(&queue.cond, &queue.lock);
    job_t *job = queue.head;
    if (job) {
        queue.head = job->next;
        if (!queue.head)
            queue.tail = &queue.head;
    }
    pthread_mutex_unlock(&queue.lock);
    if (!job)
        return NULL;
    kaffe_message_t *m = job->m;
    free(job);
    return m;
}

static void *app_worker(void *arg) {
    (void)arg;
    kaffe_message_t *m;
    while ((m = next_message())) {
        /* "Processing": the value in upper case. */
        size_t klen, vlen;
        const char *key = kaffe_message_key(m, &klen);
        const char *value = kaffe_message_value(m, &vlen);
        char upper[256];
        size_t n = value ? (vlen < sizeof upper ? vlen : sizeof upper - 1) : 0;
        for (size_t i = 0; i < n; i++)
            upper[i] = (char)toupper((unsigned char)value[i]);
        char line[512];
        snprintf(line, sizeof line, "acked %s/%d@%lld %.*s: %.*s", kaffe_message_topic(m),
                 (int)kaffe_message_partition(m), (long long)kaffe_message_offset(m),
                 key ? (int)klen : 6, key ? key : "(null)", (int)n, upper);

        /* The ack releases m: it must not be used afterwards. */
        kaffe_status_t st = kaffe_consumer_ack(consumer, m);
        if (st == KAFFE_OK) {
            puts(line);
            if (atomic_fetch_add(&acked, 1) + 1 == limit)
                kaffe_consumer_request_stop(consumer);
        } else {
            /* KAFFE_ERR_REVOKED: the partition moved to another consumer,
             * which gets the message again. KAFFE_ERR_STOPPED: the consumer
             * had finished stopping; the message was not committed and is
             * delivered again after a restart. */
            fprintf(stderr, "not acked (%s): %s\n", kaffe_err_name(st), line);
        }
    }
    return NULL;
}

static void on_signal(int sig) {
    (void)sig;
    kaffe_consumer_request_stop(consumer); /* async-signal-safe */
}

static const char *arg_or_env(int argc, char **argv, int i, const char *env, const char *dflt) {
    if (argc > i)
        return argv[i];
    const char *v = getenv(env);
    return v && *v ? v : dflt;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, also into a pipe */
    const char *endpoints = arg_or_env(argc, argv, 1, "KAFFE_ENDPOINTS", "localhost:9092");
    const char *topic = arg_or_env(argc, argv, 2, "KAFFE_TOPIC", "commitlog");
    const char *group = arg_or_env(0, NULL, 0, "KAFFE_GROUP", "consumer-async-example");
    const char *conf_file = getenv("KAFFE_CONF");
    limit = argc > 3 ? atol(argv[3]) : 0;

    char err[512];
    kaffe_conf_t *conf = kaffe_conf_new();
    if (!conf)
        return 1;
    if (kaffe_conf_set(conf, "endpoints", endpoints, err, sizeof err) ||
        kaffe_conf_set(conf, "topics", topic, err, sizeof err) ||
        kaffe_conf_set(conf, "consumer_group", group, err, sizeof err) ||
        kaffe_conf_set(conf, "start_with_earliest_message", "true", err, sizeof err) ||
        kaffe_conf_set(conf, "async_message_ack", "true", err, sizeof err) ||
        kaffe_conf_set(conf, "max_in_flight_messages", "1000", err, sizeof err) ||
        (conf_file && kaffe_conf_load(conf, conf_file, err, sizeof err))) {
        fprintf(stderr, "config: %s\n", err);
        kaffe_conf_destroy(conf);
        return 2;
    }
    kaffe_conf_set_message_handler(conf, handle_message, NULL);

    consumer = kaffe_consumer_new(conf, err, sizeof err); /* takes conf on success */
    if (!consumer) {
        fprintf(stderr, "consumer: %s\n", err);
        kaffe_conf_destroy(conf);
        return 2;
    }
    pthread_t workers[APP_WORKERS];
    for (int i = 0; i < APP_WORKERS; i++)
        pthread_create(&workers[i], NULL, app_worker, NULL);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    kaffe_status_t st = kaffe_consumer_start(consumer);
    if (st == KAFFE_OK) {
        kaffe_consumer_wait(consumer, -1);
        /* The application's workers keep running while kaffe_consumer_stop()
         * drains: it waits (up to drain_timeout_ms) for the accepted messages
         * to be acked, then commits and leaves the group. */
        st = kaffe_consumer_stop(consumer);
    }
    /* Now close the queue: the workers finish what is left (those acks return
     * KAFFE_ERR_STOPPED) and exit. Messages must be acked or abandoned before
     * kaffe_consumer_destroy(), which frees them. */
    pthread_mutex_lock(&queue.lock);
    queue.closed = true;
    pthread_cond_broadcast(&queue.cond);
    pthread_mutex_unlock(&queue.lock);
    for (int i = 0; i < APP_WORKERS; i++)
        pthread_join(workers[i], NULL);

    if (st != KAFFE_OK)
        fprintf(stderr, "consumer stopped: %s: %s\n", kaffe_err_name(st), kaffe_strerror(st));
    printf("acked %ld messages\n", atomic_load(&acked));
    kaffe_consumer_destroy(consumer);
    return st == KAFFE_OK ? 0 : 1;
}
