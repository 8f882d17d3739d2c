/* Logging: librdkafka's lines and kaffe's own arrive through the log
 * callback with levels; log_level filters; secrets (SASL password, PEM
 * private key, key password) never appear, even at debug. */
#include <criterion/criterion.h>

#include <kaffe/kaffe.h>

#include "conf/conf.h"
#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/pem_gen.h"
#include "support/plain_client.h"

MOCK_CLUSTER_SUITE(logging, 1, 120, {"lg", 1});

typedef struct log_sink {
    pthread_mutex_t lock;
    char *text; /* every line as "<level> <facility>: <message>\n" */
    size_t len, cap;
    long lines, rdkafka_lines, kaffe_error_lines, below_error;
} log_sink_t;

static void sink_init(log_sink_t *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
}

static void sink_free(log_sink_t *s) {
    free(s->text);
    pthread_mutex_destroy(&s->lock);
}

static void on_log(int level, const char *facility, const char *message, void *opaque) {
    log_sink_t *s = opaque;
    char line[8192];
    int n = snprintf(line, sizeof line, "%d %s: %s\n", level, facility, message);
    pthread_mutex_lock(&s->lock);
    if (s->len + (size_t)n + 1 > s->cap) {
        s->cap = (s->cap + (size_t)n + 1) * 2;
        s->text = realloc(s->text, s->cap);
    }
    memcpy(s->text + s->len, line, (size_t)n + 1);
    s->len += (size_t)n;
    s->lines++;
    if (strncmp(facility, "rdkafka:", 8) == 0)
        s->rdkafka_lines++;
    if (strcmp(facility, "consumer") == 0 && level == KAFFE_LOG_ERROR)
        s->kaffe_error_lines++;
    if (level > KAFFE_LOG_ERROR)
        s->below_error++;
    pthread_mutex_unlock(&s->lock);
}

static long sink_count(log_sink_t *s, long *field) {
    pthread_mutex_lock(&s->lock);
    long n = *field;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static int sink_contains(log_sink_t *s, const char *needle) {
    pthread_mutex_lock(&s->lock);
    int found = s->text && strstr(s->text, needle) != NULL;
    pthread_mutex_unlock(&s->lock);
    return found;
}

static void set(kaffe_conf_t *conf, const char *name, const char *value) {
    char err[512];
    cr_assert_eq(kaffe_conf_set(conf, name, value, err, sizeof err), KAFFE_OK, "%s: %s", name, err);
}

static int ok_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

static kaffe_conf_t *base_conf(const char *group, log_sink_t *sink, const char *level) {
    kaffe_conf_t *conf = kaffe_conf_new();
    set(conf, "endpoints", mock_cluster_bootstraps(mc));
    set(conf, "topics", "lg");
    set(conf, "consumer_group", group);
    set(conf, "log_level", level);
    kaffe_conf_set_message_handler(conf, ok_handler, NULL);
    kaffe_conf_set_log_cb(conf, on_log, sink);
    return conf;
}

/* Runs a consumer for about ms and returns after destroying it. */
static void run_consumer(kaffe_conf_t *conf, int ms, log_sink_t *sink, long min_lines) {
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    int64_t deadline = clock_now_ms() + ms;
    while (clock_now_ms() < deadline && sink_count(sink, &sink->lines) < min_lines)
        clock_sleep_ms(10);
    kaffe_consumer_destroy(c);
}

/* Every base64 body line of a PEM private key (a key embeds its public
 * part, which the certificate shows legitimately: fragments found in
 * public_pem, whitespace removed, are not secret). */
static void assert_pem_absent(log_sink_t *s, const char *pem, const char *public_pem) {
    char *flat = malloc(strlen(public_pem) + 1);
    size_t fl = 0;
    for (const char *q = public_pem; *q; q++)
        if (*q != '\n' && *q != '\r' && *q != ' ')
            flat[fl++] = *q;
    flat[fl] = '\0';
    const char *p = pem;
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= 16 && strncmp(p, "-----", 5) != 0) {
            char line[128];
            snprintf(line, sizeof line, "%.*s", (int)(n < 40 ? n : 40), p);
            if (!strstr(flat, line) && sink_contains(s, line)) {
                const char *at = strstr(s->text, line);
                const char *start = at;
                while (start > s->text && start[-1] != '\n')
                    start--;
                cr_assert_fail("PEM key material in the log: %.300s", start);
            }
        }
        p = end ? end + 1 : p + n;
    }
    free(flat);
}

