/* consumer_topics — topics added while the consumer runs: Kaffe's
 * subscribe_to_topics in C.
 *
 * Usage: consumer_topics [ENDPOINTS [TOPIC [MORE [COUNT]]]]
 *
 *   ENDPOINTS  bootstrap brokers, host:port[,host:port]
 *              (default: $KAFFE_ENDPOINTS, else localhost:9092)
 *   TOPIC      the topic it starts with (default: $KAFFE_TOPIC, else
 *              interesting-topic)
 *   MORE       comma-separated topics and patterns (starting with ^, e.g.
 *              "^orders\..*") subscribed once the first message of TOPIC was
 *              handled (default: whitelist)
 *   COUNT      stop after handling this many messages; 0 (the default) runs
 *              until SIGTERM or SIGINT (Ctrl-C)
 *
 * The consumer group is $KAFFE_GROUP, else consumer-topics-example; $KAFFE_CONF
 * as in consumer_sync. It prints one line per message, "topic/partition@offset
 * key: value", the line "subscribed to MORE" when it added them, and
 * "consumed N messages" when it stops. Exit status: 0 on a clean stop, 1 when
 * the consumer failed or refused the topics, 2 for a bad configuration. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

static kaffe_consumer_t *consumer;
static long limit;          /* 0: no limit */
static atomic_long handled; /* messages handled so far, by all workers */

static int handle_message(kaffe_message_t *m, void *opaque) {
    (void)opaque;
    size_t klen, vlen;
    const char *key = kaffe_message_key(m, &klen);
    const char *value = kaffe_message_value(m, &vlen);
    printf("%s/%d@%lld %.*s: %.*s\n", kaffe_message_topic(m), (int)kaffe_message_partition(m),
           (long long)kaffe_message_offset(m), key ? (int)klen : 6, key ? key : "(null)",
           value ? (int)vlen : 6, value ? value : "(null)");
    if (atomic_fetch_add(&handled, 1) + 1 == limit)
        kaffe_consumer_request_stop(consumer);
    return KAFFE_OK;
}

static void on_signal(int sig) {
    (void)sig;
    kaffe_consumer_request_stop(consumer);
}

static const char *arg_or_env(int argc, char **argv, int i, const char *env, const char *dflt) {
    if (argc > i)
        return argv[i];
    const char *v = env ? getenv(env) : NULL;
    return v && *v ? v : dflt;
}

/* MORE split at commas into list (at most max entries, pointing into buf). */
static size_t split(char *buf, const char **list, size_t max) {
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < max;
         t = strtok_r(NULL, ",", &save))
        list[n++] = t;
    return n;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *endpoints = arg_or_env(argc, argv, 1, "KAFFE_ENDPOINTS", "localhost:9092");
    const char *topic = arg_or_env(argc, argv, 2, "KAFFE_TOPIC", "interesting-topic");
    const char *more = arg_or_env(argc, argv, 3, NULL, "whitelist");
    const char *group = arg_or_env(0, NULL, 0, "KAFFE_GROUP", "consumer-topics-example");
    const char *conf_file = getenv("KAFFE_CONF");
    limit = argc > 4 ? atol(argv[4]) : 0;

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
    consumer = kaffe_consumer_new(conf, err, sizeof err);
    if (!consumer) {
        fprintf(stderr, "consumer: %s\n", err);
        kaffe_conf_destroy(conf);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    kaffe_status_t st = kaffe_consumer_start(consumer);
    if (st == KAFFE_OK) {
        /* Once the first message is handled (or the consumer stops first),
         * add MORE to the running consumer. */
        while (atomic_load(&handled) == 0 &&
               kaffe_consumer_wait(consumer, 10) == KAFFE_ERR_TIMED_OUT) {
        }
        char buf[1024];
        const char *list[32];
        snprintf(buf, sizeof buf, "%s", more);
        size_t n = split(buf, list, 32);
        kaffe_status_t sub = kaffe_consumer_subscribe(consumer, list, n);
        if (sub == KAFFE_OK) {
            printf("subscribed to %s\n", more);
            kaffe_consumer_wait(consumer, -1);
        } else if (sub != KAFFE_ERR_STATE) { /* STATE: stopped before the first message */
            fprintf(stderr, "subscribe %s: %s\n", more, kaffe_err_name(sub));
            kaffe_consumer_request_stop(consumer);
        }
        st = kaffe_consumer_stop(consumer);
        if (st == KAFFE_OK && sub != KAFFE_OK && sub != KAFFE_ERR_STATE)
            st = sub;
    }
    fflush(stdout);
    if (st != KAFFE_OK)
        fprintf(stderr, "consumer stopped: %s: %s\n", kaffe_err_name(st), kaffe_strerror(st));
    printf("consumed %ld messages\n", atomic_load(&handled));
    kaffe_consumer_destroy(consumer);
    return st == KAFFE_OK ? 0 : 1;
}
