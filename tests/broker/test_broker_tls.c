/* The real broker over TLS: Heroku mode end to end (KAFKA_URL plus the three
 * PEM variables, mutual TLS), ssl=true with files, and the failures a user
 * meets: a wrong CA, a wrong client key, a client certificate the broker
 * does not trust, a plaintext URL against the TLS port, no client
 * certificate. Each failure must surface as a clear error through
 * librdkafka's error callback (or from the configuration, before connecting)
 * within a bound, never as a hang. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "conf/conf.h"
#include "support/broker_env.h"
#include "common/clock.h"

/* How long a failing handshake may take to be reported. librdkafka reports
 * a failed connection attempt at once; this only guards against hangs. */
#define ERROR_BOUND_MS 20000
/* message.timeout.ms for produce attempts that must fail. */
#define MESSAGE_TIMEOUT_MS 2000

static char *ca_pem, *client_cert_pem, *client_key_pem;

static void load(void) {
    char err[512];
    cr_assert(broker_env_load(err, sizeof err), "%s", err);
    ca_pem = broker_read_file(broker_env("KAFFE_BROKER_CA"));
    client_cert_pem = broker_read_file(broker_env("KAFFE_BROKER_CLIENT_CERT"));
    client_key_pem = broker_read_file(broker_env("KAFFE_BROKER_CLIENT_KEY"));
    cr_assert(ca_pem && client_cert_pem && client_key_pem, "certificates missing from %s",
              broker_env("KAFFE_BROKER_DIR"));
}

static void unload(void) {
    free(ca_pem);
    free(client_cert_pem);
    free(client_key_pem);
}

TestSuite(tls, .init = load, .fini = unload);

static int noop_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

static const char *port_of(const char *key) {
    const char *addr = broker_env(key);
    cr_assert_not_null(addr, "%s missing from the env file", key);
    return strrchr(addr, ':') + 1;
}

static void heroku_env(const char *url, const char *cert, const char *key, const char *ca) {
    setenv("KAFKA_URL", url, 1);
    cert ? setenv("KAFKA_CLIENT_CERT", cert, 1) : unsetenv("KAFKA_CLIENT_CERT");
    key ? setenv("KAFKA_CLIENT_CERT_KEY", key, 1) : unsetenv("KAFKA_CLIENT_CERT_KEY");
    ca ? setenv("KAFKA_TRUSTED_CERT", ca, 1) : unsetenv("KAFKA_TRUSTED_CERT");
}

static kaffe_conf_t *heroku_conf(const char *topic, const char *group) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "heroku_kafka_env", "true", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "topics", topic, err, sizeof err), KAFFE_OK);
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", MESSAGE_TIMEOUT_MS);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.message.timeout.ms", timeout, err, sizeof err),
                 KAFFE_OK);
    if (group) {
        cr_assert_eq(kaffe_conf_set(conf, "consumer_group", group, err, sizeof err), KAFFE_OK);
        cr_assert_eq(kaffe_conf_set(conf, "start_with_earliest_message", "true", err, sizeof err),
                     KAFFE_OK);
        kaffe_conf_set_message_handler(conf, noop_handler, NULL);
    }
    return conf;
}

