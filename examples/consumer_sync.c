/* consumer_sync — the synchronous consumer: Kaffe's MessageProcessor in C.
 *
 * Usage: consumer_sync [ENDPOINTS [TOPIC [COUNT]]]
 *
 *   ENDPOINTS  bootstrap brokers, host:port[,host:port]
 *              (default: $KAFFE_ENDPOINTS, else localhost:9092)
 *   TOPIC      the topic to consume (default: $KAFFE_TOPIC, else interesting-topic)
 *   COUNT      stop after handling this many messages; 0 (the default) runs
 *              until SIGTERM or SIGINT (Ctrl-C)
 *
 * The consumer group is $KAFFE_GROUP, else consumer-sync-example. If
 * $KAFFE_CONF names a file, its "name = value" lines are applied on top
 * (e.g. workers = 16, ordering = key, rdkafka.fetch.wait.max.ms = 100).
 *
 * It prints one line per message, "topic/partition@offset key: value", then
 * "consumed N messages" when it stops. On stop it drains what is in flight,
 * commits, and leaves the group, so a second run with the same group starts
 * after the messages handled here. Exit status: 0 on a clean stop, 1 when the
 * consumer failed, 2 for a bad configuration. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <kaffe/kaffe.h>

static kaffe_consumer_t *consumer;
static long limit;          /* 0: no limit */
static atomic_long handled; /* messages handled so far, by all workers */

/* Called on one of kaffe's worker threads for each message. With the default
 * ordering (partition) the messages of one partition arrive one at a time, in
 * offset order; different partitions run in parallel. m is valid until this
 * returns; returning KAFFE_OK acknowledges it. */
static int handle_message(kaffe_message_t *m, void *opaque) {
    (void)opaque;
    size_t klen, vlen;
    const char *key = kaffe_message_key(m, &klen);
    const char *value = kaffe_message_value(m, &vlen);
    /* One printf per line: stdio locks the stream, so lines do not interleave. */
    printf("%s/%d@%lld %.*s: %.*s\n", kaffe_message_topic(m), (int)kaffe_message_partition(m),
           (long long)kaffe_message_offset(m), key ? (int)klen : 6, key ? key : "(null)",
           value ? (int)vlen : 6, value ? value : "(null)");
    if (atomic_fetch_add(&handled, 1) + 1 == limit)
        kaffe_consumer_request_stop(consumer); /* just sets a flag: fine from a handler */
    return KAFFE_OK;
}

/* kaffe_consumer_request_stop() is async-signal-safe. */
static void on_signal(int sig) {
    (void)sig;
    kaffe_consumer_request_stop(consumer);
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
    const char *topic = arg_or_env(argc, argv, 2, "KAFFE_TOPIC", "interesting-topic");
    const char *group = arg_or_env(0, NULL, 0, "KAFFE_GROUP", "consumer-sync-example");
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
        (conf_file && kaffe_conf_load(conf, conf_file, err, sizeof err))) {
        fprintf(stderr, "config: %s\n", err);
        kaffe_conf_destroy(conf);
        return 2;
    }
    kaffe_conf_set_message_handler(conf, handle_message, NULL);

    consumer = kaffe_consumer_new(conf, err, sizeof err); /* takes conf on success */
    if (!consumer) {
        fprintf(stderr, "consumer: %s\n", err);
        kaffe_conf_destroy(conf); /* on failure the caller keeps conf */
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    kaffe_status_t st = kaffe_consumer_start(consumer);
    if (st == KAFFE_OK) {
        /* Returns once a stop was requested (a signal, or COUNT reached) or the
         * consumer stopped by itself (a handler failure, a fatal error). */
        kaffe_consumer_wait(consumer, -1);
        st = kaffe_consumer_stop(consumer); /* drains, commits, leaves the group */
    }
    fflush(stdout);
    if (st != KAFFE_OK)
        fprintf(stderr, "consumer stopped: %s: %s\n", kaffe_err_name(st), kaffe_strerror(st));
    printf("consumed %ld messages\n", atomic_load(&handled));
    kaffe_consumer_destroy(consumer);
    return st == KAFFE_OK ? 0 : 1;
}
