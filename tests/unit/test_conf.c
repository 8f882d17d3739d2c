/* Configuration: the property table, validation and the librdkafka mapping. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kaffe/kaffe.h>

#include "conf/conf.h"
#include "conf/internal.h"
#include "conf/properties.h"

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

Test(conf, enum_values_read_back_as_their_position_in_the_choices) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(conf_choice(conf, "on_error"), 0); /* default: stop */
    const char *on_error[] = {"stop", "retry", "dead_letter", "pause"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(kaffe_conf_set(conf, "on_error", on_error[i], err, sizeof err), KAFFE_OK);
        cr_assert_eq(conf_choice(conf, "on_error"), i, "on_error=%s", on_error[i]);
    }
    cr_assert_eq(kaffe_conf_set(conf, "partition_strategy", "murmur2", err, sizeof err), KAFFE_OK);
    cr_assert_eq(conf_choice(conf, "partition_strategy"), 3);
    cr_assert_eq(kaffe_conf_set(conf, "ordering", "unordered", err, sizeof err), KAFFE_OK);
    cr_assert_eq(conf_choice(conf, "ordering"), 2);
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

/* Misspelled librdkafka names get a suggestion from librdkafka's own property
 * table (global and topic properties); a name far from every property gets
 * none. */
Test(conf, unknown_rdkafka_name_is_an_error_with_a_suggestion) {
    static const struct {
        const char *name, *hint;
    } cases[] = {{"rdkafka.bootstrap.server", "did you mean rdkafka.bootstrap.servers?"},
                 {"rdkafka.sesion.timeout.ms", "did you mean rdkafka.session.timeout.ms?"},
                 {"rdkafka.enable.idempotance", "did you mean rdkafka.enable.idempotence?"},
                 {"rdkafka.request.required.ack", "did you mean rdkafka.request.required.acks?"}};
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_expect_eq(kaffe_conf_set(conf, cases[i].name, "1", err, sizeof err),
                     KAFFE_ERR_UNKNOWN_CONF, "%s", cases[i].name);
        cr_expect(strstr(err, cases[i].hint), "%s: got: %s", cases[i].name, err);
    }
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.zzzzzzzzzzzzzz", "1", err, sizeof err),
                 KAFFE_ERR_UNKNOWN_CONF);
    cr_assert_str_eq(err, "rdkafka.zzzzzzzzzzzzzz: unknown librdkafka property");
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

static kaffe_conf_t *consumer_conf(void) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", "127.0.0.1:9092", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "topics", "t", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "consumer_group", "g", err, sizeof err), KAFFE_OK);
    kaffe_conf_set_message_handler(conf, noop_handler, NULL);
    return conf;
}

static kaffe_conf_t *producer_conf(void) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", "127.0.0.1:9092", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "topics", "t", err, sizeof err), KAFFE_OK);
    return conf;
}

/* The librdkafka value of name in rd (static buffer: one use at a time). */
static const char *rd_get(rd_kafka_conf_t *rd, const char *name) {
    static char v[512];
    size_t n = sizeof v;
    if (rd_kafka_conf_get(rd, name, v, &n) != RD_KAFKA_CONF_OK)
        return "(unset)";
    return v;
}

Test(conf, consumer_rdkafka_conf_never_auto_commits) {
    kaffe_conf_t *conf = consumer_conf();
    char err[256];
    kaffe_conf_set(conf, "start_with_earliest_message", "true", err, sizeof err);
    rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "enable.auto.commit"), "false");
    cr_assert_str_eq(rd_get(rd, "enable.auto.offset.store"), "false");
    const char *reset = rd_get(rd, "auto.offset.reset");
    cr_assert(strcmp(reset, "earliest") == 0 || strcmp(reset, "smallest") == 0, "got %s", reset);
    cr_assert_str_eq(rd_get(rd, "group.id"), "g");
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);
}