Test(logging, rdkafka_debug_lines_arrive_through_the_callback_without_the_sasl_password) {
    log_sink_t sink;
    sink_init(&sink);
    kaffe_conf_t *conf = base_conf("g-log-sasl", &sink, "debug");
    const char *password = "Pa55-w0rd-never-logged";
    set(conf, "sasl_mechanism", "plain");
    set(conf, "sasl_username", "alice");
    set(conf, "sasl_password", password);
    set(conf, "rdkafka.debug", "all");
    run_consumer(conf, 3000, &sink, 200);
    cr_assert_gt(sink_count(&sink, &sink.rdkafka_lines), 0, "no librdkafka line arrived");
    cr_assert(sink_contains(&sink, "7 rdkafka:"), "no librdkafka debug line");
    cr_assert_not(sink_contains(&sink, password), "the SASL password was logged");
    cr_assert_not(sink_contains(&sink, "Pa55-w0rd"), "part of the SASL password was logged");
    sink_free(&sink);
}

Test(logging, tls_private_key_and_its_password_never_appear) {
    log_sink_t sink;
    sink_init(&sink);
    char *ca_key = test_pem_key();
    char *ca = test_pem_cert(ca_key, "test-ca", NULL, NULL);
    char *key = test_pem_key();
    char *cert = test_pem_cert(key, "client", ca, ca_key);
    const char *key_password = "k3y-pass-phrase-secret";
    char *encrypted = test_pem_key_encrypted(key, key_password);
    kaffe_conf_t *conf = base_conf("g-log-tls", &sink, "debug");
    set(conf, "ssl", "true");
    set(conf, "ssl_ca", ca);
    set(conf, "ssl_cert", cert);
    set(conf, "ssl_key", encrypted);
    set(conf, "ssl_key_password", key_password);
    set(conf, "rdkafka.debug", "all");
    /* The mock broker speaks plaintext: the handshake fails and is logged. */
    run_consumer(conf, 3000, &sink, 200);
    cr_assert_gt(sink_count(&sink, &sink.rdkafka_lines), 0);
    cr_assert_not(sink_contains(&sink, key_password), "the key password was logged");
    assert_pem_absent(&sink, encrypted, cert);
    assert_pem_absent(&sink, key, cert);
    cr_assert_not(sink_contains(&sink, "PRIVATE KEY-----"));
    free(ca_key);
    free(ca);
    free(key);
    free(cert);
    free(encrypted);
    sink_free(&sink);
}

Test(logging, a_secret_in_a_kaffe_line_is_redacted) {
    log_sink_t sink;
    sink_init(&sink);
    kaffe_conf_t *conf = base_conf("g-log-redact", &sink, "info");
    set(conf, "sasl_mechanism", "plain");
    set(conf, "sasl_username", "bob");
    set(conf, "sasl_password", "hunter2-secret");
    char *key = test_pem_key();
    char line[4096];
    snprintf(line, sizeof line, "oops %s and %s", "hunter2-secret", key);
    conf_log(conf, KAFFE_LOG_WARNING, "test", "%s", line);
    conf_log_rdkafka(conf, 6, "FAC", "librdkafka says hunter2-secret");
    conf_log(conf, KAFFE_LOG_DEBUG, "test", "below the level: dropped");
    cr_assert_eq(sink.lines, 2);
    cr_assert(sink_contains(&sink, "4 test: oops [redacted] and [redacted]\n"), "%s", sink.text);
    cr_assert(sink_contains(&sink, "6 rdkafka:FAC: librdkafka says [redacted]\n"), "%s", sink.text);
    cr_assert_not(sink_contains(&sink, "dropped"));
    free(key);
    kaffe_conf_destroy(conf);
    sink_free(&sink);
}

