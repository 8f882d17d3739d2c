/* Logging: kaffe's own lines and librdkafka's, filtered by log_level, with
 * secrets redacted, to the log callback or stderr.
 *
 * Threads: any (conf is immutable once a consumer or producer owns it).
 * Each call formats into its own stack buffers: no shared state. */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/internal.h"
#include "conf/pem.h"
#include "conf/properties.h"

#define LINE_MAX_BYTES 4096
#define REDACTED "[redacted]"
#define MIN_PEM_LINE 8 /* PEM body lines shorter than this are not secret enough to match */

static int threshold(const kaffe_conf_t *conf) {
    /* rdkafka.debug alone asks for librdkafka's debug lines (librdkafka
     * raises its own log level for it): let them through. */
    if (!conf_is_set(conf, "log_level") && conf_passthrough_find(conf, "debug"))
        return KAFFE_LOG_DEBUG;
    const char *v = conf_str(conf, "log_level");
    if (strcmp(v, "error") == 0)
        return KAFFE_LOG_ERROR;
    if (strcmp(v, "warning") == 0)
        return KAFFE_LOG_WARNING;
    if (strcmp(v, "debug") == 0)
        return KAFFE_LOG_DEBUG;
    return KAFFE_LOG_INFO;
}

/* Replaces every occurrence of secret[0..len) in line (capacity cap) by
 * REDACTED, truncating at cap if the line grows. */
static void redact(char *line, size_t cap, const char *secret, size_t len) {
    if (len == 0)
        return;
    size_t rlen = strlen(REDACTED);
    char *at = line;
    while ((at = memmem(at, strlen(at), secret, len)) != NULL) {
        size_t tail = strlen(at + len) + 1; /* with the NUL */
        size_t pos = (size_t)(at - line);
        if (pos + rlen + tail > cap) { /* no room: cut the line here */
            snprintf(at, cap - pos, "%s", REDACTED);
            return;
        }
        memmove(at + rlen, at + len, tail);
        memcpy(at, REDACTED, rlen);
        at += rlen;
    }
}

/* A secret value: all of it, and, for PEM text, each body line of it
 * (librdkafka or OpenSSL could quote a fragment). */
static void redact_value(char *line, size_t cap, const char *value) {
    if (!value || !*value)
        return;
    redact(line, cap, value, strlen(value));
    if (!conf_pem_is_text(value))
        return;
    const char *p = value;
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n && p[n - 1] == '\r')
            n--;
        if (n >= MIN_PEM_LINE && strncmp(p, "-----", 5) != 0)
            redact(line, cap, p, n);
        p = end ? end + 1 : p + strlen(p);
    }
}

/* Any PEM private key block, whatever its origin. */
static void redact_pem_blocks(char *line, size_t cap) {
    (void)cap;
    char *begin;
    char *from = line;
    while ((begin = strstr(from, "-----BEGIN")) != NULL) {
        char *label_end = strstr(begin + 10, "-----");
        if (!label_end)
            return;
        if (!memmem(begin, (size_t)(label_end - begin), "PRIVATE KEY", 11)) {
            from = label_end + 5;
            continue;
        }
        char *end = strstr(label_end + 5, "-----END");
        char *close = end ? strstr(end + 8, "-----") : NULL;
        char *stop = close ? close + 5 : begin + strlen(begin);
        size_t rlen = strlen(REDACTED);
        memmove(begin + rlen, stop, strlen(stop) + 1);
        memcpy(begin, REDACTED, rlen); /* REDACTED is never longer than a block */
        from = begin + rlen;
    }
}

static void redact_secrets(const kaffe_conf_t *conf, char *line, size_t cap) {
    redact_pem_blocks(line, cap);
    for (size_t i = 0; i < property_count(); i++) {
        const property_t *p = property_at(i);
        if (p->secret && conf_is_set(conf, p->name))
            redact_value(line, cap, conf_str(conf, p->name));
    }
    for (size_t i = 0; i < conf_passthrough_count(conf); i++) {
        const char *name, *value;
        conf_passthrough_at(conf, i, &name, &value);
        if (conf_rdkafka_name_is_secret(name))
            redact_value(line, cap, value);
    }
    if (conf_bool(conf, "heroku_kafka_env"))
        redact_value(line, cap, getenv("KAFKA_CLIENT_CERT_KEY"));
}

static const char *level_name(int level) {
    switch (level) {
        case KAFFE_LOG_ERROR:
            return "ERROR";
        case KAFFE_LOG_WARNING:
            return "WARNING";
        case KAFFE_LOG_INFO:
            return "INFO";
        default:
            return "DEBUG";
    }
}

static void emit(const kaffe_conf_t *conf, int level, const char *facility, char *line,
                 size_t cap) {
    /* One line: no trailing newline, embedded newlines become spaces. */
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    redact_secrets(conf, line, cap);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    void *opaque;
    kaffe_log_cb_t cb = conf_log_cb(conf, &opaque);
    if (cb)
        cb(level, facility, line, opaque);
    else
        fprintf(stderr, "kaffe %s %s: %s\n", level_name(level), facility, line);
}

void conf_log(const kaffe_conf_t *conf, int level, const char *facility, const char *fmt, ...) {
    if (level > threshold(conf))
        return;
    char line[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    emit(conf, level, facility, line, sizeof line);
}

void conf_report_error(const kaffe_conf_t *conf, const char *facility, int status,
                       const char *text) {
    void *opaque;
    kaffe_error_cb_t cb = conf_error_cb(conf, &opaque);
    if (cb)
        cb(status, text, opaque);
    else
        conf_log(conf, KAFFE_LOG_ERROR, facility, "%s: %s", kaffe_err_name(status), text);
}

void conf_log_rdkafka(const kaffe_conf_t *conf, int level, const char *fac, const char *text) {
    /* A broker connection failure: librdkafka logs it (facility FAIL) and
     * reports it as an error event, which kaffe tells the application
     * (conf_report_error). The log line is the duplicate: debug. */
    if (fac && strcmp(fac, "FAIL") == 0 && level <= 4)
        level = 7;
    int mapped = level <= 3   ? KAFFE_LOG_ERROR
                 : level == 4 ? KAFFE_LOG_WARNING
                 : level <= 6 ? KAFFE_LOG_INFO
                              : KAFFE_LOG_DEBUG;
    if (mapped > threshold(conf))
        return;
    char facility[64];
    snprintf(facility, sizeof facility, "rdkafka:%s", fac ? fac : "");
    char line[LINE_MAX_BYTES];
    snprintf(line, sizeof line, "%s", text ? text : "");
    emit(conf, mapped, facility, line, sizeof line);
}

/* The one rd_kafka log callback (see conf_route_rdkafka_logs in conf.h):
 * the opaque starts with the owner's conf pointer. */
static void rdkafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const kaffe_conf_t *const *owner = rd_kafka_opaque(rk);
    if (owner)
        conf_log_rdkafka(*owner, level, fac, buf);
}

void conf_route_rdkafka_logs(rd_kafka_conf_t *rdconf) {
    rd_kafka_conf_set_log_cb(rdconf, rdkafka_log_cb);
}