Test(conf, enabling_auto_commit_through_rdkafka_is_an_error_not_ignored) {
    kaffe_conf_t *conf = consumer_conf();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.enable.auto.commit", "true", err, sizeof err),
                 KAFFE_OK);
    rd_kafka_conf_t *rd = NULL;
    cr_assert_eq(conf_build_rdkafka(conf, CONF_ROLE_CONSUMER, &rd, err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert_null(rd);
    cr_assert(strstr(err, "rdkafka.enable.auto.commit"), "got: %s", err);
    kaffe_conf_destroy(conf);
}

/* A valid value other than the default, for any row. */
static const char *other_value(const property_t *p, char *buf, size_t size) {
    switch (p->type) {
        case PROP_BOOL:
            return strcmp(p->default_value, "true") == 0 ? "false" : "true";
        case PROP_INT:
            snprintf(buf, size, "%lld",
                     (long long)(property_parse_int(p->default_value) == p->max ? p->min : p->max));
            return buf;
        case PROP_ENUM: {
            const char *bar = strchr(p->choices, '|');
            size_t first = (size_t)(bar - p->choices);
            if (strncmp(p->choices, p->default_value, first) == 0 &&
                p->default_value[first] == '\0')
                snprintf(buf, size, "%.*s", (int)strcspn(bar + 1, "|"), bar + 1);
            else
                snprintf(buf, size, "%.*s", (int)first, p->choices);
            return buf;
        }
        case PROP_LIST:
            return strcmp(p->name, "endpoints") == 0 ? "h1:1,h2:2" : "a,b";
        case PROP_STRING:
            return "some-value";
    }
    return NULL;
}

Test(conf, every_table_entry_round_trips_through_set_and_get) {
    cr_assert_gt(property_count(), 30);
    for (size_t i = 0; i < property_count(); i++) {
        const property_t *p = property_at(i);
        kaffe_conf_t *conf = kaffe_conf_new();
        char buf[64], got[128], err[256];
        size_t size = sizeof got;
        /* Unset: the default, and not "set". */
        cr_assert_eq(kaffe_conf_get(conf, p->name, got, &size), KAFFE_OK, "%s", p->name);
        cr_assert_str_eq(got, p->default_value, "%s", p->name);
        cr_assert_not(conf_is_set(conf, p->name), "%s", p->name);
        cr_assert_eq(property_validate(p, p->default_value, err, sizeof err), KAFFE_OK,
                     "%s: default %s invalid: %s", p->name, p->default_value, err);
        const char *v = other_value(p, buf, sizeof buf);
        cr_assert_str_neq(v, p->default_value, "%s", p->name);
        cr_assert_eq(kaffe_conf_set(conf, p->name, v, err, sizeof err), KAFFE_OK, "%s=%s: %s",
                     p->name, v, err);
        size = sizeof got;
        cr_assert_eq(kaffe_conf_get(conf, p->name, got, &size), KAFFE_OK);
        cr_assert_str_eq(got, v, "%s", p->name);
        cr_assert(conf_is_set(conf, p->name), "%s", p->name);
        cr_assert(*p->description, "%s has no description", p->name);
        /* A copy holds the same. */
        kaffe_conf_t *copy = kaffe_conf_dup(conf);
        cr_assert_str_eq(conf_str(copy, p->name), v, "%s", p->name);
        kaffe_conf_destroy(copy);
        kaffe_conf_destroy(conf);
    }
}

Test(conf, each_kind_of_bad_input_gives_its_error) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    struct {
        const char *name, *value;
        kaffe_status_t status;
        const char *message;
    } cases[] = {
        {"max_bytes", "0", KAFFE_ERR_INVALID_CONF, "max_bytes: 0 is out of range"},
        {"max_wait_time", "soon", KAFFE_ERR_INVALID_CONF, "max_wait_time: expected an integer"},
        {"ssl", "on", KAFFE_ERR_INVALID_CONF, "ssl: expected true or false"},
        {"sasl_mechanism", "gssapi", KAFFE_ERR_INVALID_CONF, "sasl_mechanism: expected one of"},
        {"compression", "brotli", KAFFE_ERR_INVALID_CONF, "compression: expected one of"},
        {"required_acks", "2", KAFFE_ERR_INVALID_CONF, "required_acks: 2 is out of range"},
        {"endpoints", "kafka:0", KAFFE_ERR_INVALID_CONF, "endpoints:"},
        {"sasl_mechanizm", "plain", KAFFE_ERR_UNKNOWN_CONF, "did you mean sasl_mechanism"},
        {"max_byte", "1", KAFFE_ERR_UNKNOWN_CONF, "did you mean max_bytes"},
        {"rdkafka.", "1", KAFFE_ERR_UNKNOWN_CONF, "rdkafka."},
        {"rdkafka.fetch.min.bytes", "0", KAFFE_ERR_INVALID_CONF, "rdkafka.fetch.min.bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        cr_assert_eq(kaffe_conf_set(conf, cases[i].name, cases[i].value, err, sizeof err),
                     cases[i].status, "%s=%s", cases[i].name, cases[i].value);
        cr_assert(strstr(err, cases[i].message), "%s=%s: got \"%s\"", cases[i].name, cases[i].value,
                  err);
    }
    kaffe_conf_destroy(conf);
}

