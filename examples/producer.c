/* producer — Kaffe's three produce_sync forms and a partition function.
 *
 * Usage: producer [ENDPOINTS [TOPIC [OTHER_TOPIC [COUNT]]]]
 *
 *   ENDPOINTS    bootstrap brokers, host:port[,host:port]
 *                (default: $KAFFE_ENDPOINTS, else localhost:9092)
 *   TOPIC        the first configured topic (default: $KAFFE_TOPIC, else kafka-topic)
 *   OTHER_TOPIC  a second topic, named per call (default: whitelist)
 *   COUNT        messages for the first form (default 10)
 *
 * Both topics must exist (kaffe does not create topics). It produces:
 *   1. COUNT messages with kaffe_produce_sync(p, key, value): to TOPIC, the
 *      partition chosen by the partition function below from the key
 *      ("user-<n>" goes to partition n mod the partition count);
 *   2. one message with kaffe_produce_sync_topic(p, OTHER_TOPIC, key, value):
 *      the partition function chooses again;
 *   3. one message with kaffe_produce_sync_partition(p, OTHER_TOPIC, 0, key,
 *      value): partition 0, the function is not called.
 * Each call returns once the broker acknowledged the message. It prints one
 * line per call ("form 1: user-3 -> OK") and "produced N messages", and
 * stops early (after the message in progress) on SIGTERM or SIGINT. Exit
 * status: 0 when every message was acknowledged, 1 when one failed, 2 for a
 * bad configuration. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

/* The partition function: keys "user-<n>" go to partition n mod
 * partition_count, anything else (null keys included) to partition 0.
 * kaffe may call it from several threads at once: it only reads its
 * arguments. Returning -1 would fail the call with KAFFE_ERR_PARTITIONER. */
static int32_t by_user_id(const char *topic, int32_t partition_count, const void *key,
                          size_t key_len, const void *value, size_t value_len, void *opaque) {
    (void)topic, (void)value, (void)value_len, (void)opaque;
    char buf[32];
    if (!key || key_len < 6 || key_len >= sizeof buf || memcmp(key, "user-", 5) != 0)
        return 0;
    memcpy(buf, key, key_len);
    buf[key_len] = '\0';
    return (int32_t)(strtoul(buf + 5, NULL, 10) % (unsigned long)partition_count);
}

static int report(int form, const char *key, kaffe_status_t st) {
    if (st == KAFFE_OK)
        printf("form %d: %s -> OK\n", form, key);
    else
        printf("form %d: %s -> %s (%s)\n", form, key, kaffe_err_name(st), kaffe_strerror(st));
    return st == KAFFE_OK ? 0 : 1;
}

static const char *arg_or_env(int argc, char **argv, int i, const char *env, const char *dflt) {
    if (argc > i)
        return argv[i];
    const char *v = env ? getenv(env) : NULL;
    return v && *v ? v : dflt;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, also into a pipe */
    const char *endpoints = arg_or_env(argc, argv, 1, "KAFFE_ENDPOINTS", "localhost:9092");
    const char *topic = arg_or_env(argc, argv, 2, "KAFFE_TOPIC", "kafka-topic");
    const char *other_topic = arg_or_env(argc, argv, 3, NULL, "whitelist");
    long count = argc > 4 ? atol(argv[4]) : 10;

    char err[512];
    kaffe_conf_t *conf = kaffe_conf_new();
    if (!conf)
        return 1;
    /* topics: the first one is where kaffe_produce_sync() writes. */
    if (kaffe_conf_set(conf, "endpoints", endpoints, err, sizeof err) ||
        kaffe_conf_set(conf, "topics", topic, err, sizeof err)) {
        fprintf(stderr, "config: %s\n", err);
        kaffe_conf_destroy(conf);
        return 2;
    }
    /* Instead of partition_strategy = round_robin | random | md5 | murmur2. */
    kaffe_conf_set_partitioner(conf, by_user_id, NULL);

    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err); /* takes conf on success */
    if (!p) {
        fprintf(stderr, "producer: %s\n", err);
        kaffe_conf_destroy(conf);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    int failures = 0;
    long produced = 0;
    for (long i = 0; i < count && !stopping; i++) {
        char key[32], value[64];
        snprintf(key, sizeof key, "user-%ld", i);
        snprintf(value, sizeof value, "signed up #%ld", i);
        /* 1. key/value to the first configured topic. */
        kaffe_status_t st = kaffe_produce_sync(p, key, strlen(key), value, strlen(value));
        failures += report(1, key, st);
        produced += st == KAFFE_OK;
    }
    if (!stopping) {
        /* 2. topic/key/value. */
        kaffe_status_t st = kaffe_produce_sync_topic(p, other_topic, "user-7", 6, "audit", 5);
        failures += report(2, "user-7", st);
        produced += st == KAFFE_OK;
    }
    if (!stopping) {
        /* 3. topic/partition/key/value: the partition function is not consulted. */
        kaffe_status_t st =
            kaffe_produce_sync_partition(p, other_topic, 0, "user-8", 6, "pinned", 6);
        failures += report(3, "user-8", st);
        produced += st == KAFFE_OK;
    }
    printf("produced %ld messages\n", produced);
    kaffe_producer_destroy(p);
    return failures ? 1 : 0;
}
