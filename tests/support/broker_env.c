#include "support/broker_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/errstr.h"
#include "support/plain_client.h"
#include "conf/conf.h"
#include "common/clock.h"

#define MAX_ENTRIES 64

static char *keys[MAX_ENTRIES], *values[MAX_ENTRIES];
static size_t entry_count;
static bool loaded;

bool broker_env_load(char *errstr, size_t errstr_size) {
    if (loaded)
        return true;
    const char *path = getenv("KAFFE_BROKER_ENV");
    if (!path || !*path) {
        errstr_printf(errstr, errstr_size,
                      "KAFFE_BROKER_ENV is not set: the broker tier needs a running Apache Kafka "
                      "(run scripts/test.sh, or: export KAFFE_BROKER_ENV=$(scripts/kafka/start.sh)"
                      " and ctest -L broker; scripts/kafka/stop.sh $KAFFE_BROKER_ENV after)");
        return false;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        errstr_printf(errstr, errstr_size, "KAFFE_BROKER_ENV=%s cannot be read (broker stopped?)",
                      path);
        return false;
    }
    char line[1024];
    while (fgets(line, sizeof line, f) && entry_count < MAX_ENTRIES) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        keys[entry_count] = strdup(line);
        values[entry_count] = strdup(eq + 1);
        entry_count++;
    }
    fclose(f);
    loaded = true;
    return true;
}

const char *broker_env(const char *key) {
    for (size_t i = 0; i < entry_count; i++)
        if (strcmp(keys[i], key) == 0)
            return values[i];
    return NULL;
}

char *broker_read_file(const char *path) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

void broker_unique_topic(char *buf, size_t size, const char *prefix) {
    static int counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "%s-%ld-%ld-%d", prefix, (long)getpid(), (long)ts.tv_nsec, ++counter);
}

int broker_create_topic(const char *topic, int partitions, char *errstr, size_t errstr_size) {
    return plain_create_topic(broker_env("KAFFE_BROKER_PLAINTEXT"), topic, partitions, 1, errstr,
                              errstr_size);
}

int broker_kafka_version(void) {
    const char *v = broker_env("KAFFE_BROKER_KAFKA_VERSION");
    int major, minor;
    if (!v || sscanf(v, "%d.%d", &major, &minor) != 2)
        return -1;
    return major * 100 + minor;
}

void broker_events_init(broker_events_t *events) {
    memset(events, 0, sizeof *events);
    pthread_mutex_init(&events->lock, NULL);
}

/* Appends "name: text" to buf ("; "-separated), cut at its end. */
static void append_text(char *buf, size_t size, const char *name, const char *text) {
    size_t used = strlen(buf);
    if (used + 1 < size)
        snprintf(buf + used, size - used, "%s%s: %s", used ? "; " : "", name, text);
}

/* librdkafka's log callback: from its internal threads. Keeps warnings and
 * connection failures ("FAIL", logged at info level by librdkafka 2.12 when
 * one request was in flight: a plaintext client on a TLS port is reported
 * only there, the error callback sees just _ALL_BROKERS_DOWN). */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *line) {
    broker_events_t *events = rd_kafka_opaque(rk);
    if (!events || (level > 4 && !(level <= 6 && strcmp(fac, "FAIL") == 0)))
        return;
    pthread_mutex_lock(&events->lock);
    append_text(events->log_texts, sizeof events->log_texts, fac, line);
    pthread_mutex_unlock(&events->lock);
}

/* librdkafka's error callback: from rd_kafka_poll() (or the consumer poll)
 * on the polling thread. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    broker_events_t *events = opaque;
    pthread_mutex_lock(&events->lock);
    if (events->error_count++ == 0) {
        events->first_error = (rd_kafka_resp_err_t)err;
        snprintf(events->first_error_text, sizeof events->first_error_text, "%s: %s",
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    }
    append_text(events->error_texts, sizeof events->error_texts,
                rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    pthread_mutex_unlock(&events->lock);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    broker_events_t *events = opaque;
    pthread_mutex_lock(&events->lock);
    if (m->err) {
        if (events->delivery_failed++ == 0)
            events->first_delivery_error = m->err;
    } else {
        events->delivered++;
    }
    pthread_mutex_unlock(&events->lock);
}

rd_kafka_t *broker_handle_new(const kaffe_conf_t *conf, rd_kafka_type_t type,
                              broker_events_t *events, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *rdconf =
        conf_to_rdkafka(conf, type == RD_KAFKA_CONSUMER ? CONF_ROLE_CONSUMER : CONF_ROLE_PRODUCER,
                        errstr, errstr_size);
    if (!rdconf)
        return NULL;
    char err[512];
    rd_kafka_conf_set(rdconf, "log_level", "6", err, sizeof err);
    rd_kafka_conf_set_opaque(rdconf, events);
    rd_kafka_conf_set_error_cb(rdconf, on_error);
    rd_kafka_conf_set_log_cb(rdconf, on_log);
    if (type == RD_KAFKA_PRODUCER)
        rd_kafka_conf_set_dr_msg_cb(rdconf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(type, rdconf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(rdconf);
        errstr_printf(errstr, errstr_size, "rd_kafka_new: %s", err);
        return NULL;
    }
    if (type == RD_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

bool broker_wait_for_error(rd_kafka_t *rk, broker_events_t *events, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&events->lock);
        bool seen = events->error_count > 0;
        pthread_mutex_unlock(&events->lock);
        if (seen)
            return true;
        if (clock_now_ms() >= deadline)
            return false;
        rd_kafka_poll(rk, 100);
    }
}

int broker_produce(rd_kafka_t *rk, broker_events_t *events, const char *topic, int count,
                   int timeout_ms) {
    for (int i = 0; i < count; i++) {
        char key[32], value[32];
        int klen = snprintf(key, sizeof key, "key-%d", i);
        int vlen = snprintf(value, sizeof value, "value-%d", i);
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_KEY(key, (size_t)klen), RD_KAFKA_V_VALUE(value, (size_t)vlen),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        if (err)
            break;
    }
    rd_kafka_flush(rk, timeout_ms);
    pthread_mutex_lock(&events->lock);
    int delivered = events->delivered;
    pthread_mutex_unlock(&events->lock);
    return delivered;
}