/* max_wait_time has one default, 100 ms: what kaffe_conf_get() says, what
 * CONFIGURATION.md says (generated), and what librdkafka gets when nothing is
 * set; rdkafka.fetch.wait.max.ms overrides it, 500 included. */
Test(conf, max_wait_time_default_is_the_one_librdkafka_gets) {
    kaffe_conf_t *conf = consumer_conf();
    char err[256], value[32];
    size_t size = sizeof value;
    cr_assert_eq(kaffe_conf_get(conf, "max_wait_time", value, &size), KAFFE_OK);
    cr_assert_str_eq(value, "100");
    rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "fetch.wait.max.ms"), "100");
    rd_kafka_conf_destroy(rd);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.fetch.wait.max.ms", "500", err, sizeof err),
                 KAFFE_OK, "%s", err);
    rd = conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "fetch.wait.max.ms"), "500");
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);
}

Test(conf, kaffe_names_reach_librdkafka_translated) {
    kaffe_conf_t *conf = consumer_conf();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "max_bytes", "500000", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "min_bytes", "0", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "max_wait_time", "250", err, sizeof err), KAFFE_OK);
    cr_assert_eq(
        kaffe_conf_set(conf, "offset_reset_policy", "reset_by_subscriber", err, sizeof err),
        KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "retry_backoff_ms", "300", err, sizeof err), KAFFE_OK);
    /* Producer-only settings do not reach a consumer's configuration. */
    cr_assert_eq(kaffe_conf_set(conf, "compression", "gzip", err, sizeof err), KAFFE_OK);
    rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "max.partition.fetch.bytes"), "500000");
    cr_assert_str_eq(rd_get(rd, "fetch.min.bytes"), "1");
    cr_assert_str_eq(rd_get(rd, "fetch.wait.max.ms"), "250");
    cr_assert_str_eq(rd_get(rd, "auto.offset.reset"), "error");
    cr_assert_str_eq(rd_get(rd, "retry.backoff.ms"), "300");
    cr_assert_str_eq(rd_get(rd, "compression.codec"), "none");
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);

    conf = producer_conf();
    rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "acks"), "-1", "the producer waits for all replicas by default");
    rd_kafka_conf_destroy(rd);
    cr_assert_eq(kaffe_conf_set(conf, "required_acks", "1", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "ack_timeout", "1000", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "max_retries", "3", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "max_batch_size", "65536", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "compression", "no_compression", err, sizeof err), KAFFE_OK);
    rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "acks"), "1");
    cr_assert_str_eq(rd_get(rd, "request.timeout.ms"), "1000");
    cr_assert_str_eq(rd_get(rd, "message.send.max.retries"), "3");
    cr_assert_str_eq(rd_get(rd, "batch.size"), "65536");
    cr_assert_str_eq(rd_get(rd, "compression.codec"), "none");
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);
}

