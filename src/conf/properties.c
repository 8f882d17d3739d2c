/* The property table and value validation. */
#include "conf/properties.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/errstr.h"
#include "conf/conf.h"

#define BOTH (CONF_ROLE_CONSUMER | CONF_ROLE_PRODUCER)
#define CONSUMER CONF_ROLE_CONSUMER
#define PRODUCER CONF_ROLE_PRODUCER

static kaffe_status_t check_endpoints(const char *value, char *errstr, size_t errstr_size);
static const char *min_bytes_to_rdkafka(const char *value);
static const char *offset_reset_to_rdkafka(const char *value);
static const char *compression_to_rdkafka(const char *value);
static const char *sasl_mechanism_to_rdkafka(const char *value);
static const char *log_level_to_rdkafka(const char *value);

static const property_t properties[] = {
    /* Where the cluster is. */
    {.name = "endpoints",
     .type = PROP_LIST,
     .default_value = "",
     .roles = BOTH,
     .rdkafka_name = "bootstrap.servers",
     .description = "Brokers to bootstrap from, as host:port[,host:port...] (Kaffe's "
                    "[kafka: 9092] is kafka:9092). Required unless heroku_kafka_env=true.",
     .check = check_endpoints},
    {.name = "heroku_kafka_env",
     .type = PROP_BOOL,
     .default_value = "false",
     .roles = BOTH,
     .description = "Read the brokers and TLS material from KAFKA_URL, KAFKA_CLIENT_CERT, "
                    "KAFKA_CLIENT_CERT_KEY and KAFKA_TRUSTED_CERT instead of endpoints."},
    {.name = "topics",
     .type = PROP_LIST,
     .default_value = "",
     .roles = BOTH,
     .description = "Topics, comma-separated. The consumer subscribes to all of them (an "
                    "entry starting with ^ is a pattern, which also takes matching topics "
                    "created later; kaffe_consumer_subscribe() and _unsubscribe() change the "
                    "list while running); the producer's first topic is the default for "
                    "kaffe_produce_sync()."},

    /* Kaffe's fetch and commit options, mapped to librdkafka. Unset, they
     * leave librdkafka's default (shown as the default). */
    {.name = "max_bytes",
     .type = PROP_INT,
     .default_value = "1048576",
     .min = 1,
     .max = 1000000000,
     .roles = CONSUMER,
     .rdkafka_name = "max.partition.fetch.bytes",
     .description = "Kaffe's max_bytes: the most message bytes fetched per partition in one "
                    "request (a larger message is still fetched, alone)."},
    {.name = "min_bytes",
     .type = PROP_INT,
     .default_value = "1",
     .min = 0,
     .max = 100000000,
     .roles = CONSUMER,
     .rdkafka_name = "fetch.min.bytes",
     .to_rdkafka = min_bytes_to_rdkafka,
     .description = "Kaffe's min_bytes: the broker holds a fetch until this many bytes are "
                    "ready or max_wait_time passes. Kaffe's 0 is sent as 1, librdkafka's "
                    "minimum (the broker answers as soon as any data is there)."},
    {.name = "max_wait_time",
     .type = PROP_INT,
     .default_value = "100",
     .min = 0,
     .max = 300000,
     .roles = CONSUMER,
     .rdkafka_name = "fetch.wait.max.ms",
     .default_applied = true,
     .description = "Kaffe's max_wait_time, in milliseconds: how long the broker may wait "
                    "for min_bytes before answering a fetch. kaffe's default, 100, is sent "
                    "even when unset (librdkafka's own default is 500): a partition resumed "
                    "after back-pressure is fetched only by the next Fetch request, so a "
                    "long wait starves the workers. rdkafka.fetch.wait.max.ms, if set, "
                    "is used instead."},
    {.name = "offset_commit_interval_seconds",
     .type = PROP_INT,
     .default_value = "5",
     .min = 1,
     .max = 3600,
     .roles = CONSUMER,
     .alias_of = "commit_interval_ms",
     .alias_scale = 1000,
     .description = "Kaffe's name for commit_interval_ms, in seconds (5 = 5000 ms). Setting "
                    "both to different intervals is an error."},
    {.name = "offset_reset_policy",
     .type = PROP_ENUM,
     .default_value = "reset_to_latest",
     .choices = "reset_to_earliest|reset_to_latest|reset_by_subscriber",
     .roles = CONSUMER,
     .rdkafka_name = "auto.offset.reset",
     .to_rdkafka = offset_reset_to_rdkafka,
     .description = "Kaffe's offset_reset_policy: where to go when the committed offset is "
                    "out of range: earliest, latest, or reset_by_subscriber (an error is "
                    "reported instead). librdkafka has one setting for this and for where a "
                    "new group starts, so it must agree with start_with_earliest_message "
                    "when both are set."},

    /* Kaffe's producer options, mapped to librdkafka. */
    {.name = "required_acks",
     .type = PROP_INT,
     .default_value = "-1",
     .min = -1,
     .max = 1,
     .roles = PRODUCER,
     .rdkafka_name = "acks",
     .description = "Kaffe's required_acks: -1 = all in-sync replicas (the default, needed "
                    "for no loss), 1 = the leader only, 0 = no acknowledgement."},
    {.name = "ack_timeout",
     .type = PROP_INT,
     .default_value = "30000",
     .min = 1,
     .max = 900000,
     .roles = PRODUCER,
     .rdkafka_name = "request.timeout.ms",
     .description = "Kaffe's ack_timeout, in milliseconds: how long the broker may wait for "
                    "the required acks before failing a produce request."},
    {.name = "max_retries",
     .type = PROP_INT,
     .default_value = "2147483647",
     .min = 0,
     .max = 2147483647,
     .roles = PRODUCER,
     .rdkafka_name = "message.send.max.retries",
     .description = "Kaffe's max_retries: how often a failed produce request is retried "
                    "(within librdkafka's message.timeout.ms)."},
    {.name = "retry_backoff_ms",
     .type = PROP_INT,
     .default_value = "100",
     .min = 1,
     .max = 300000,
     .roles = BOTH,
     .rdkafka_name = "retry.backoff.ms",
     .description = "Kaffe's retry_backoff_ms: the wait before a failed request is retried."},
    {.name = "max_batch_size",
     .type = PROP_INT,
     .default_value = "1000000",
     .min = 1,
     .max = 2147483647,
     .roles = PRODUCER,
     .rdkafka_name = "batch.size",
     .description = "Kaffe's max_batch_size: the most bytes in one batch of messages sent to "
                    "a partition."},
    {.name = "compression",
     .type = PROP_ENUM,
     .default_value = "no_compression",
     .choices = "no_compression|gzip|snappy|lz4|zstd",
     .roles = PRODUCER,
     .rdkafka_name = "compression.codec",
     .to_rdkafka = compression_to_rdkafka,
     .description = "Kaffe's compression: how message batches are compressed "
                    "(no_compression = none). librdkafka before 2.11.1 uses gzip, snappy and "
                    "lz4 only with a broker that advertises Produce version 0 (Apache Kafka "
                    "up to 4.1 does) and otherwise sends the batches uncompressed, saying so "
                    "only in a debug line with rdkafka.debug=msg (librdkafka issue #4956); zstd is "
                    "not affected."},

    /* Security: TLS and SASL. Derived into librdkafka's security.protocol
     * (plaintext, ssl, sasl_plaintext, sasl_ssl) by conf_to_rdkafka. */
    {.name = "ssl",
     .type = PROP_BOOL,
     .default_value = "false",
     .roles = BOTH,
     .rdkafka_doc = "security.protocol ssl (sasl_ssl with sasl_mechanism)",
     .description = "Connect to endpoints over TLS (Kaffe's ssl: true). With "
                    "heroku_kafka_env=true, TLS comes from KAFKA_URL instead and this must "
                    "not be set."},
    {.name = "ssl_ca",
     .type = PROP_STRING,
     .default_value = "",
     .roles = BOTH,
     .rdkafka_doc = "ssl.ca.location (a path) or ssl.ca.pem (PEM text)",
     .description = "The CA certificate(s) that signed the brokers' certificates: a PEM file "
                    "path, or the PEM text itself. Empty: the system's CA store."},
    {.name = "ssl_cert",
     .type = PROP_STRING,
     .default_value = "",
     .roles = BOTH,
     .rdkafka_doc = "ssl.certificate.location (a path) or ssl.certificate.pem (PEM text)",
     .description = "The client certificate for mutual TLS: a PEM file path or PEM text. "
                    "Needs ssl_key, which must match it."},
    {.name = "ssl_key",
     .type = PROP_STRING,
     .default_value = "",
     .roles = BOTH,
     .secret = true,
     .rdkafka_doc = "ssl.key.location (a path) or ssl.key.pem (PEM text)",
     .description = "The client private key for mutual TLS: a PEM file path or PEM text. "
                    "Never shown in messages."},
    {.name = "ssl_key_password",
     .type = PROP_STRING,
     .default_value = "",
     .roles = BOTH,
     .secret = true,
     .rdkafka_doc = "ssl.key.password",
     .description = "The password of an encrypted ssl_key. Never shown in messages."},
    {.name = "ssl_verify_hostname",
     .type = PROP_BOOL,
     .default_value = "true",
     .roles = BOTH,
     .rdkafka_doc = "ssl.endpoint.identification.algorithm https (true) or none (false)",
     .description = "Check that the broker's certificate names the host connected to (also "
                    "in Heroku mode). Turn off only for providers whose broker certificates "
                    "do not name the host; the certificate chain is still verified."},
    {.name = "sasl_mechanism",
     .type = PROP_ENUM,
     .default_value = "none",
     .choices = "none|plain|scram_sha_256|scram_sha_512",
     .roles = BOTH,
     .rdkafka_name = "sasl.mechanisms",
     .to_rdkafka = sasl_mechanism_to_rdkafka,
     .rdkafka_doc = "sasl.mechanisms PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, and "
                    "security.protocol sasl_plaintext (sasl_ssl with TLS)",
     .description = "SASL authentication (Kaffe's sasl: %{mechanism: ...}). Any mechanism "
                    "but none needs sasl_username and sasl_password."},
    {.name = "sasl_username",
     .type = PROP_STRING,
     .default_value = "",
     .roles = BOTH,
     .rdkafka_name = "sasl.username",
     .description = "The SASL user name."},
    {.name = "sasl_login",
     .type = PROP_STRING,
     .default_value = "",
     .roles = BOTH,
     .alias_of = "sasl_username",
     .description = "Kaffe's name for sasl_username (sasl: %{login: ...})."},
    {.name = "sasl_password",
     .type = PROP_STRING,
     .default_value = "",
     .roles = BOTH,
     .secret = true,
     .rdkafka_name = "sasl.password",
     .description = "The SASL password. Never shown in messages."},

    /* Consumer. */
    {.name = "consumer_group",
     .type = PROP_STRING,
     .default_value = "",
     .roles = CONSUMER,
     .rdkafka_name = "group.id",
     .description = "The consumer group that tracks offsets in Kafka. Required for a consumer."},
    {.name = "group_protocol",
     .type = PROP_ENUM,
     .default_value = "classic",
     .choices = "classic|consumer",
     .roles = CONSUMER,
     .rdkafka_doc = "group.protocol=consumer (classic sends nothing: librdkafka's default); "
                    "classic also sets partition.assignment.strategy=cooperative-sticky",
     .description = "The consumer group protocol. classic: the JoinGroup/SyncGroup protocol "
                    "with the cooperative-sticky assignor (kaffe's default). consumer: the "
                    "next-generation protocol of KIP-848, where the broker assigns partitions "
                    "and heartbeats carry them; it needs librdkafka >= 2.12.0 (where it is "
                    "generally available) and Kafka brokers >= 4.0, and refuses "
                    "rdkafka.partition.assignment.strategy, rdkafka.session.timeout.ms, "
                    "rdkafka.heartbeat.interval.ms and rdkafka.group.protocol.type (the "
                    "broker's group.consumer.* settings decide those; "
                    "rdkafka.group.remote.assignor picks the broker's assignor). "
                    "rdkafka.group.protocol is the same setting under librdkafka's name."},
    {.name = "async_message_ack",
     .type = PROP_BOOL,
     .default_value = "false",
     .roles = CONSUMER,
     .description = "false: the handler's KAFFE_OK return acks the message. true: the handler "
                    "accepts the message and the application calls kaffe_consumer_ack() "
                    "later, from any thread, exactly once."},
    {.name = "start_with_earliest_message",
     .type = PROP_BOOL,
     .default_value = "false",
     .roles = CONSUMER,
     .rdkafka_name = "auto.offset.reset",
     .description = "Where a group with no committed offset starts: true = the earliest "
                    "message, false = only new messages. Committed offsets always win."},
    {.name = "workers",
     .type = PROP_INT,
     .default_value = "8",
     .min = 1,
     .max = 1024,
     .roles = CONSUMER,
     .description = "Worker threads that run the message handler."},
    {.name = "ordering",
     .type = PROP_ENUM,
     .default_value = "partition",
     .choices = "partition|key|unordered",
     .roles = CONSUMER,
     .description = "partition: one message at a time per partition, in offset order "
                    "(Kaffe's semantics; partitions run in parallel). key: in order per "
                    "key within a partition. unordered: any free worker."},
    {.name = "batch_max_messages",
     .type = PROP_INT,
     .default_value = "500",
     .min = 1,
     .max = 100000,
     .roles = CONSUMER,
     .description = "With a batch handler (kaffe_conf_set_batch_handler): the most messages "
                    "in one batch."},
    {.name = "batch_max_bytes",
     .type = PROP_INT,
     .default_value = "1048576",
     .min = 1,
     .max = INT64_C(1) << 30,
     .roles = CONSUMER,
     .description = "With a batch handler: a batch closes once its keys and values reach "
                    "this many bytes (a single larger message is a batch of its own)."},
    {.name = "batch_max_wait_ms",
     .type = PROP_INT,
     .default_value = "0",
     .min = 0,
     .max = 60000,
     .roles = CONSUMER,
     .description = "With a batch handler: how long a batch that is not full may wait for "
                    "more messages of its lane. 0: a batch holds what one poll of the "
                    "client brought (the lowest latency)."},
    {.name = "ack_window",
     .type = PROP_INT,
     .default_value = "65536",
     .min = 64,
     .max = 16777216,
     .roles = CONSUMER,
     .description = "Offsets tracked per partition above the committed watermark. A partition "
                    "whose oldest unacked message is this far behind is paused."},
    {.name = "max_in_flight_messages",
     .type = PROP_INT,
     .default_value = "10000",
     .min = 1,
     .max = 16777216,
     .roles = CONSUMER,
     .description = "Per partition: delivered but not yet acked messages before the "
                    "partition is paused (resumed below half)."},
    {.name = "max_in_flight_bytes",
     .type = PROP_INT,
     .default_value = "16777216",
     .min = 1024,
     .max = INT64_C(1) << 40,
     .roles = CONSUMER,
     .description = "Per partition: bytes of delivered but not yet acked messages before the "
                    "partition is paused (resumed below half)."},
    {.name = "commit_interval_ms",
     .type = PROP_INT,
     .default_value = "5000",
     .min = 10,
     .max = 3600000,
     .roles = CONSUMER,
     .description = "How often acked offsets are committed (also on revoke and on stop)."},
    {.name = "commit_metadata_max_bytes",
     .type = PROP_INT,
     .default_value = "4096",
     .min = 0,
     .max = 1048576,
     .roles = CONSUMER,
     .description = "At most this many bytes of commit metadata (the acked offsets above a "
                    "partition's committed offset, which a restart or the next owner does not "
                    "handle again). Kafka's default offset.metadata.max.bytes is 4096. A broker "
                    "that refuses the metadata as too large (OFFSET_METADATA_TOO_LARGE) is "
                    "answered at once with a commit of half that size (down to none), and the "
                    "lower limit holds for the member's lifetime; one warning names it. 0: no "
                    "metadata (what is acked above the committed offset is handled again after "
                    "a restart)."},
    {.name = "drain_timeout_ms",
     .type = PROP_INT,
     .default_value = "10000",
     .min = 0,
     .max = 3600000,
     .roles = CONSUMER,
     .description = "How long revoke and stop wait for in-flight messages before committing "
                    "what is acked and letting the rest be redelivered."},
    {.name = "on_error",
     .type = PROP_ENUM,
     .default_value = "stop",
     .choices = "stop|retry|dead_letter|pause",
     .roles = CONSUMER,
     .description = "What a handler failure does. stop: the consumer stops with the error "
                    "(Kaffe's behaviour; nothing at or past the message is committed). retry: "
                    "the message is handled again after a backoff, holding back only its lane, "
                    "then retry_exhausted applies. dead_letter: the message is produced to "
                    "dead_letter_topic and counts as acked once the broker acknowledged it. "
                    "pause: the message waits, holding its lane, until "
                    "kaffe_consumer_resume_partition()."},
    {.name = "retry_max_attempts",
     .type = PROP_INT,
     .default_value = "3",
     .min = 1,
     .max = 1000000,
     .roles = CONSUMER,
     .description = "on_error=retry: handler attempts per message, the first one included."},
    {.name = "retry_initial_backoff_ms",
     .type = PROP_INT,
     .default_value = "100",
     .min = 0,
     .max = 3600000,
     .roles = CONSUMER,
     .description = "on_error=retry: the wait before the first handler retry (not to be confused "
                    "with retry_backoff_ms, librdkafka's request retry); it doubles for each "
                    "later one (up to retry_max_backoff_ms), and each wait is drawn uniformly "
                    "from its upper half (jitter)."},
    {.name = "retry_max_backoff_ms",
     .type = PROP_INT,
     .default_value = "10000",
     .min = 0,
     .max = 3600000,
     .roles = CONSUMER,
     .description = "on_error=retry: the longest wait between two attempts."},
    {.name = "retry_exhausted",
     .type = PROP_ENUM,
     .default_value = "stop",
     .choices = "stop|dead_letter|skip",
     .roles = CONSUMER,
     .description = "on_error=retry: what happens after the last attempt failed. stop: as "
                    "on_error=stop. dead_letter: as on_error=dead_letter. skip: the message is "
                    "acked without being handled, and counted (kaffe_consumer_failure_counters)."},
    {.name = "restart_max",
     .type = PROP_INT,
     .default_value = "3",
     .min = 0,
     .max = 1000,
     .roles = CONSUMER,
     .description = "Client restarts after fatal librdkafka errors allowed within "
                    "restart_window_ms; one more fatal error stops the consumer with it. 0: "
                    "every fatal error stops the consumer."},
    {.name = "restart_window_ms",
     .type = PROP_INT,
     .default_value = "60000",
     .min = 1,
     .max = 86400000,
     .roles = CONSUMER,
     .description = "The time window of the restart_max budget."},
    {.name = "dead_letter_topic",
     .type = PROP_STRING,
     .default_value = "",
     .roles = CONSUMER,
     .description = "The topic failed messages are produced to (on_error=dead_letter or "
                    "retry_exhausted=dead_letter; required then). Key, value and headers are "
                    "kept; kaffe.original.topic, kaffe.original.partition, "
                    "kaffe.original.offset, kaffe.error.code, kaffe.error.text, kaffe.attempts "
                    "and kaffe.failed.at (ms since the epoch) headers are added. The producer "
                    "uses the consumer's settings (endpoints, TLS, SASL, produce_timeout_ms)."},

    /* Producer. */
    {.name = "partition_strategy",
     .type = PROP_ENUM,
     .default_value = "round_robin",
     .choices = "round_robin|random|md5|murmur2",
     .roles = PRODUCER,
     .description = "How kaffe_produce_sync() and kaffe_produce_sync_topic() pick a "
                    "partition: round_robin from 0 per topic, random, md5 (Kaffe-compatible), "
                    "murmur2 (Java-client compatible). kaffe_conf_set_partitioner() overrides."},
    {.name = "produce_timeout_ms",
     .type = PROP_INT,
     .default_value = "30000",
     .min = 1,
     .max = 2147483647,
     .roles = PRODUCER,
     .description = "How long a message may take to be acknowledged by the broker, retries "
                    "included (librdkafka's message.timeout.ms; rdkafka.message.timeout.ms wins "
                    "when given). A sync produce call fails with KAFFE_ERR_TIMED_OUT or "
                    "KAFFE_ERR_ALL_BROKERS_DOWN after about this long."},
    {.name = "partition_refresh_ms",
     .type = PROP_INT,
     .default_value = "30000",
     .min = 100,
     .max = 86400000,
     .roles = PRODUCER,
     .description = "How often the producer re-reads the partition counts of the topics it "
                    "uses, so the partitions of a grown topic get messages."},
    /* Logging. */
    {.name = "log_level",
     .type = PROP_ENUM,
     .default_value = "info",
     .choices = "error|warning|info|debug",
     .roles = BOTH,
     .rdkafka_name = "log_level",
     .to_rdkafka = log_level_to_rdkafka,
     .description = "The least severe log lines passed to the log callback (or stderr), for "
                    "kaffe's own lines and librdkafka's (syslog levels 3, 4, 6, 7). librdkafka's "
                    "debug lines also need rdkafka.debug (e.g. broker,cgrp); rdkafka.debug "
                    "without log_level implies debug. Secrets are removed from every line."},
};

