/* From a kaffe configuration to a librdkafka one, and the checks that need
 * the whole configuration (required and mutually exclusive settings). */
#include <stdio.h>
#include <string.h>

#include "common/errstr.h"
#include "conf/conf.h"
#include "conf/internal.h"

kaffe_status_t conf_validate(const kaffe_conf_t *conf, conf_role_t role, char *errstr,
                             size_t errstr_size) {
    bool heroku = conf_bool(conf, "heroku_kafka_env");
    bool has_endpoints = *conf_str(conf, "endpoints") != '\0';
    if (heroku && has_endpoints) {
        errstr_printf(errstr, errstr_size,
                      "endpoints and heroku_kafka_env=true are mutually exclusive: set one");
        return KAFFE_ERR_INVALID_CONF;
    }
    if (!heroku && !has_endpoints) {
        errstr_printf(errstr, errstr_size,
                      "endpoints: required (host:port[,host:port]) unless heroku_kafka_env=true");
        return KAFFE_ERR_INVALID_CONF;
    }
    char **topics = NULL;
    size_t topic_count = conf_list(conf, "topics", &topics);
    conf_list_free(topics);
    if (topic_count == 0) {
        errstr_printf(errstr, errstr_size, "topics: at least one topic is required");
        return KAFFE_ERR_INVALID_CONF;
    }
    if (role == CONF_ROLE_CONSUMER) {
        if (*conf_str(conf, "consumer_group") == '\0') {
            errstr_printf(errstr, errstr_size, "consumer_group: required for a consumer");
            return KAFFE_ERR_INVALID_CONF;
        }
        if (!conf_message_handler(conf, NULL)) {
            errstr_printf(errstr, errstr_size,
                          "message handler: required for a consumer "
                          "(kaffe_conf_set_message_handler)");
            return KAFFE_ERR_INVALID_CONF;
        }
        if (conf_int(conf, "max_in_flight_messages") > conf_int(conf, "ack_window")) {
            errstr_printf(errstr, errstr_size,
                          "max_in_flight_messages: must not exceed ack_window (%lld)",
                          (long long)conf_int(conf, "ack_window"));
            return KAFFE_ERR_INVALID_CONF;
        }
    }
    return KAFFE_OK;
}

static bool rd_set(rd_kafka_conf_t *rdconf, const char *name, const char *value,
                   const char *shown_as, char *errstr, size_t errstr_size) {
    char rderr[256];
    if (rd_kafka_conf_set(rdconf, name, value, rderr, sizeof rderr) == RD_KAFKA_CONF_OK)
        return true;
    errstr_printf(errstr, errstr_size, "%s: %s", shown_as, rderr);
    return false;
}

rd_kafka_conf_t *conf_to_rdkafka(const kaffe_conf_t *conf, conf_role_t role, char *errstr,
                                 size_t errstr_size) {
    if (conf_validate(conf, role, errstr, errstr_size) != KAFFE_OK)
        return NULL;
    rd_kafka_conf_t *rdconf = rd_kafka_conf_new();
    bool ok = true;
    if (conf_bool(conf, "heroku_kafka_env")) {
        errstr_printf(errstr, errstr_size, "heroku_kafka_env: not supported yet");
        ok = false;
    } else {
        ok = rd_set(rdconf, "bootstrap.servers", conf_str(conf, "endpoints"), "endpoints", errstr,
                    errstr_size);
    }
    if (ok && role == CONF_ROLE_CONSUMER) {
        ok = rd_set(rdconf, "group.id", conf_str(conf, "consumer_group"), "consumer_group", errstr,
                    errstr_size) &&
             rd_set(rdconf, "auto.offset.reset",
                    conf_bool(conf, "start_with_earliest_message") ? "earliest" : "latest",
                    "start_with_earliest_message", errstr, errstr_size) &&
             rd_set(rdconf, "partition.assignment.strategy", "cooperative-sticky",
                    "partition.assignment.strategy", errstr, errstr_size);
    }
    if (ok && role == CONF_ROLE_PRODUCER)
        ok = rd_set(rdconf, "acks", "all", "acks", errstr, errstr_size);
    /* Passthrough last: an explicit rdkafka.<property> wins over kaffe's mapping. */
    for (size_t i = 0; ok && i < conf_passthrough_count(conf); i++) {
        const char *name, *value;
        conf_passthrough_at(conf, i, &name, &value);
        char shown[300];
        snprintf(shown, sizeof shown, "rdkafka.%s", name);
        ok = rd_set(rdconf, name, value, shown, errstr, errstr_size);
    }
    /* kaffe decides what is committed; these are not negotiable. */
    if (ok && role == CONF_ROLE_CONSUMER)
        ok = rd_set(rdconf, "enable.auto.commit", "false", "enable.auto.commit", errstr,
                    errstr_size) &&
             rd_set(rdconf, "enable.auto.offset.store", "false", "enable.auto.offset.store", errstr,
                    errstr_size);
    if (!ok) {
        rd_kafka_conf_destroy(rdconf);
        return NULL;
    }
    return rdconf;
}