Test(conf, mapped_defaults_are_librdkafkas_defaults) {
    /* An unset mapped property leaves librdkafka's default (unless the row is
     * default_applied), so the table's default (what the docs show and
     * conf_int returns) must be that. */
    size_t mapped = 0;
    for (size_t i = 0; i < property_count(); i++) {
        const property_t *p = property_at(i);
        if (!property_mapped_generically(p))
            continue;
        mapped++;
        /* A global property, or else a topic one (acks, auto.offset.reset). */
        rd_kafka_conf_t *rd = rd_kafka_conf_new();
        rd_kafka_topic_conf_t *topic = rd_kafka_topic_conf_new();
        char lib_default[256];
        size_t n = sizeof lib_default;
        rd_kafka_conf_res_t res = rd_kafka_conf_get(rd, p->rdkafka_name, lib_default, &n);
        if (res != RD_KAFKA_CONF_OK) {
            n = sizeof lib_default;
            res = rd_kafka_topic_conf_get(topic, p->rdkafka_name, lib_default, &n);
        }
        rd_kafka_topic_conf_destroy(topic);
        rd_kafka_conf_destroy(rd);
        cr_assert_eq(res, RD_KAFKA_CONF_OK, "%s: librdkafka has no %s", p->name, p->rdkafka_name);
        const char *ours = property_rdkafka_value(p, p->default_value);
        /* A default_applied row is sent even when unset: its default is
         * kaffe's own, and differs (else the flag would be pointless). */
        if (p->default_applied)
            cr_assert_not(conf_rdkafka_equal(p->rdkafka_name, ours, lib_default),
                          "%s: default_applied but the default is librdkafka's", p->name);
        else
            cr_assert(conf_rdkafka_equal(p->rdkafka_name, ours, lib_default),
                      "%s: table default %s (-> %s=%s) but librdkafka's is %s", p->name,
                      p->default_value, p->rdkafka_name, ours, lib_default);
    }
    cr_assert_geq(mapped, 10);
}

Test(conf, alias_and_its_property_must_agree) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "offset_commit_interval_seconds", "7", err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(conf_int(conf, "commit_interval_ms"), 7000);
    cr_assert(conf_is_set(conf, "commit_interval_ms"));
    cr_assert_eq(kaffe_conf_set(conf, "commit_interval_ms", "7000", err, sizeof err), KAFFE_OK,
                 "the same interval twice is fine: %s", err);
    cr_assert_eq(kaffe_conf_set(conf, "commit_interval_ms", "8000", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "commit_interval_ms") && strstr(err, "offset_commit_interval_seconds"),
              "got: %s", err);
    cr_assert_eq(conf_int(conf, "commit_interval_ms"), 7000);
    kaffe_conf_destroy(conf);

    /* The other order. */
    conf = kaffe_conf_new();
    cr_assert_eq(kaffe_conf_set(conf, "commit_interval_ms", "2000", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "offset_commit_interval_seconds", "3", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "offset_commit_interval_seconds"), "got: %s", err);
    cr_assert_eq(kaffe_conf_set(conf, "offset_commit_interval_seconds", "2", err, sizeof err),
                 KAFFE_OK, "%s", err);
    kaffe_conf_destroy(conf);

    conf = kaffe_conf_new();
    cr_assert_eq(kaffe_conf_set(conf, "sasl_login", "alice", err, sizeof err), KAFFE_OK);
    cr_assert_str_eq(conf_str(conf, "sasl_username"), "alice");
    cr_assert_eq(kaffe_conf_set(conf, "sasl_username", "bob", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    kaffe_conf_destroy(conf);
}

Test(conf, kaffe_name_and_rdkafka_passthrough_must_agree) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "max_wait_time", "100", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.fetch.wait.max.ms", "100", err, sizeof err),
                 KAFFE_OK, "the same value is fine: %s", err);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.fetch.wait.max.ms", "200", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "max_wait_time"), "got: %s", err);
    cr_assert_eq(kaffe_conf_set(conf, "max_wait_time", "300", err, sizeof err),
                 KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "rdkafka.fetch.wait.max.ms"), "got: %s", err);
    /* librdkafka's synonyms are the same value. */
    cr_assert_eq(kaffe_conf_set(conf, "offset_reset_policy", "reset_to_earliest", err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.auto.offset.reset", "smallest", err, sizeof err),
                 KAFFE_OK, "%s", err);
    kaffe_conf_destroy(conf);

    /* Settings handled in code conflict at build time. */
    conf = consumer_conf();
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.group.id", "other", err, sizeof err), KAFFE_OK);
    cr_assert_null(conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, err, sizeof err));
    cr_assert(strstr(err, "rdkafka.group.id") && strstr(err, "consumer_group"), "got: %s", err);
    kaffe_conf_destroy(conf);
}