static int failing_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_ERR_HANDLER;
}

typedef struct err_seen {
    atomic_int status;
    char name[64];
} err_seen_t;

static void on_error(int status, const char *reason, void *opaque) {
    err_seen_t *e = opaque;
    (void)reason;
    if (status == KAFFE_ERR_HANDLER) {
        snprintf(e->name, sizeof e->name, "%s", kaffe_err_name(status));
        atomic_store(&e->status, status);
    }
}

/* A consumer whose handler fails, with or without an error callback: the
 * number of kaffe error lines logged. */
static int failing_run(const char *group, log_sink_t *sink, err_seen_t *seen) {
    kaffe_conf_t *conf = base_conf(group, sink, "error");
    set(conf, "start_with_earliest_message", "true");
    set(conf, "rdkafka.debug", "all"); /* librdkafka's debug lines are filtered out */
    kaffe_conf_set_message_handler(conf, failing_handler, NULL);
    if (seen)
        kaffe_conf_set_error_cb(conf, on_error, seen);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_wait(c, 30000), KAFFE_OK);
    cr_assert_eq(kaffe_consumer_stop(c), KAFFE_ERR_HANDLER);
    cr_assert_eq(kaffe_consumer_last_error(c, NULL, 0), KAFFE_ERR_HANDLER);
    kaffe_consumer_destroy(c);
    return sink->kaffe_error_lines;
}

Test(logging, kaffe_errors_are_logged_with_their_name_and_log_level_filters) {
    cr_assert_eq(plain_produce(mock_cluster_bootstraps(mc), "lg", 0, 3, 0, 0), 3);
    /* No error callback: the error is logged, with its name. */
    log_sink_t sink;
    sink_init(&sink);
    cr_assert_geq(failing_run("g-log-fail", &sink, NULL), 1);
    cr_assert(sink_contains(&sink, "3 consumer: KAFFE_ERR_HANDLER: message handler failed"), "%s",
              sink.text ? sink.text : "");
    cr_assert_eq(sink.below_error, 0, "lines below log_level=error arrived");
    sink_free(&sink);
    /* An error callback: the error goes there instead, told once. */
    sink_init(&sink);
    err_seen_t seen = {0};
    cr_assert_eq(failing_run("g-log-fail-cb", &sink, &seen), 0, "%s", sink.text ? sink.text : "");
    cr_assert_eq(atomic_load(&seen.status), KAFFE_ERR_HANDLER);
    cr_assert_str_eq(seen.name, "KAFFE_ERR_HANDLER");
    sink_free(&sink);
}

Test(logging, rdkafka_debug_without_log_level_lets_debug_lines_through) {
    log_sink_t sink;
    sink_init(&sink);
    kaffe_conf_t *conf = kaffe_conf_new();
    kaffe_conf_set_log_cb(conf, on_log, &sink);
    conf_log_rdkafka(conf, 7, "FETCH", "dropped at the default level (info)");
    set(conf, "rdkafka.debug", "fetch");
    conf_log_rdkafka(conf, 7, "FETCH", "kept once rdkafka.debug is set");
    set(conf, "log_level", "info");
    conf_log_rdkafka(conf, 7, "FETCH", "dropped again: log_level says info");
    cr_assert_eq(sink.lines, 1, "%s", sink.text ? sink.text : "");
    cr_assert(sink_contains(&sink, "7 rdkafka:FETCH: kept once rdkafka.debug is set\n"));
    kaffe_conf_destroy(conf);
    sink_free(&sink);
}