/* Consumes until count messages arrived or timeout_ms passed. */
static int consume(const kaffe_conf_t *conf, const char *topic, int count, int timeout_ms) {
    broker_events_t events;
    broker_events_init(&events);
    char err[512];
    rd_kafka_t *rk = broker_handle_new(conf, RD_KAFKA_CONSUMER, &events, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    cr_assert_eq(rd_kafka_subscribe(rk, topics), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(topics);
    int got = 0;
    for (int64_t deadline = clock_now_ms() + timeout_ms; got < count;) {
        if (clock_now_ms() > deadline)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && !m->err)
            got++;
        if (m)
            rd_kafka_message_destroy(m);
    }
    cr_assert_eq(events.error_count, 0, "consumer error: %s", events.first_error_text);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got;
}

static void assert_no_secrets(const char *text) {
    /* Line 2 of each PEM file is base64 body: never in a message. */
    const char *pems[] = {ca_pem, client_cert_pem, client_key_pem};
    for (size_t i = 0; i < 3; i++) {
        const char *nl = strchr(pems[i], '\n');
        char line[65] = "";
        sscanf(nl + 1, "%64s", line);
        cr_assert_null(strstr(text, line), "PEM text in a message: %s", text);
    }
}

/* Produces one message through conf and expects a failure: an error callback
 * within ERROR_BOUND_MS, and the message failed (not hung) once
 * message.timeout.ms passed. Returns the first error, for the caller's checks. */
static rd_kafka_resp_err_t expect_connection_failure(const kaffe_conf_t *conf, char *text,
                                                     size_t text_size) {
    broker_events_t events;
    broker_events_init(&events);
    char err[512];
    rd_kafka_t *rk = broker_handle_new(conf, RD_KAFKA_PRODUCER, &events, err, sizeof err);
    cr_assert_not_null(rk, "the configuration itself was refused: %s", err);
    int64_t start = clock_now_ms();
    cr_assert_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("tls-never-created"),
                                   RD_KAFKA_V_VALUE("v", 1), RD_KAFKA_V_END),
                 RD_KAFKA_RESP_ERR_NO_ERROR);
    cr_assert(broker_wait_for_error(rk, &events, ERROR_BOUND_MS), "no error reported within %d ms",
              ERROR_BOUND_MS);
    int64_t error_ms = clock_now_ms() - start;
    rd_kafka_flush(rk, MESSAGE_TIMEOUT_MS + 5000);
    int64_t failed_ms = clock_now_ms() - start;
    cr_assert_eq(rd_kafka_outq_len(rk), 0, "the message is still queued after %lld ms",
                 (long long)failed_ms);
    cr_assert_eq(events.delivered, 0, "a message was delivered");
    cr_assert_eq(events.delivery_failed, 1);
    cr_log_info("error after %lld ms, message failed after %lld ms: %s", (long long)error_ms,
                (long long)failed_ms, events.first_error_text);
    /* Every error and warning reported: where the cause shows differs between
     * librdkafka versions (2.12 reports only _ALL_BROKERS_DOWN to the error
     * callback for a plaintext client on a TLS port, and the cause in an
     * info-level log line). */
    pthread_mutex_lock(&events.lock);
    snprintf(text, text_size, "%s | log: %s", events.error_texts, events.log_texts);
    pthread_mutex_unlock(&events.lock);
    rd_kafka_destroy(rk);
    return events.first_error;
}