Test(conf, mutually_exclusive_or_incomplete_settings_are_errors) {
    struct {
        const char *settings[4][2];
        const char *message;
    } cases[] = {
        {{{"heroku_kafka_env", "true"}}, "endpoints and heroku_kafka_env"},
        {{{"ssl_ca", "/tmp/ca.pem"}}, "ssl_ca: set, but TLS is off"},
        {{{"ssl_verify_hostname", "false"}}, "ssl_verify_hostname: set, but TLS is off"},
        {{{"ssl", "true"}, {"ssl_cert", "/tmp/c.pem"}}, "ssl_cert: set without ssl_key"},
        {{{"ssl", "true"}, {"ssl_key", "/tmp/k.pem"}}, "ssl_key: set without ssl_cert"},
        {{{"sasl_mechanism", "plain"}}, "needs sasl_username"},
        {{{"sasl_mechanism", "scram_sha_256"}, {"sasl_login", "alice"}}, "needs sasl_password"},
        {{{"sasl_username", "alice"}, {"sasl_password", "pw"}}, "sasl_mechanism=none"},
        {{{"start_with_earliest_message", "true"}, {"offset_reset_policy", "reset_to_latest"}},
         "conflicts with start_with_earliest_message"},
        {{{"start_with_earliest_message", "false"}, {"offset_reset_policy", "reset_by_subscriber"}},
         "conflicts with start_with_earliest_message"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kaffe_conf_t *conf = consumer_conf();
        char err[400];
        for (size_t j = 0; j < 4 && cases[i].settings[j][0]; j++)
            cr_assert_eq(kaffe_conf_set(conf, cases[i].settings[j][0], cases[i].settings[j][1], err,
                                        sizeof err),
                         KAFFE_OK, "%s", err);
        cr_assert_eq(conf_validate(conf, CONF_ROLE_CONSUMER, err, sizeof err),
                     KAFFE_ERR_INVALID_CONF, "case %zu (%s) was accepted", i, cases[i].message);
        cr_assert(strstr(err, cases[i].message), "case %zu: got \"%s\"", i, err);
        cr_assert_null(conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, err, sizeof err));
        kaffe_conf_destroy(conf);
    }
}

