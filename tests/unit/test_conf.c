/* Configuration: the property table, validation and the librdkafka mapping. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kaffe/kaffe.h>

#include "conf/conf.h"

static int noop_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

Test(conf, defaults_are_readable) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char buf[64];
    size_t size = sizeof buf;
    cr_assert_eq(kaffe_conf_get(conf, "ordering", buf, &size), KAFFE_OK);
    cr_assert_str_eq(buf, "partition");
    cr_assert_eq(conf_bool(conf, "async_message_ack"), false);
    cr_assert_eq(conf_int(conf, "workers"), 8);
    kaffe_conf_destroy(conf);
}

Test(conf, set_values_are_read_back) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "workers", "16", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "ordering", "key", err, sizeof err), KAFFE_OK);
    cr_assert_eq(conf_int(conf, "workers"), 16);
    cr_assert_str_eq(conf_str(conf, "ordering"), "key");
    kaffe_conf_destroy(conf);
}

Test(conf, unknown_name_is_an_error_with_a_suggestion) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "consumer_grop", "g", err, sizeof err),
                 KAFFE_ERR_UNKNOWN_CONF);
    cr_assert(strstr(err, "did you mean consumer_group"), "got: %s", err);
    kaffe_conf_destroy(conf);
}

Test(conf, bad_values_are_errors_naming_the_property) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "workers", "0", err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "workers"), "got: %s", err);
    cr_assert_eq(kaffe_conf_set(conf, "workers", "8x", err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert_eq(kaffe_conf_set(conf, "ordering", "random", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert_eq(kaffe_conf_set(conf, "async_message_ack", "yes", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", "kafka", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", "kafka:99999", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    /* A failed set leaves the previous value. */
    cr_assert_eq(conf_int(conf, "workers"), 8);
    kaffe_conf_destroy(conf);
}

Test(conf, rdkafka_passthrough_is_validated_by_librdkafka) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.fetch.wait.max.ms", "100", err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.no.such.thing", "1", err, sizeof err),
                 KAFFE_ERR_UNKNOWN_CONF);
    cr_assert(strstr(err, "rdkafka.no.such.thing"), "got: %s", err);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.fetch.wait.max.ms", "abc", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    kaffe_conf_destroy(conf);
}

Test(conf, file_is_loaded_with_comments_and_errors_carry_the_line) {
    char path[] = "/tmp/kaffe-conf-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("# a consumer\nendpoints = 127.0.0.1:9092\n\nworkers=3\nordering = nope\n", f);
    fclose(f);
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    cr_assert_eq(kaffe_conf_load(conf, path, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    char want[600];
    snprintf(want, sizeof want, "%s:5: ordering", path);
    cr_assert(strstr(err, want), "got: %s", err);
    cr_assert_eq(conf_int(conf, "workers"), 3);
    unlink(path);
    kaffe_conf_destroy(conf);
}

Test(conf, consumer_needs_group_topics_endpoints_and_handler) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(conf_validate(conf, CONF_ROLE_CONSUMER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "endpoints"), "got: %s", err);
    kaffe_conf_set(conf, "endpoints", "127.0.0.1:9092", err, sizeof err);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_CONSUMER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "topics"), "got: %s", err);
    kaffe_conf_set(conf, "topics", "a, b", err, sizeof err);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_CONSUMER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "consumer_group"), "got: %s", err);
    kaffe_conf_set(conf, "consumer_group", "g", err, sizeof err);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_CONSUMER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "handler"), "got: %s", err);
    kaffe_conf_set_message_handler(conf, noop_handler, NULL);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_CONSUMER, err, sizeof err), KAFFE_OK, "%s", err);
    /* The producer needs no group or handler. */
    kaffe_conf_t *producer = kaffe_conf_new();
    kaffe_conf_set(producer, "endpoints", "127.0.0.1:9092", err, sizeof err);
    kaffe_conf_set(producer, "topics", "a", err, sizeof err);
    cr_assert_eq(conf_validate(producer, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_OK, "%s", err);
    kaffe_conf_destroy(producer);
    kaffe_conf_destroy(conf);
}

Test(conf, topics_list_is_split_and_trimmed) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    kaffe_conf_set(conf, "topics", " orders , ,payments", err, sizeof err);
    char **topics;
    cr_assert_eq(conf_list(conf, "topics", &topics), 2);
    cr_assert_str_eq(topics[0], "orders");
    cr_assert_str_eq(topics[1], "payments");
    cr_assert_null(topics[2]);
    conf_list_free(topics);
    kaffe_conf_destroy(conf);
}

Test(conf, consumer_rdkafka_conf_never_auto_commits) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    kaffe_conf_set(conf, "endpoints", "127.0.0.1:9092", err, sizeof err);
    kaffe_conf_set(conf, "topics", "t", err, sizeof err);
    kaffe_conf_set(conf, "consumer_group", "g", err, sizeof err);
    kaffe_conf_set(conf, "start_with_earliest_message", "true", err, sizeof err);
    kaffe_conf_set(conf, "rdkafka.enable.auto.commit", "true", err, sizeof err);
    kaffe_conf_set_message_handler(conf, noop_handler, NULL);
    rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    char v[64];
    size_t n = sizeof v;
    rd_kafka_conf_get(rd, "enable.auto.commit", v, &n);
    cr_assert_str_eq(v, "false");
    n = sizeof v;
    rd_kafka_conf_get(rd, "auto.offset.reset", v, &n);
    cr_assert(strcmp(v, "earliest") == 0 || strcmp(v, "smallest") == 0, "got %s", v);
    n = sizeof v;
    rd_kafka_conf_get(rd, "group.id", v, &n);
    cr_assert_str_eq(v, "g");
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);
}
