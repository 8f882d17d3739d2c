/* The message accessors (include/kaffe/message.h): read-only views of the
 * wrapped rd_kafka_message_t. */
#include <string.h>

#include <kaffe/message.h>

#include "consumer/consumer.h"
#include "consumer/internal.h"

const char *kaffe_message_topic(const kaffe_message_t *m) {
    return m ? m->topic : NULL;
}

int32_t kaffe_message_partition(const kaffe_message_t *m) {
    return m ? m->rkm->partition : -1;
}

int64_t kaffe_message_offset(const kaffe_message_t *m) {
    return m ? m->rkm->offset : -1;
}

const void *kaffe_message_key(const kaffe_message_t *m, size_t *len) {
    if (len)
        *len = m && m->rkm->key ? m->rkm->key_len : 0;
    return m ? m->rkm->key : NULL;
}

const void *kaffe_message_value(const kaffe_message_t *m, size_t *len) {
    if (len)
        *len = m && m->rkm->payload ? m->rkm->len : 0;
    return m ? m->rkm->payload : NULL;
}

int64_t kaffe_message_timestamp(const kaffe_message_t *m, kaffe_timestamp_type_t *type) {
    rd_kafka_timestamp_type_t tstype = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    int64_t ts = m ? rd_kafka_message_timestamp(m->rkm, &tstype) : -1;
    if (type) {
        switch (tstype) {
            case RD_KAFKA_TIMESTAMP_CREATE_TIME:
                *type = KAFFE_TIMESTAMP_CREATE_TIME;
                break;
            case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME:
                *type = KAFFE_TIMESTAMP_LOG_APPEND_TIME;
                break;
            default:
                *type = KAFFE_TIMESTAMP_NONE;
        }
    }
    return tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
}

size_t kaffe_message_header_count(const kaffe_message_t *m) {
    return m && m->headers ? rd_kafka_header_cnt(m->headers) : 0;
}

kaffe_status_t kaffe_message_header(const kaffe_message_t *m, size_t idx, const char **name,
                                    const void **value, size_t *size) {
    if (!m || !m->headers)
        return KAFFE_ERR_INVALID_ARG;
    const char *n;
    const void *v;
    size_t s;
    if (rd_kafka_header_get_all(m->headers, idx, &n, &v, &s) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return KAFFE_ERR_INVALID_ARG;
    if (name)
        *name = n;
    if (value)
        *value = v;
    if (size)
        *size = s;
    return KAFFE_OK;
}

kaffe_status_t kaffe_message_header_last(const kaffe_message_t *m, const char *name,
                                         const void **value, size_t *size) {
    if (!m || !name || !m->headers)
        return KAFFE_ERR_INVALID_ARG;
    const void *v;
    size_t s;
    if (rd_kafka_header_get_last(m->headers, name, &v, &s) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return KAFFE_ERR_INVALID_ARG;
    if (value)
        *value = v;
    if (size)
        *size = s;
    return KAFFE_OK;
}

int kaffe_message_attempt(const kaffe_message_t *m) {
    return m ? m->attempt : 0;
}

uint64_t consumer_message_polled_ns(const kaffe_message_t *m) {
    return m->polled_ns;
}