Test(conf, sasl_settings_derive_the_security_protocol) {
    kaffe_conf_t *conf = producer_conf();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "sasl_mechanism", "scram_sha_512", err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "sasl_login", "alice", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "sasl_password", "alice-pw", err, sizeof err), KAFFE_OK);
    rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "security.protocol"), "sasl_plaintext");
    cr_assert_str_eq(rd_get(rd, "sasl.mechanisms"), "SCRAM-SHA-512");
    cr_assert_str_eq(rd_get(rd, "sasl.username"), "alice");
    cr_assert_str_eq(rd_get(rd, "sasl.password"), "alice-pw");
    rd_kafka_conf_destroy(rd);
    /* A passthrough that contradicts it is an error. */
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.security.protocol", "plaintext", err, sizeof err),
                 KAFFE_OK);
    cr_assert_null(conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err));
    cr_assert(strstr(err, "rdkafka.security.protocol"), "got: %s", err);
    kaffe_conf_destroy(conf);

    /* No kaffe security setting: rdkafka.security.protocol is free. */
    conf = producer_conf();
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.security.protocol", "ssl", err, sizeof err),
                 KAFFE_OK);
    rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "security.protocol"), "ssl");
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);
}

Test(conf, passwords_never_appear_in_error_messages) {
    const char *secret = "S3cr3t-P4ssw0rd";
    char err[512];
    kaffe_conf_t *conf = producer_conf();
    cr_assert_eq(kaffe_conf_set(conf, "sasl_mechanism", "plain", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "sasl_username", "u", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "sasl_password", secret, err, sizeof err), KAFFE_OK);
    /* A conflicting passthrough: the error names both, shows neither value. */
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.sasl.password", "other-secret", err, sizeof err),
                 KAFFE_OK);
    cr_assert_null(conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err));
    cr_assert(strstr(err, "sasl_password"), "got: %s", err);
    cr_assert_null(strstr(err, secret), "secret leaked: %s", err);
    cr_assert_null(strstr(err, "other-secret"), "secret leaked: %s", err);
    kaffe_conf_destroy(conf);

    /* A bad value for a secret property is "(hidden)". */
    conf = producer_conf();
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.ssl.key.password", secret, err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "ssl", "true", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "ssl_key", "/nonexistent/key.pem", err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "ssl_cert", "/nonexistent/cert.pem", err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "ssl_key_password", secret, err, sizeof err), KAFFE_OK);
    cr_assert_null(conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err));
    cr_assert(strstr(err, "ssl_cert") && strstr(err, "/nonexistent/cert.pem"), "got: %s", err);
    cr_assert_null(strstr(err, secret), "secret leaked: %s", err);
    kaffe_conf_destroy(conf);

    /* Aliases of secrets. */
    conf = kaffe_conf_new();
    cr_assert_eq(kaffe_conf_set(conf, "sasl_password", secret, err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.sasl.password", "x", err, sizeof err), KAFFE_OK);
    cr_assert_null(strstr(err, secret));
    kaffe_conf_destroy(conf);
}

Test(conf, generated_docs_are_current) {
    char path[] = "/tmp/kaffe-docs-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w+");
    cr_assert_eq(conf_write_docs(f), 0);
    rewind(f);
    char committed_path[1024];
    snprintf(committed_path, sizeof committed_path, "%s/docs/CONFIGURATION.md", KAFFE_SOURCE_DIR);
    FILE *committed = fopen(committed_path, "r");
    cr_assert_not_null(committed, "%s is missing: run `ninja docs` and commit it", committed_path);
    unsigned line = 1;
    int a, b;
    do {
        a = fgetc(f);
        b = fgetc(committed);
        cr_assert_eq(a, b,
                     "%s is stale from line %u: run `ninja -C <build> docs` and commit the result",
                     committed_path, line);
        if (a == '\n')
            line++;
    } while (a != EOF);
    fclose(committed);
    fclose(f);
    unlink(path);
}

/* --- group_protocol (KIP-848) ------------------------------------------ */

/* librdkafka 2.12.0, where KIP-848's consumer protocol is generally
 * available: what this process runs decides which half of each test
 * applies. */
static bool rdkafka_has_kip848(void) {
    return rd_kafka_version() >= 0x020c0000;
}