size_t property_count(void) {
    return sizeof properties / sizeof properties[0];
}

const property_t *property_at(size_t index) {
    return index < property_count() ? &properties[index] : NULL;
}

const property_t *property_find(const char *name) {
    for (size_t i = 0; i < property_count(); i++)
        if (strcmp(properties[i].name, name) == 0)
            return &properties[i];
    return NULL;
}

bool property_parse_bool(const char *value) {
    return strcmp(value, "true") == 0;
}

int64_t property_parse_int(const char *value) {
    return strtoll(value, NULL, 10);
}

static bool choice_matches(const char *choices, const char *value) {
    size_t len = strlen(value);
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t clen = bar ? (size_t)(bar - c) : strlen(c);
        if (clen == len && strncmp(c, value, len) == 0)
            return true;
        if (!bar)
            break;
        c = bar + 1;
    }
    return false;
}

kaffe_status_t property_validate(const property_t *p, const char *value, char *errstr,
                                 size_t errstr_size) {
    const char *shown = p->secret ? "(hidden)" : value;
    switch (p->type) {
        case PROP_STRING:
        case PROP_LIST:
            break;
        case PROP_BOOL:
            if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
                errstr_printf(errstr, errstr_size, "%s: expected true or false, got \"%s\"",
                              p->name, shown);
                return KAFFE_ERR_INVALID_CONF;
            }
            break;
        case PROP_INT: {
            char *end = NULL;
            errno = 0;
            long long v = strtoll(value, &end, 10);
            if (errno || end == value || *end != '\0' || isspace((unsigned char)*value)) {
                errstr_printf(errstr, errstr_size, "%s: expected an integer, got \"%s\"", p->name,
                              shown);
                return KAFFE_ERR_INVALID_CONF;
            }
            if (v < p->min || v > p->max) {
                errstr_printf(errstr, errstr_size, "%s: %lld is out of range [%lld, %lld]", p->name,
                              v, (long long)p->min, (long long)p->max);
                return KAFFE_ERR_INVALID_CONF;
            }
            break;
        }
        case PROP_ENUM:
            if (!choice_matches(p->choices, value)) {
                errstr_printf(errstr, errstr_size, "%s: expected one of %s, got \"%s\"", p->name,
                              p->choices, shown);
                return KAFFE_ERR_INVALID_CONF;
            }
            break;
    }
    return p->check ? p->check(value, errstr, errstr_size) : KAFFE_OK;
}

