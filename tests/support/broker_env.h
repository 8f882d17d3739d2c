/* tests/support — the real Apache Kafka broker of the broker tier.
 *
 * scripts/kafka/start.sh writes an env file (KEY=VALUE lines: listener
 * addresses, certificate paths, SASL user) and scripts/test.sh passes its path
 * in KAFFE_BROKER_ENV. Broker tests read it through these helpers, and make
 * librdkafka handles from a kaffe configuration with conf_to_rdkafka() (the
 * path under test) that record what librdkafka reports through its error
 * callback and delivery reports. */
#ifndef KAFFE_TESTS_SUPPORT_BROKER_ENV_H
#define KAFFE_TESTS_SUPPORT_BROKER_ENV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <kaffe/kaffe.h>

/* Loads $KAFFE_BROKER_ENV once. false, with a message saying how to run the
 * tier, when the variable or the file is missing. */
bool broker_env_load(char *errstr, size_t errstr_size);

/* A value from the env file (e.g. "KAFFE_BROKER_SSL"), or NULL. Call after
 * broker_env_load() succeeded. */
const char *broker_env(const char *key);

/* The broker's Kafka major.minor as major * 100 + minor (KAFFE_BROKER_KAFKA_VERSION
 * of the env file), or -1 when the env file does not say. */
int broker_kafka_version(void);

/* A whole file as a malloc'ed string (for PEM variables), or NULL. */
char *broker_read_file(const char *path);

/* A topic name no other test (or earlier run) uses. */
void broker_unique_topic(char *buf, size_t size, const char *prefix);

/* Creates topic with partitions on the PLAINTEXT listener and waits until
 * its metadata shows every partition with a leader. KAFFE_OK or an error. */
int broker_create_topic(const char *topic, int partitions, char *errstr, size_t errstr_size);

/* What a handle's callbacks saw. Written by librdkafka's threads and by the
 * polling thread; protected by lock. */
typedef struct broker_events {
    pthread_mutex_t lock;
    int error_count;
    rd_kafka_resp_err_t first_error;
    char first_error_text[512];
    char error_texts[2048]; /* every error's "NAME: reason", "; "-separated, cut at the end */
    char log_texts[2048];   /* every log line up to warning level, the same way */
    int delivered, delivery_failed;
    rd_kafka_resp_err_t first_delivery_error;
} broker_events_t;

/* A librdkafka handle of type built from conf with conf_to_rdkafka(role),
 * with callbacks recording into events (which must outlive the handle).
 * NULL with errstr set when conf_to_rdkafka or rd_kafka_new fails. */
rd_kafka_t *broker_handle_new(const kaffe_conf_t *conf, rd_kafka_type_t type,
                              broker_events_t *events, char *errstr, size_t errstr_size);

void broker_events_init(broker_events_t *events);

/* Polls rk (rd_kafka_poll) until an error callback fired or timeout_ms
 * passed. Returns true if one fired. */
bool broker_wait_for_error(rd_kafka_t *rk, broker_events_t *events, int timeout_ms);

/* Produces count messages "value-<i>" (keys "key-<i>") to topic through rk
 * and flushes for up to timeout_ms. Returns the number delivered without
 * error (from delivery reports). */
int broker_produce(rd_kafka_t *rk, broker_events_t *events, const char *topic, int count,
                   int timeout_ms);

#endif
