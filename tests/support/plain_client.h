/* tests/support — plain librdkafka clients that tests use to put data into
 * a cluster and to read back what kaffe did (messages, committed offsets),
 * independently of kaffe's own code. */
#ifndef KAFFE_TESTS_SUPPORT_PLAIN_CLIENT_H
#define KAFFE_TESTS_SUPPORT_PLAIN_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* Produces count messages to topic/partition (RD_KAFKA_PARTITION_UA: the
 * default partitioner) with keys "key-<i % key_mod>" (NULL key when
 * key_mod == 0) and values "value-<first_index + i>", and waits for all
 * deliveries. Returns the number delivered without error. */
size_t plain_produce(const char *bootstraps, const char *topic, int32_t partition, size_t count,
                     size_t first_index, int key_mod);

/* A consumed message, copied out. */
typedef struct plain_message {
    char *topic;
    int32_t partition;
    int64_t offset;
    char *key; /* NUL-terminated copy; NULL for a null key */
    size_t key_len;
    char *value;
    size_t value_len;
    char *headers; /* "name=value\n" per header, in order; NULL when none */
} plain_message_t;

/* Reads up to max messages of topic (all partitions, from the beginning,
 * no group commits) until max are read or idle_ms pass without one; the
 * first message may take PLAIN_FIRST_MESSAGE_MS if that is longer (the
 * client's start, its offset lookups, a leader that just came back).
 * Returns the count; *out is malloc'ed, free with plain_messages_free. */
enum { PLAIN_FIRST_MESSAGE_MS = 15000 };
size_t plain_consume_all(const char *bootstraps, const char *topic, size_t max, int idle_ms,
                         plain_message_t **out);
void plain_messages_free(plain_message_t *msgs, size_t count);

/* The committed offset of group for topic/partition (RD_KAFKA_OFFSET_INVALID,
 * i.e. -1001, when none). If metadata is non-NULL, a malloc'ed NUL-terminated
 * copy of the commit metadata is stored there (NULL when empty). */
int64_t plain_committed(const char *bootstraps, const char *group, const char *topic,
                        int32_t partition, char **metadata);

/* The same through a client kept by the caller (one bootstrap and
 * coordinator lookup for many reads, e.g. a process reading at every
 * assignment): plain_group_client() makes it (NULL on error; destroy with
 * rd_kafka_destroy), plain_committed_rk() reads as plain_committed(). */
rd_kafka_t *plain_group_client(const char *bootstraps, const char *group);
int64_t plain_committed_rk(rd_kafka_t *rk, const char *topic, int32_t partition, char **metadata);

/* Creates topic with partitions and replication_factor replicas each, and
 * waits (up to 30 s) until every partition has a leader and every replica
 * in its ISR. 0, or -1 with errstr (may be NULL) saying why. */
int plain_create_topic(const char *bootstraps, const char *topic, int partitions,
                       int replication_factor, char *errstr, size_t errstr_size);

/* The high watermark (log end) of topic/partition, or -1 on error. */
int64_t plain_log_end(const char *bootstraps, const char *topic, int32_t partition);

#endif