/* host:port[,host:port...]; host non-empty, port 1..65535. An empty list is
 * allowed here (it means "unset"); conf_validate() requires it when needed. */
static kaffe_status_t check_endpoints(const char *value, char *errstr, size_t errstr_size) {
    const char *s = value;
    while (*s) {
        while (*s == ' ')
            s++;
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        while (len > 0 && s[len - 1] == ' ')
            len--;
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (s[i] == ':')
                colon = s + i;
        bool ok = colon && colon > s && (size_t)(colon - s) + 1 < len;
        long port = 0;
        for (const char *d = colon ? colon + 1 : s; ok && d < s + len; d++) {
            if (!isdigit((unsigned char)*d))
                ok = false;
            else
                port = port * 10 + (*d - '0');
            if (port > 65535)
                ok = false;
        }
        if (!ok || port == 0) {
            errstr_printf(errstr, errstr_size,
                          "endpoints: \"%.*s\" is not host:port (port 1..65535)", (int)len, s);
            return KAFFE_ERR_INVALID_CONF;
        }
        if (!end)
            break;
        s = end + 1;
    }
    return KAFFE_OK;
}

/* Value translations for librdkafka (see the rows' descriptions). */
static const char *min_bytes_to_rdkafka(const char *value) {
    return strcmp(value, "0") == 0 ? "1" : value;
}