Test(tls, heroku_mode_produces_and_consumes_with_mutual_tls) {
    char url[128], topic[128], group[160], err[512];
    snprintf(url, sizeof url, "kafka+ssl://127.0.0.1:%s", port_of("KAFFE_BROKER_SSL"));
    heroku_env(url, client_cert_pem, client_key_pem, ca_pem);
    broker_unique_topic(topic, sizeof topic, "heroku");
    snprintf(group, sizeof group, "%s-group", topic);
    cr_assert_eq(broker_create_topic(topic, 2, err, sizeof err), 0, "%s", err);

    kaffe_conf_t *producer_conf = heroku_conf(topic, NULL);
    /* Hostname verification is on: the broker's certificate names 127.0.0.1. */
    rd_kafka_conf_t *check = conf_to_rdkafka(producer_conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(check, "%s", err);
    char v[64];
    size_t n = sizeof v;
    rd_kafka_conf_get(check, "ssl.endpoint.identification.algorithm", v, &n);
    cr_assert_str_eq(v, "https");
    rd_kafka_conf_destroy(check);

    broker_events_t events;
    broker_events_init(&events);
    rd_kafka_t *rk = broker_handle_new(producer_conf, RD_KAFKA_PRODUCER, &events, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    cr_assert_eq(broker_produce(rk, &events, topic, 50, 20000), 50, "first error: %s",
                 events.first_error_text);
    cr_assert_eq(events.error_count, 0, "%s", events.first_error_text);
    rd_kafka_destroy(rk);
    kaffe_conf_destroy(producer_conf);

    kaffe_conf_t *consumer_conf = heroku_conf(topic, group);
    cr_assert_eq(consume(consumer_conf, topic, 50, 30000), 50);
    kaffe_conf_destroy(consumer_conf);
}

Test(tls, heroku_mode_with_the_wrong_ca_fails_with_a_certificate_error) {
    char url[128], text[4200];
    snprintf(url, sizeof url, "kafka+ssl://127.0.0.1:%s", port_of("KAFFE_BROKER_SSL"));
    char *wrong_ca = broker_read_file(broker_env("KAFFE_BROKER_WRONG_CA"));
    heroku_env(url, client_cert_pem, client_key_pem, wrong_ca);
    kaffe_conf_t *conf = heroku_conf("t", NULL);
    rd_kafka_resp_err_t err = expect_connection_failure(conf, text, sizeof text);
    cr_assert_eq(err, RD_KAFKA_RESP_ERR__SSL, "got %s", text);
    cr_assert(strstr(text, "certificate verify failed"), "got: %s", text);
    assert_no_secrets(text);
    kaffe_conf_destroy(conf);
    free(wrong_ca);
}

Test(tls, heroku_mode_with_a_wrong_client_key_fails_before_connecting) {
    char url[128], err[512];
    snprintf(url, sizeof url, "kafka+ssl://127.0.0.1:%s", port_of("KAFFE_BROKER_SSL"));
    char *wrong_key = broker_read_file(broker_env("KAFFE_BROKER_WRONG_CLIENT_KEY"));
    heroku_env(url, client_cert_pem, wrong_key, ca_pem);
    kaffe_conf_t *conf = heroku_conf("t", NULL);
    rd_kafka_conf_t *rd = NULL;
    cr_assert_eq(conf_build_rdkafka(conf, CONF_ROLE_PRODUCER, &rd, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert_null(rd);
    cr_assert(strstr(err, "KAFKA_CLIENT_CERT_KEY: the private key does not belong to the "
                          "certificate in KAFKA_CLIENT_CERT"),
              "got: %s", err);
    assert_no_secrets(err);
    char body[65] = "";
    sscanf(strchr(wrong_key, '\n') + 1, "%64s", body);
    cr_assert_null(strstr(err, body), "the key leaked: %s", err);
    kaffe_conf_destroy(conf);
    free(wrong_key);
}

Test(tls, a_client_certificate_from_another_ca_is_refused_by_the_broker) {
    char url[128], text[4200];
    snprintf(url, sizeof url, "kafka+ssl://127.0.0.1:%s", port_of("KAFFE_BROKER_SSL"));
    char *cert = broker_read_file(broker_env("KAFFE_BROKER_ROGUE_CLIENT_CERT"));
    char *key = broker_read_file(broker_env("KAFFE_BROKER_ROGUE_CLIENT_KEY"));
    heroku_env(url, cert, key, ca_pem);
    kaffe_conf_t *conf = heroku_conf("t", NULL);
    rd_kafka_resp_err_t err = expect_connection_failure(conf, text, sizeof text);
    cr_assert(err == RD_KAFKA_RESP_ERR__SSL || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                  err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
              "got %s", text);
    assert_no_secrets(text);
    kaffe_conf_destroy(conf);
    free(cert);
    free(key);
}

Test(tls, a_plaintext_url_against_the_tls_port_fails_clearly) {
    char url[128], text[4200];
    snprintf(url, sizeof url, "kafka://127.0.0.1:%s", port_of("KAFFE_BROKER_SSL"));
    heroku_env(url, NULL, NULL, NULL);
    kaffe_conf_t *conf = heroku_conf("t", NULL);
    rd_kafka_resp_err_t err = expect_connection_failure(conf, text, sizeof text);
    cr_assert(err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
              "got %s", text);
    /* librdkafka names the likely cause. */
    cr_assert(strstr(text, "security.protocol") || strstr(text, "Disconnected"), "got: %s", text);
    kaffe_conf_destroy(conf);
}

static kaffe_conf_t *ssl_conf(const char *ca, const char *cert, const char *key) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", broker_env("KAFFE_BROKER_SSL"), err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "topics", "t", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "ssl", "true", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "ssl_ca", ca, err, sizeof err), KAFFE_OK);
    if (cert) {
        cr_assert_eq(kaffe_conf_set(conf, "ssl_cert", cert, err, sizeof err), KAFFE_OK);
        cr_assert_eq(kaffe_conf_set(conf, "ssl_key", key, err, sizeof err), KAFFE_OK);
    }
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", MESSAGE_TIMEOUT_MS);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.message.timeout.ms", timeout, err, sizeof err),
                 KAFFE_OK);
    return conf;
}

Test(tls, ssl_with_pem_files_produces) {
    char topic[128], err[512];
    broker_unique_topic(topic, sizeof topic, "ssl-files");
    cr_assert_eq(broker_create_topic(topic, 1, err, sizeof err), 0, "%s", err);
    kaffe_conf_t *conf =
        ssl_conf(broker_env("KAFFE_BROKER_CA"), broker_env("KAFFE_BROKER_CLIENT_CERT"),
                 broker_env("KAFFE_BROKER_CLIENT_KEY"));
    broker_events_t events;
    broker_events_init(&events);
    rd_kafka_t *rk = broker_handle_new(conf, RD_KAFKA_PRODUCER, &events, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    cr_assert_eq(broker_produce(rk, &events, topic, 10, 20000), 10, "%s", events.first_error_text);
    rd_kafka_destroy(rk);
    kaffe_conf_destroy(conf);
}

Test(tls, no_client_certificate_is_refused_where_the_broker_requires_one) {
    char text[4200];
    kaffe_conf_t *conf = ssl_conf(broker_env("KAFFE_BROKER_CA"), NULL, NULL);
    rd_kafka_resp_err_t err = expect_connection_failure(conf, text, sizeof text);
    cr_assert(err == RD_KAFKA_RESP_ERR__SSL || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                  err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
              "got %s", text);
    kaffe_conf_destroy(conf);
}
