/* consumer_batch — a batch handler: Kaffe's handle_messages in C.
 *
 * Usage: consumer_batch [ENDPOINTS [TOPIC [COUNT]]]
 *
 *   ENDPOINTS  bootstrap brokers, host:port[,host:port]
 *              (default: $KAFFE_ENDPOINTS, else localhost:9092)
 *   TOPIC      the topic to consume (default: $KAFFE_TOPIC, else interesting-topic)
 *   COUNT      stop after handling this many messages; 0 (the default) runs
 *              until SIGTERM or SIGINT (Ctrl-C)
 *
 * The consumer group is $KAFFE_GROUP, else consumer-batch-example; $KAFFE_CONF
 * as in consumer_sync (e.g. batch_max_messages = 1000, batch_max_wait_ms = 50).
 *
 * Each batch holds messages of one partition, in offset order (the default
 * ordering). The handler "stores" a batch at once (here: prints it), one
 * line per batch, "batch of N: topic/partition@first..last", then one line
 * per message, "  offset key: value". A message whose value is "poison"
 * cannot be stored: it alone is failed (kaffe_batch_fail) and, with
 * on_error = retry, retried on its own (as a batch of one) while the rest of
 * its batch is stored; on its third attempt the handler gives up on it
 * ("  offset skipped after 3 attempts", counted as handled). The handler
 * returns KAFFE_OK, which acks every message it did not fail. It prints
 * "consumed N messages in B batches" when it stops. Exit status: 0 on a
 * clean stop, 1 when the consumer failed, 2 for a bad configuration. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

static kaffe_consumer_t *consumer;
static long limit;          /* 0: no limit */
static atomic_long handled; /* messages stored so far */
static atomic_long batches;

/* Called on one of kaffe's worker threads with up to batch_max_messages
 * messages; the batch and its messages are valid until this returns. */
static int handle_messages(kaffe_batch_t *batch, void *opaque) {
    (void)opaque;
    size_t n = kaffe_batch_count(batch);
    kaffe_message_t *first = kaffe_batch_message(batch, 0);
    kaffe_message_t *last = kaffe_batch_message(batch, n - 1);
    /* One buffer, one printf: lines of batches on other workers do not
     * interleave with this batch's. */
    size_t cap = 128 + n * 128, used = 0;
    char *out = malloc(cap);
    if (!out)
        return 1; /* every message of the batch fails: retried */
    used += (size_t)snprintf(out, cap, "batch of %zu: %s/%d@%lld..%lld\n", n,
                             kaffe_message_topic(first), (int)kaffe_message_partition(first),
                             (long long)kaffe_message_offset(first),
                             (long long)kaffe_message_offset(last));
    long stored = 0;
    for (size_t i = 0; i < n; i++) {
        kaffe_message_t *m = kaffe_batch_message(batch, i);
        size_t klen, vlen;
        const char *key = kaffe_message_key(m, &klen);
        const char *value = kaffe_message_value(m, &vlen);
        if (value && vlen == 6 && memcmp(value, "poison", 6) == 0) {
            if (kaffe_message_attempt(m) < 3) {
                kaffe_batch_fail(batch, i, 42); /* this one only: retried alone */
                continue;
            }
            /* The third time: give up on it (the OK return acks it). */
            if (used < cap)
                used +=
                    (size_t)snprintf(out + used, cap - used, "  %lld skipped after 3 attempts\n",
                                     (long long)kaffe_message_offset(m));
            stored++;
            continue;
        }
        if (used < cap)
            used += (size_t)snprintf(out + used, cap - used, "  %lld %.*s: %.*s\n",
                                     (long long)kaffe_message_offset(m), key ? (int)klen : 6,
                                     key ? key : "(null)", value ? (int)vlen : 6,
                                     value ? value : "(null)");
        stored++;
    }
    fputs(out, stdout);
    free(out);
    atomic_fetch_add(&batches, 1);
    long before = atomic_fetch_add(&handled, stored);
    if (limit && before < limit && before + stored >= limit)
        kaffe_consumer_request_stop(consumer); /* just sets a flag: fine from a handler */
    return KAFFE_OK;                           /* acks every message not failed above */
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
    const char *group = arg_or_env(0, NULL, 0, "KAFFE_GROUP", "consumer-batch-example");
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
        kaffe_conf_set(conf, "batch_max_messages", "100", err, sizeof err) ||
        kaffe_conf_set(conf, "on_error", "retry", err, sizeof err) ||
        kaffe_conf_set(conf, "retry_initial_backoff_ms", "50", err, sizeof err) ||
        (conf_file && kaffe_conf_load(conf, conf_file, err, sizeof err))) {
        fprintf(stderr, "config: %s\n", err);
        kaffe_conf_destroy(conf);
        return 2;
    }
    kaffe_conf_set_batch_handler(conf, handle_messages, NULL);

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
        kaffe_consumer_wait(consumer, -1);
        st = kaffe_consumer_stop(consumer); /* drains, commits, leaves the group */
    }
    fflush(stdout);
    if (st != KAFFE_OK)
        fprintf(stderr, "consumer stopped: %s: %s\n", kaffe_err_name(st), kaffe_strerror(st));
    printf("consumed %ld messages in %ld batches\n", atomic_load(&handled), atomic_load(&batches));
    kaffe_consumer_destroy(consumer);
    return st == KAFFE_OK ? 0 : 1;
}