static const char *offset_reset_to_rdkafka(const char *value) {
    if (strcmp(value, "reset_to_earliest") == 0)
        return "earliest";
    if (strcmp(value, "reset_to_latest") == 0)
        return "latest";
    return "error";
}

static const char *log_level_to_rdkafka(const char *value) {
    if (strcmp(value, "error") == 0)
        return "3";
    if (strcmp(value, "warning") == 0)
        return "4";
    if (strcmp(value, "debug") == 0)
        return "7";
    return "6";
}

static const char *compression_to_rdkafka(const char *value) {
    return strcmp(value, "no_compression") == 0 ? "none" : value;
}

static const char *sasl_mechanism_to_rdkafka(const char *value) {
    if (strcmp(value, "plain") == 0)
        return "PLAIN";
    if (strcmp(value, "scram_sha_256") == 0)
        return "SCRAM-SHA-256";
    if (strcmp(value, "scram_sha_512") == 0)
        return "SCRAM-SHA-512";
    return "GSSAPI"; /* librdkafka's default; unused: "none" sets no SASL at all */
}

const char *property_rdkafka_value(const property_t *p, const char *value) {
    return p->to_rdkafka ? p->to_rdkafka(value) : value;
}

bool property_mapped_generically(const property_t *p) {
    /* These rows reach librdkafka through conf_to_rdkafka's own code
     * (derived, required or defaulted settings); every other row with an
     * rdkafka_name is copied over when set. */
    static const char *const by_code[] = {
        "endpoints",      "consumer_group", "start_with_earliest_message",
        "sasl_mechanism", "sasl_username",  "sasl_password",
    };
    if (!p->rdkafka_name)
        return false;
    for (size_t i = 0; i < sizeof by_code / sizeof by_code[0]; i++)
        if (strcmp(p->name, by_code[i]) == 0)
            return false;
    return true;
}