/* classic (the default, and when set) sends the cooperative-sticky assignor
 * and no group.protocol, on every librdkafka. */
Test(conf, group_protocol_classic_keeps_the_cooperative_sticky_assignor) {
    for (int set = 0; set < 2; set++) {
        kaffe_conf_t *conf = consumer_conf();
        char err[256];
        if (set)
            cr_assert_eq(kaffe_conf_set(conf, "group_protocol", "classic", err, sizeof err),
                         KAFFE_OK, "%s", err);
        cr_assert_not(conf_group_protocol_consumer(conf));
        rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, err, sizeof err);
        cr_assert_not_null(rd, "%s", err);
        cr_assert_str_eq(rd_get(rd, "partition.assignment.strategy"), "cooperative-sticky");
        if (rdkafka_has_kip848())
            cr_assert_str_eq(rd_get(rd, "group.protocol"), "classic");
        rd_kafka_conf_destroy(rd);
        kaffe_conf_destroy(conf);
    }
}

/* consumer: group.protocol=consumer and librdkafka's own assignor default
 * (which librdkafka does not send under that protocol) where librdkafka has
 * it; a clear error at validation (kaffe_consumer_new) where it has not. */
Test(conf, group_protocol_consumer_needs_librdkafka_2_12) {
    kaffe_conf_t *conf = consumer_conf();
    char err[512];
    cr_assert_eq(kaffe_conf_set(conf, "group_protocol", "consumer", err, sizeof err), KAFFE_OK,
                 "%s", err);
    cr_assert(conf_group_protocol_consumer(conf));
    rd_kafka_conf_t *rd = NULL;
    kaffe_status_t st = conf_build_rdkafka(conf, CONF_ROLE_CONSUMER, &rd, err, sizeof err);
    if (rdkafka_has_kip848()) {
        cr_assert_eq(st, KAFFE_OK, "%s", err);
        cr_assert_str_eq(rd_get(rd, "group.protocol"), "consumer");
        cr_assert_str_neq(rd_get(rd, "partition.assignment.strategy"), "cooperative-sticky");
        /* librdkafka itself accepts it: a client can be made from it. */
        char rderr[256];
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, rd, rderr, sizeof rderr);
        cr_assert_not_null(rk, "%s", rderr);
        rd_kafka_destroy(rk);
    } else {
        cr_assert_eq(st, KAFFE_ERR_INVALID_CONF);
        cr_assert_null(rd);
        cr_assert(strstr(err, "group_protocol=consumer: needs librdkafka >= 2.12.0"), "got: %s",
                  err);
        cr_assert(strstr(err, rd_kafka_version_str()), "got: %s", err);
        cr_assert(strstr(err, "Kafka brokers >= 4.0"), "got: %s", err);
        cr_assert_eq(conf_validate(conf, CONF_ROLE_CONSUMER, err, sizeof err),
                     KAFFE_ERR_INVALID_CONF);
    }
    /* A producer has no group: the setting does not concern it. */
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_OK, "%s", err);
    kaffe_conf_destroy(conf);
}

/* The classic protocol's settings are refused with the consumer protocol,
 * the error naming both (librdkafka would refuse them only at
 * rd_kafka_new, naming one). */
