/* heroku — Heroku mode: brokers and TLS material from the environment.
 *
 * Usage: heroku [TOPIC [COUNT]]
 *
 *   TOPIC  the topic (default: $KAFFE_TOPIC, else interesting-topic)
 *   COUNT  messages to produce, then consume back (default 5)
 *
 * With heroku_kafka_env = true (instead of endpoints) kaffe reads, when the
 * consumer or producer is created:
 *   KAFKA_URL              kafka+ssl://host:port[,kafka+ssl://host:port...]
 *                          or kafka://host:port[,...] for plaintext
 *   KAFKA_CLIENT_CERT      client certificate, PEM text   } required with
 *   KAFKA_CLIENT_CERT_KEY  its private key, PEM text      } kafka+ssl://, not
 *   KAFKA_TRUSTED_CERT     the brokers' CA, PEM text      } allowed with kafka://
 * A missing or malformed variable is a configuration error naming it
 * (KAFFE_ERR_ENV); PEM text never appears in messages.
 *
 * The program builds one base configuration, produces COUNT messages with a
 * producer made from a copy of it, then consumes (group $KAFFE_GROUP, else
 * heroku-example, from the earliest message) until it has handled COUNT
 * messages, or until SIGTERM or SIGINT. It prints "produced N messages", one
 * line per consumed message and "consumed N messages". Exit status: 0 on
 * success, 1 on a failure, 2 for a bad configuration or environment. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

static kaffe_consumer_t *consumer;
static long limit;
static atomic_long handled;

static int handle_message(kaffe_message_t *m, void *opaque) {
    (void)opaque;
    size_t vlen;
    const char *value = kaffe_message_value(m, &vlen);
    printf("%s/%d@%lld %.*s\n", kaffe_message_topic(m), (int)kaffe_message_partition(m),
           (long long)kaffe_message_offset(m), value ? (int)vlen : 6, value ? value : "(null)");
    if (atomic_fetch_add(&handled, 1) + 1 == limit)
        kaffe_consumer_request_stop(consumer);
    return KAFFE_OK;
}

static void on_signal(int sig) {
    (void)sig;
    if (consumer)
        kaffe_consumer_request_stop(consumer);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, also into a pipe */
    const char *topic = argc > 1 ? argv[1] : getenv("KAFFE_TOPIC");
    if (!topic || !*topic)
        topic = "interesting-topic";
    const char *group = getenv("KAFFE_GROUP");
    if (!group || !*group)
        group = "heroku-example";
    limit = argc > 2 ? atol(argv[2]) : 5;

    const char *url = getenv("KAFKA_URL");
    printf("brokers from KAFKA_URL (%s)\n", !url                                    ? "not set"
                                            : strncmp(url, "kafka+ssl://", 12) == 0 ? "TLS"
                                                                                    : "plaintext");

    /* The settings consumer and producer share. */
    char err[512];
    kaffe_conf_t *base = kaffe_conf_new();
    if (!base)
        return 1;
    if (kaffe_conf_set(base, "heroku_kafka_env", "true", err, sizeof err) ||
        kaffe_conf_set(base, "topics", topic, err, sizeof err)) {
        fprintf(stderr, "config: %s\n", err);
        kaffe_conf_destroy(base);
        return 2;
    }

    /* The producer, from a copy (kaffe_producer_new takes its conf). The
     * environment is read here: a bad KAFKA_URL fails now, naming it. */
    kaffe_conf_t *pconf = kaffe_conf_dup(base);
    kaffe_producer_t *p = pconf ? kaffe_producer_new(pconf, err, sizeof err) : NULL;
    if (!p) {
        fprintf(stderr, "producer: %s\n", pconf ? err : "out of memory");
        kaffe_conf_destroy(pconf);
        kaffe_conf_destroy(base);
        return 2;
    }
    long produced = 0;
    for (long i = 0; i < limit; i++) {
        char value[64];
        snprintf(value, sizeof value, "hello from heroku mode #%ld", i);
        kaffe_status_t st = kaffe_produce_sync(p, NULL, 0, value, strlen(value));
        if (st != KAFFE_OK) {
            fprintf(stderr, "produce: %s: %s\n", kaffe_err_name(st), kaffe_strerror(st));
            break;
        }
        produced++;
    }
    kaffe_producer_destroy(p);
    printf("produced %ld messages\n", produced);
    if (produced != limit) {
        kaffe_conf_destroy(base);
        return 1;
    }

    /* The consumer, from the base itself plus the consumer's settings. */
    if (kaffe_conf_set(base, "consumer_group", group, err, sizeof err) ||
        kaffe_conf_set(base, "start_with_earliest_message", "true", err, sizeof err)) {
        fprintf(stderr, "config: %s\n", err);
        kaffe_conf_destroy(base);
        return 2;
    }
    kaffe_conf_set_message_handler(base, handle_message, NULL);
    consumer = kaffe_consumer_new(base, err, sizeof err); /* takes base on success */
    if (!consumer) {
        fprintf(stderr, "consumer: %s\n", err);
        kaffe_conf_destroy(base);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    kaffe_status_t st = kaffe_consumer_start(consumer);
    if (st == KAFFE_OK) {
        kaffe_consumer_wait(consumer, -1);
        st = kaffe_consumer_stop(consumer);
    }
    if (st != KAFFE_OK)
        fprintf(stderr, "consumer stopped: %s: %s\n", kaffe_err_name(st), kaffe_strerror(st));
    printf("consumed %ld messages\n", atomic_load(&handled));
    kaffe_consumer_destroy(consumer);
    return st == KAFFE_OK ? 0 : 1;
}
