/* The real broker with SASL: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 with the
 * right password succeed (over SASL_PLAINTEXT, and over SASL_SSL with TLS);
 * a wrong password fails with an authentication error surfaced through
 * librdkafka's error callback, within a bound, and without the password in
 * it.
 *
 * The documented limit: a librdkafka before 2.6.1 against Kafka 4 sends a
 * SCRAM message Kafka 4 refuses (rdkafka_compat.h,
 * RDKAFKA_BUG_SCRAM_NONCE_SENT_TWICE). There the right password fails like a
 * wrong one, and this tier shows it (PLAIN still works). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "support/broker_env.h"
#include "common/clock.h"
#include "common/rdkafka_compat.h"

#define ERROR_BOUND_MS 20000

static void load(void) {
    char err[512];
    cr_assert(broker_env_load(err, sizeof err), "%s", err);
}

TestSuite(sasl, .init = load);

static int noop_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

/* A kaffe configuration for the SASL_PLAINTEXT listener (or SASL_SSL with
 * tls), Kaffe-style names where Kaffe had them (sasl_login). */
static kaffe_conf_t *sasl_conf(const char *mechanism, const char *password, bool tls,
                               const char *topic, const char *group) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    const char *endpoint =
        broker_env(tls ? "KAFFE_BROKER_SASL_SSL" : "KAFFE_BROKER_SASL_PLAINTEXT");
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", endpoint, err, sizeof err), KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "topics", topic, err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "sasl_mechanism", mechanism, err, sizeof err), KAFFE_OK);
    cr_assert_eq(
        kaffe_conf_set(conf, "sasl_login", broker_env("KAFFE_BROKER_SASL_USER"), err, sizeof err),
        KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "sasl_password", password, err, sizeof err), KAFFE_OK);
    if (tls) {
        cr_assert_eq(kaffe_conf_set(conf, "ssl", "true", err, sizeof err), KAFFE_OK);
        cr_assert_eq(kaffe_conf_set(conf, "ssl_ca", broker_env("KAFFE_BROKER_CA"), err, sizeof err),
                     KAFFE_OK);
    }
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.message.timeout.ms", "2000", err, sizeof err),
                 KAFFE_OK);
    if (group) {
        cr_assert_eq(kaffe_conf_set(conf, "consumer_group", group, err, sizeof err), KAFFE_OK);
        cr_assert_eq(kaffe_conf_set(conf, "start_with_earliest_message", "true", err, sizeof err),
                     KAFFE_OK);
        kaffe_conf_set_message_handler(conf, noop_handler, NULL);
    }
    return conf;
}

static void expect_authentication_failure_with(const char *mechanism, const char *password,
                                               bool tls);

/* Whether SCRAM with the right password works here (see the top). */
static bool scram_works(void) {
    int kafka = broker_kafka_version();
    bool works = !(rdkafka_scram_nonce_sent_twice() && kafka >= 400);
    if (!works)
        cr_log_info("librdkafka %s against Kafka %s: SCRAM is refused (%s)", rd_kafka_version_str(),
                    broker_env("KAFFE_BROKER_KAFKA_VERSION"),
                    rdkafka_bug_str(RDKAFKA_BUG_SCRAM_NONCE_SENT_TWICE));
    return works;
}

static void produce_and_consume(const char *mechanism, bool tls) {
    if (strncmp(mechanism, "scram", 5) == 0 && !scram_works()) {
        expect_authentication_failure_with(mechanism, broker_env("KAFFE_BROKER_SASL_PASSWORD"),
                                           tls);
        return;
    }
    char topic[128], group[160], err[512];
    broker_unique_topic(topic, sizeof topic, mechanism);
    snprintf(group, sizeof group, "%s-group", topic);
    cr_assert_eq(broker_create_topic(topic, 1, err, sizeof err), 0, "%s", err);
    const char *password = broker_env("KAFFE_BROKER_SASL_PASSWORD");

    kaffe_conf_t *conf = sasl_conf(mechanism, password, tls, topic, NULL);
    broker_events_t events;
    broker_events_init(&events);
    rd_kafka_t *rk = broker_handle_new(conf, RD_KAFKA_PRODUCER, &events, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    cr_assert_eq(broker_produce(rk, &events, topic, 10, 20000), 10, "%s: %s", mechanism,
                 events.first_error_text);
    cr_assert_eq(events.error_count, 0, "%s", events.first_error_text);
    rd_kafka_destroy(rk);
    kaffe_conf_destroy(conf);

    conf = sasl_conf(mechanism, password, tls, topic, group);
    broker_events_init(&events);
    rk = broker_handle_new(conf, RD_KAFKA_CONSUMER, &events, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    cr_assert_eq(rd_kafka_subscribe(rk, topics), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(topics);
    int got = 0;
    for (int64_t deadline = clock_now_ms() + 30000; got < 10;) {
        cr_assert_lt(clock_now_ms(), deadline, "%s: consumed %d of 10", mechanism, got);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && !m->err)
            got++;
        if (m)
            rd_kafka_message_destroy(m);
    }
    cr_assert_eq(events.error_count, 0, "%s", events.first_error_text);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    kaffe_conf_destroy(conf);
}

Test(sasl, plain_with_the_right_password_produces_and_consumes) {
    produce_and_consume("plain", false);
}

Test(sasl, scram_sha_256_with_the_right_password_produces_and_consumes) {
    produce_and_consume("scram_sha_256", false);
}

Test(sasl, scram_sha_512_over_tls_produces_and_consumes) {
    produce_and_consume("scram_sha_512", true);
}

static void expect_authentication_failure(const char *mechanism, bool tls) {
    expect_authentication_failure_with(mechanism, "not-the-Passw0rd", tls);
}

static void expect_authentication_failure_with(const char *mechanism, const char *bad, bool tls) {
    kaffe_conf_t *conf = sasl_conf(mechanism, bad, tls, "t", NULL);
    broker_events_t events;
    broker_events_init(&events);
    char err[512];
    rd_kafka_t *rk = broker_handle_new(conf, RD_KAFKA_PRODUCER, &events, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    int64_t start = clock_now_ms();
    cr_assert_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("sasl-never-created"),
                                   RD_KAFKA_V_VALUE("v", 1), RD_KAFKA_V_END),
                 RD_KAFKA_RESP_ERR_NO_ERROR);
    cr_assert(broker_wait_for_error(rk, &events, ERROR_BOUND_MS), "%s: no error within %d ms",
              mechanism, ERROR_BOUND_MS);
    cr_log_info("%s: error after %lld ms: %s", mechanism, (long long)(clock_now_ms() - start),
                events.first_error_text);
    cr_assert_eq(events.first_error, RD_KAFKA_RESP_ERR__AUTHENTICATION, "%s: got %s", mechanism,
                 events.first_error_text);
    cr_assert(strstr(events.first_error_text, "Authentication failed"), "got: %s",
              events.first_error_text);
    cr_assert_null(strstr(events.first_error_text, bad), "the password leaked: %s",
                   events.first_error_text);
    rd_kafka_flush(rk, 2000 + 5000);
    cr_assert_eq(rd_kafka_outq_len(rk), 0, "the message hangs in the queue");
    cr_assert_eq(events.delivered, 0);
    rd_kafka_destroy(rk);
    kaffe_conf_destroy(conf);
}

Test(sasl, a_wrong_password_fails_with_an_authentication_error) {
    expect_authentication_failure("plain", false);
    expect_authentication_failure("scram_sha_256", false);
    expect_authentication_failure("scram_sha_512", true);
}
