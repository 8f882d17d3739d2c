/* Status names and descriptions, generated from the KAFFE_ERRORS list.
 * librdkafka codes are described by librdkafka itself; their names get
 * librdkafka's enum prefix. And the one librdkafka -> kaffe mapping. */
#include <kaffe/error.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

kaffe_status_t status_from_rdkafka(rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
            return KAFFE_OK;
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
            return KAFFE_ERR_TIMED_OUT;
        case RD_KAFKA_RESP_ERR__TRANSPORT:
            return KAFFE_ERR_TRANSPORT;
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
            return KAFFE_ERR_ALL_BROKERS_DOWN;
        case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
            return KAFFE_ERR_AUTHENTICATION;
        case RD_KAFKA_RESP_ERR__SSL:
            return KAFFE_ERR_SSL;
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
            return KAFFE_ERR_MSG_SIZE_TOO_LARGE;
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
            return KAFFE_ERR_UNKNOWN_TOPIC;
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            return KAFFE_ERR_UNKNOWN_PARTITION;
        default:
            return (kaffe_status_t)err;
    }
}

/* "RD_KAFKA_RESP_ERR_" + librdkafka's name, for every code librdkafka
 * describes; built once, never freed (static for the process). */
#define RDKAFKA_PREFIX "RD_KAFKA_RESP_ERR_"
static const char **rdkafka_names;
static size_t rdkafka_name_count;
static pthread_once_t rdkafka_names_once = PTHREAD_ONCE_INIT;

static void build_rdkafka_names(void) {
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    const char **names = calloc(n, sizeof *names);
    if (!names)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!descs[i].name ||
            descs[i].code != (rd_kafka_resp_err_t)(RD_KAFKA_RESP_ERR__BEGIN + (int)i))
            continue;
        size_t len = sizeof RDKAFKA_PREFIX + strlen(descs[i].name);
        char *name = malloc(len);
        if (name)
            snprintf(name, len, "%s%s", RDKAFKA_PREFIX, descs[i].name);
        names[i] = name;
    }
    rdkafka_names = names;
    rdkafka_name_count = n;
}

static const char *rdkafka_name(int status) {
    pthread_once(&rdkafka_names_once, build_rdkafka_names);
    /* librdkafka's descriptions are indexed from RD_KAFKA_RESP_ERR__BEGIN. */
    long i = (long)status - RD_KAFKA_RESP_ERR__BEGIN;
    if (rdkafka_names && i >= 0 && (size_t)i < rdkafka_name_count && rdkafka_names[i])
        return rdkafka_names[i];
    return "KAFFE_ERR_UNKNOWN";
}

KAFFE_API const char *kaffe_err_name(int status) {
    switch (status) {
#define KAFFE__NAME(name, value, text)                                                             \
    case value:                                                                                    \
        return "KAFFE_" #name;
        KAFFE_ERRORS(KAFFE__NAME)
#undef KAFFE__NAME
    }
    if (status > -1000)
        return rdkafka_name(status);
    return "KAFFE_ERR_UNKNOWN";
}

KAFFE_API const char *kaffe_strerror(int status) {
    switch (status) {
#define KAFFE__TEXT(name, value, text)                                                             \
    case value:                                                                                    \
        return text;
        KAFFE_ERRORS(KAFFE__TEXT)
#undef KAFFE__TEXT
    }
    if (status > -1000)
        return rd_kafka_err2str((rd_kafka_resp_err_t)status);
    return "Unknown kaffe status";
}
