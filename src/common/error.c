/* Status names and descriptions, generated from the KAFFE_ERRORS list.
 * librdkafka codes are described by librdkafka itself. */
#include <kaffe/error.h>

#include <librdkafka/rdkafka.h>

KAFFE_API const char *kaffe_err_name(int status) {
    switch (status) {
#define KAFFE__NAME(name, value, text)                                                             \
    case value:                                                                                    \
        return "KAFFE_" #name;
        KAFFE_ERRORS(KAFFE__NAME)
#undef KAFFE__NAME
    }
    if (status > -1000)
        return rd_kafka_err2name((rd_kafka_resp_err_t)status);
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
