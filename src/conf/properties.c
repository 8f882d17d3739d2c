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
     .description = "Topics, comma-separated. The consumer subscribes to all of them; the "
                    "producer's first topic is the default for kaffe_produce_sync()."},

    /* Consumer. */
    {.name = "consumer_group",
     .type = PROP_STRING,
     .default_value = "",
     .roles = CONSUMER,
     .rdkafka_name = "group.id",
     .description = "The consumer group that tracks offsets in Kafka. Required for a consumer."},
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
    {.name = "drain_timeout_ms",
     .type = PROP_INT,
     .default_value = "10000",
     .min = 0,
     .max = 3600000,
     .roles = CONSUMER,
     .description = "How long revoke and stop wait for in-flight messages before committing "
                    "what is acked and letting the rest be redelivered."},

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
                    "KAFFE_ERR_TRANSPORT after about this long."},
    {.name = "partition_refresh_ms",
     .type = PROP_INT,
     .default_value = "30000",
     .min = 100,
     .max = 86400000,
     .roles = PRODUCER,
     .description = "How often the producer re-reads the partition counts of the topics it "
                    "uses, so the partitions of a grown topic get messages."},
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