Test(conf, group_protocol_consumer_refuses_the_classic_settings) {
    if (!rdkafka_has_kip848())
        cr_skip_test("librdkafka %s has no group.protocol (the version error is tested above)",
                     rd_kafka_version_str());
    static const char *const classic[][2] = {{"rdkafka.partition.assignment.strategy", "range"},
                                             {"rdkafka.session.timeout.ms", "10000"},
                                             {"rdkafka.heartbeat.interval.ms", "1000"},
                                             {"rdkafka.group.protocol.type", "consumer"}};
    for (size_t i = 0; i < sizeof classic / sizeof classic[0]; i++) {
        for (int spelling = 0; spelling < 2; spelling++) {
            kaffe_conf_t *conf = consumer_conf();
            char err[512];
            const char *name = spelling ? "rdkafka.group.protocol" : "group_protocol";
            const char *shown =
                spelling ? "rdkafka.group.protocol=consumer" : "group_protocol=consumer";
            cr_assert_eq(kaffe_conf_set(conf, name, "consumer", err, sizeof err), KAFFE_OK, "%s",
                         err);
            cr_assert_eq(kaffe_conf_set(conf, classic[i][0], classic[i][1], err, sizeof err),
                         KAFFE_OK, "%s", err);
            rd_kafka_conf_t *rd = NULL;
            cr_assert_eq(conf_build_rdkafka(conf, CONF_ROLE_CONSUMER, &rd, err, sizeof err),
                         KAFFE_ERR_INVALID_CONF, "%s with %s", classic[i][0], name);
            cr_assert_null(rd);
            cr_assert(strstr(err, classic[i][0]) && strstr(err, shown), "got: %s", err);
            /* The same setting is fine with the classic protocol. */
            cr_assert_eq(kaffe_conf_set(conf, "group_protocol", "classic", err, sizeof err),
                         KAFFE_OK);
            if (spelling)
                cr_assert_eq(
                    kaffe_conf_set(conf, "rdkafka.group.protocol", "classic", err, sizeof err),
                    KAFFE_OK);
            cr_assert_eq(conf_build_rdkafka(conf, CONF_ROLE_CONSUMER, &rd, err, sizeof err),
                         KAFFE_OK, "%s", err);
            rd_kafka_conf_destroy(rd);
            kaffe_conf_destroy(conf);
        }
    }
}

/* librdkafka's spelling: rdkafka.group.protocol alone selects the protocol
 * (kaffe then sends no assignor); with group_protocol both must agree. A
 * bare group.protocol is not a kaffe name, and the error says which is. */
Test(conf, group_protocol_under_librdkafkas_name) {
    kaffe_conf_t *conf = consumer_conf();
    char err[512];
    cr_assert_eq(kaffe_conf_set(conf, "group.protocol", "consumer", err, sizeof err),
                 KAFFE_ERR_UNKNOWN_CONF);
    cr_assert(strstr(err, "did you mean group_protocol"), "got: %s", err);
    kaffe_status_t st = kaffe_conf_set(conf, "rdkafka.group.protocol", "consumer", err, sizeof err);
    if (!rdkafka_has_kip848() && st != KAFFE_OK) {
        /* librdkafka < 2.4 has no such property: the error says what is needed. */
        cr_assert_eq(st, KAFFE_ERR_UNKNOWN_CONF);
        cr_assert(strstr(err, "librdkafka >= 2.12.0") && strstr(err, "group_protocol"), "got: %s",
                  err);
        kaffe_conf_destroy(conf);
        return;
    }
    cr_assert_eq(st, KAFFE_OK, "%s", err);
    cr_assert(conf_group_protocol_consumer(conf));
    rd_kafka_conf_t *rd = NULL;
    cr_assert_eq(conf_build_rdkafka(conf, CONF_ROLE_CONSUMER, &rd, err, sizeof err), KAFFE_OK, "%s",
                 err);
    cr_assert_str_eq(rd_get(rd, "group.protocol"), "consumer");
    cr_assert_str_neq(rd_get(rd, "partition.assignment.strategy"), "cooperative-sticky");
    rd_kafka_conf_destroy(rd);
    cr_assert_eq(kaffe_conf_set(conf, "group_protocol", "consumer", err, sizeof err), KAFFE_OK);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_CONSUMER, err, sizeof err), KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "group_protocol", "classic", err, sizeof err), KAFFE_OK);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_CONSUMER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "rdkafka.group.protocol=consumer: conflicts with group_protocol=classic"),
              "got: %s", err);
    kaffe_conf_destroy(conf);
}
