/* From a kaffe configuration to a librdkafka one, and the checks that need
 * the whole configuration (required and mutually exclusive settings, TLS
 * material, the Heroku environment). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errstr.h"
#include "conf/conf.h"
#include "conf/heroku.h"
#include "conf/internal.h"
#include "conf/pem.h"
#include "conf/properties.h"

/* The TLS settings that only make sense with ssl=true (and never with
 * heroku_kafka_env=true, which takes its TLS material from the environment). */
static const char *const tls_settings[] = {"ssl_ca", "ssl_cert", "ssl_key", "ssl_key_password",
                                           "ssl_verify_hostname"};
#define TLS_SETTING_COUNT (sizeof tls_settings / sizeof tls_settings[0])

static kaffe_status_t invalid(char *errstr, size_t errstr_size, const char *fmt, const char *a,
                              const char *b) {
    errstr_printf(errstr, errstr_size, fmt, a, b);
    return KAFFE_ERR_INVALID_CONF;
}

/* Settings that exclude or need each other. */
static kaffe_status_t check_combinations(const kaffe_conf_t *conf, char *errstr,
                                         size_t errstr_size) {
    bool heroku = conf_bool(conf, "heroku_kafka_env");
    if (heroku) {
        if (conf_is_set(conf, "ssl"))
            return invalid(errstr, errstr_size,
                           "%s: not used with heroku_kafka_env=true (KAFKA_URL's kafka+ssl:// "
                           "turns TLS on); remove %s",
                           "ssl", "ssl");
        for (size_t i = 0; i < TLS_SETTING_COUNT; i++)
            if (strcmp(tls_settings[i], "ssl_verify_hostname") != 0 &&
                conf_is_set(conf, tls_settings[i]))
                return invalid(errstr, errstr_size,
                               "%s: not used with heroku_kafka_env=true (the TLS material comes "
                               "from KAFKA_CLIENT_CERT, KAFKA_CLIENT_CERT_KEY and "
                               "KAFKA_TRUSTED_CERT); remove %s",
                               tls_settings[i], tls_settings[i]);
    } else if (!conf_bool(conf, "ssl")) {
        for (size_t i = 0; i < TLS_SETTING_COUNT; i++)
            if (conf_is_set(conf, tls_settings[i]))
                return invalid(errstr, errstr_size,
                               "%s: set, but TLS is off (ssl=false); set ssl=true or remove %s",
                               tls_settings[i], tls_settings[i]);
    }
    bool has_cert = *conf_str(conf, "ssl_cert") != '\0';
    bool has_key = *conf_str(conf, "ssl_key") != '\0';
    if (has_cert && !has_key)
        return invalid(errstr, errstr_size, "%s: set without %s (mutual TLS needs both)",
                       "ssl_cert", "ssl_key");
    if (has_key && !has_cert)
        return invalid(errstr, errstr_size, "%s: set without %s (mutual TLS needs both)", "ssl_key",
                       "ssl_cert");
    if (*conf_str(conf, "ssl_key_password") && !has_key)
        return invalid(errstr, errstr_size, "%s: set without %s", "ssl_key_password", "ssl_key");

    const char *mechanism = conf_str(conf, "sasl_mechanism");
    bool has_user = *conf_str(conf, "sasl_username") != '\0';
    bool has_password = *conf_str(conf, "sasl_password") != '\0';
    if (strcmp(mechanism, "none") == 0) {
        if (has_user || has_password)
            return invalid(errstr, errstr_size,
                           "%s: set, but sasl_mechanism=none; set sasl_mechanism (plain, "
                           "scram_sha_256 or scram_sha_512) or remove %s",
                           has_user ? "sasl_username" : "sasl_password",
                           has_user ? "sasl_username" : "sasl_password");
    } else if (!has_user || !has_password) {
        return invalid(errstr, errstr_size,
                       "sasl_mechanism=%s: needs %s (SASL is never silently disabled)", mechanism,
                       !has_user ? "sasl_username (or Kaffe's sasl_login)" : "sasl_password");
    }

    /* librdkafka has one auto.offset.reset for where a new group starts and
     * where an out-of-range offset goes; Kaffe had two settings. */
    if (conf_is_set(conf, "offset_reset_policy") &&
        conf_is_set(conf, "start_with_earliest_message")) {
        const char *policy = conf_str(conf, "offset_reset_policy");
        bool earliest = conf_bool(conf, "start_with_earliest_message");
        const char *agrees = earliest ? "reset_to_earliest" : "reset_to_latest";
        if (strcmp(policy, agrees) != 0)
            return invalid(errstr, errstr_size,
                           "offset_reset_policy=%s: conflicts with start_with_earliest_message=%s "
                           "(librdkafka has one auto.offset.reset for both); set only one",
                           policy, earliest ? "true" : "false");
    }
    return KAFFE_OK;
}

/* --- the consumer group protocol ---------------------------------------- */

/* librdkafka 2.12.0: KIP-848's consumer protocol is generally available
 * (group.protocol came with 2.4.0 as early access, and its contract changed
 * until 2.12.0: 2.10.0 began refusing the classic protocol's settings). */
#define KIP848_MIN_RDKAFKA 0x020c0000
#define KIP848_MIN_RDKAFKA_STR "2.12.0"

/* librdkafka settings of the classic protocol that librdkafka >= 2.10
 * refuses with group.protocol=consumer (rd_kafka_new fails): the broker's
 * group.consumer.* settings and group.remote.assignor replace them. */
static const char *const classic_only_settings[] = {"partition.assignment.strategy",
                                                    "session.timeout.ms", "heartbeat.interval.ms",
                                                    "group.protocol.type"};
#define CLASSIC_ONLY_COUNT (sizeof classic_only_settings / sizeof classic_only_settings[0])

/* Where the consumer protocol was asked for, for messages. */
static const char *consumer_protocol_source(const kaffe_conf_t *conf) {
    return conf_is_set(conf, "group_protocol") ? "group_protocol=consumer"
                                               : "rdkafka.group.protocol=consumer";
}

bool conf_group_protocol_consumer(const kaffe_conf_t *conf) {
    if (conf_is_set(conf, "group_protocol"))
        return strcmp(conf_str(conf, "group_protocol"), "consumer") == 0;
    const char *pass = conf_passthrough_find(conf, "group.protocol");
    return pass && conf_rdkafka_equal("group.protocol", pass, "consumer");
}

/* The consumer protocol: a librdkafka that has it generally available, no
 * classic-only setting, and group_protocol and rdkafka.group.protocol
 * agreeing. The broker's version is not known before connecting: a broker
 * older than Kafka 4.0 answers the first heartbeat with UNSUPPORTED_VERSION,
 * which reaches the error callback. */
static kaffe_status_t check_group_protocol(const kaffe_conf_t *conf, char *errstr,
                                           size_t errstr_size) {
    const char *pass = conf_passthrough_find(conf, "group.protocol");
    if (pass && conf_is_set(conf, "group_protocol") &&
        !conf_rdkafka_equal("group.protocol", pass, conf_str(conf, "group_protocol"))) {
        errstr_printf(errstr, errstr_size,
                      "rdkafka.group.protocol=%s: conflicts with group_protocol=%s; set only one",
                      pass, conf_str(conf, "group_protocol"));
        return KAFFE_ERR_INVALID_CONF;
    }
    if (!conf_group_protocol_consumer(conf))
        return KAFFE_OK;
    const char *source = consumer_protocol_source(conf);
    if (rd_kafka_version() < KIP848_MIN_RDKAFKA) {
        errstr_printf(errstr, errstr_size,
                      "%s: needs librdkafka >= " KIP848_MIN_RDKAFKA_STR
                      " (where the KIP-848 consumer protocol is generally available; this "
                      "process runs librdkafka %s) and Kafka brokers >= 4.0; use "
                      "group_protocol=classic",
                      source, rd_kafka_version_str());
        return KAFFE_ERR_INVALID_CONF;
    }
    for (size_t i = 0; i < CLASSIC_ONLY_COUNT; i++)
        if (conf_passthrough_find(conf, classic_only_settings[i])) {
            errstr_printf(errstr, errstr_size,
                          "rdkafka.%s: not used with %s (the broker's group.consumer.* settings "
                          "decide; rdkafka.group.remote.assignor picks the assignor); remove "
                          "rdkafka.%s or use group_protocol=classic",
                          classic_only_settings[i], source, classic_only_settings[i]);
            return KAFFE_ERR_INVALID_CONF;
        }
    return KAFFE_OK;
}

/* Reads a path-or-PEM setting; *pem gets PEM text to check (malloc'ed). */
static kaffe_status_t load_pem_setting(const char *name, const char *value, char **pem,
                                       char *errstr, size_t errstr_size) {
    if (conf_pem_is_text(value))
        return (*pem = strdup(value)) ? KAFFE_OK : KAFFE_ERR_NOMEM;
    return conf_pem_read_file(name, value, pem, errstr, errstr_size);
}

static void wipe_free(char *s) {
    if (!s)
        return;
    for (volatile char *p = s; *p; p++) /* volatile: not a dead store */
        *p = '\0';
    free(s);
}

/* ssl=true: the CA, certificate and key parse, and the key matches. */
static kaffe_status_t check_tls_material(const kaffe_conf_t *conf, char *errstr,
                                         size_t errstr_size) {
    const char *ca = conf_str(conf, "ssl_ca");
    const char *cert = conf_str(conf, "ssl_cert");
    const char *key = conf_str(conf, "ssl_key");
    const char *password = conf_str(conf, "ssl_key_password");
    char *ca_pem = NULL, *cert_pem = NULL, *key_pem = NULL;
    kaffe_status_t st = KAFFE_OK;
    if (*ca && !(st = load_pem_setting("ssl_ca", ca, &ca_pem, errstr, errstr_size)))
        st = conf_pem_check_certificates("ssl_ca", ca_pem, errstr, errstr_size);
    if (!st && *cert && !(st = load_pem_setting("ssl_cert", cert, &cert_pem, errstr, errstr_size)))
        st = conf_pem_check_certificates("ssl_cert", cert_pem, errstr, errstr_size);
    if (!st && *key && !(st = load_pem_setting("ssl_key", key, &key_pem, errstr, errstr_size)))
        st = conf_pem_check_private_key("ssl_key", key_pem, password, errstr, errstr_size);
    if (!st && cert_pem && key_pem)
        st = conf_pem_check_key_matches("ssl_cert", cert_pem, "ssl_key", key_pem, password, errstr,
                                        errstr_size);
    free(ca_pem);
    free(cert_pem);
    wipe_free(key_pem);
    return st;
}
/* Without a default message handler every subscribed topic needs its own,
 * and no ^ pattern can be subscribed. */
static kaffe_status_t check_topic_handlers(const kaffe_conf_t *conf, char *errstr,
                                           size_t errstr_size) {
    char **topics = NULL;
    size_t n = conf_list(conf, "topics", &topics);
    kaffe_status_t st = KAFFE_OK;
    for (size_t t = 0; t < n && st == KAFFE_OK; t++) {
        bool handled = false;
        for (size_t i = 0; i < conf_route_count(conf) && !handled; i++)
            handled = strcmp(conf_route_topic(conf, i), topics[t]) == 0 &&
                      conf_route_handler(conf, i, NULL) != NULL;
        if (!handled) {
            errstr_printf(errstr, errstr_size,
                          topics[t][0] == '^'
                              ? "topics: the pattern %s needs a default message handler "
                                "(kaffe_conf_set_message_handler)"
                              : "topics: %s has no handler (kaffe_conf_set_topic_handler, or a "
                                "default kaffe_conf_set_message_handler)",
                          topics[t]);
            st = KAFFE_ERR_INVALID_CONF;
        }
    }
    conf_list_free(topics);
    return st;
}

kaffe_status_t conf_validate(const kaffe_conf_t *conf, conf_role_t role, char *errstr,
                             size_t errstr_size) {
    bool heroku = conf_bool(conf, "heroku_kafka_env");
    bool has_endpoints = *conf_str(conf, "endpoints") != '\0';
    if (heroku && has_endpoints) {
        errstr_printf(errstr, errstr_size,
                      "endpoints and heroku_kafka_env=true are mutually exclusive: set one");
        return KAFFE_ERR_INVALID_CONF;
    }
    if (!heroku && !has_endpoints) {
        errstr_printf(errstr, errstr_size,
                      "endpoints: required (host:port[,host:port]) unless heroku_kafka_env=true");
        return KAFFE_ERR_INVALID_CONF;
    }
    char **topics = NULL;
    size_t topic_count = conf_list(conf, "topics", &topics);
    conf_list_free(topics);
    if (topic_count == 0) {
        errstr_printf(errstr, errstr_size, "topics: at least one topic is required");
        return KAFFE_ERR_INVALID_CONF;
    }
    if (role == CONF_ROLE_CONSUMER) {
        if (*conf_str(conf, "consumer_group") == '\0') {
            errstr_printf(errstr, errstr_size, "consumer_group: required for a consumer");
            return KAFFE_ERR_INVALID_CONF;
        }
        bool message = conf_message_handler(conf, NULL) != NULL;
        bool batch = conf_batch_handler(conf, NULL) != NULL;
        bool routed = false;
        for (size_t i = 0; i < conf_route_count(conf); i++)
            routed = routed || conf_route_handler(conf, i, NULL) != NULL;
        if (batch && conf_route_count(conf) > 0) {
            errstr_printf(errstr, errstr_size,
                          "topic.%s: topic handlers and topic.<topic>.* settings work with message "
                          "handlers, not with a batch handler",
                          conf_route_topic(conf, 0));
            return KAFFE_ERR_INVALID_CONF;
        }
        if (!message && !batch && routed) {
            kaffe_status_t st = check_topic_handlers(conf, errstr, errstr_size);
            if (st != KAFFE_OK)
                return st;
        } else if (!message && !batch) {
            errstr_printf(errstr, errstr_size,
                          "message handler: required for a consumer "
                          "(kaffe_conf_set_message_handler or kaffe_conf_set_batch_handler)");
            return KAFFE_ERR_INVALID_CONF;
        }
        if (message && batch) {
            errstr_printf(errstr, errstr_size,
                          "message handler: a consumer has a message handler or a batch "
                          "handler, not both (kaffe_conf_set_message_handler, "
                          "kaffe_conf_set_batch_handler)");
            return KAFFE_ERR_INVALID_CONF;
        }
        if (conf_int(conf, "max_in_flight_messages") > conf_int(conf, "ack_window")) {
            errstr_printf(errstr, errstr_size,
                          "max_in_flight_messages: must not exceed ack_window (%lld)",
                          (long long)conf_int(conf, "ack_window"));
            return KAFFE_ERR_INVALID_CONF;
        }
        kaffe_status_t st = check_group_protocol(conf, errstr, errstr_size);
        if (st != KAFFE_OK)
            return st;
    }
    kaffe_status_t st = check_combinations(conf, errstr, errstr_size);
    if (st != KAFFE_OK)
        return st;
    if (heroku) {
        conf_heroku_t h;
        st = conf_heroku_read(&h, errstr, errstr_size);
        if (st == KAFFE_OK)
            conf_heroku_clear(&h);
        return st;
    }
    if (conf_bool(conf, "ssl"))
        return check_tls_material(conf, errstr, errstr_size);
    return KAFFE_OK;
}

/* Builds the librdkafka configuration step by step; the first failure
 * stops every later step (ok turns false and errstr keeps its message). */
typedef struct builder {
    const kaffe_conf_t *conf;
    rd_kafka_conf_t *rdconf;
    kaffe_status_t status;
    char *errstr;
    size_t errstr_size;
} builder_t;

/* Sets name=value, shown in messages as `source` (a kaffe setting or
 * variable). When `exclusive`, an rdkafka.<name> passthrough that says
 * otherwise is an error rather than a silent override (the passthrough is
 * applied after every kaffe setting, so it would win). */
static void put(builder_t *b, const char *name, const char *value, const char *source,
                bool exclusive) {
    if (b->status != KAFFE_OK)
        return;
    bool secret = conf_rdkafka_name_is_secret(name);
    const char *pass = exclusive ? conf_passthrough_find(b->conf, name) : NULL;
    if (pass && !conf_rdkafka_equal(name, value, pass)) {
        if (secret)
            errstr_printf(b->errstr, b->errstr_size,
                          "rdkafka.%s: conflicts with %s, which sets %s; set only one", name,
                          source, name);
        else
            errstr_printf(b->errstr, b->errstr_size,
                          "rdkafka.%s=%s: conflicts with %s, which sets %s=%s; set only one", name,
                          pass, source, name, value);
        b->status = KAFFE_ERR_INVALID_CONF;
        return;
    }
    char rderr[256];
    if (rd_kafka_conf_set(b->rdconf, name, value, rderr, sizeof rderr) == RD_KAFKA_CONF_OK)
        return;
    if (secret)
        errstr_printf(b->errstr, b->errstr_size, "%s: librdkafka rejected %s", source, name);
    else
        errstr_printf(b->errstr, b->errstr_size, "%s: %s", source, rderr);
    b->status = KAFFE_ERR_INVALID_CONF;
}

/* A path-or-PEM setting: librdkafka's <prefix>.location for a path,
 * <prefix>.pem for PEM text. */
static void put_pem(builder_t *b, const char *setting, const char *prefix) {
    const char *value = conf_str(b->conf, setting);
    if (!*value)
        return;
    char name[64];
    snprintf(name, sizeof name, "%s.%s", prefix, conf_pem_is_text(value) ? "pem" : "location");
    put(b, name, value, setting, true);
}

static void put_security(builder_t *b, const conf_heroku_t *heroku) {
    const kaffe_conf_t *conf = b->conf;
    bool tls = heroku ? heroku->tls : conf_bool(conf, "ssl");
    const char *mechanism = conf_str(conf, "sasl_mechanism");
    bool sasl = strcmp(mechanism, "none") != 0;
    /* security.protocol is kaffe's to say once any kaffe security setting is
     * used; otherwise rdkafka.security.protocol may set it. */
    if (heroku || conf_is_set(conf, "ssl") || sasl) {
        const char *protocol =
            tls ? (sasl ? "sasl_ssl" : "ssl") : (sasl ? "sasl_plaintext" : "plaintext");
        put(b, "security.protocol", protocol,
            heroku ? "heroku_kafka_env (KAFKA_URL)"
            : sasl ? "sasl_mechanism/ssl"
                   : "ssl",
            true);
    }
    if (tls) {
        put(b, "ssl.endpoint.identification.algorithm",
            conf_bool(conf, "ssl_verify_hostname") ? "https" : "none", "ssl_verify_hostname",
            conf_is_set(conf, "ssl_verify_hostname") || heroku);
        if (heroku) {
            put(b, "ssl.ca.pem", heroku->trusted_cert, "KAFKA_TRUSTED_CERT", true);
            put(b, "ssl.certificate.pem", heroku->client_cert, "KAFKA_CLIENT_CERT", true);
            put(b, "ssl.key.pem", heroku->client_key, "KAFKA_CLIENT_CERT_KEY", true);
        } else {
            put_pem(b, "ssl_ca", "ssl.ca");
            put_pem(b, "ssl_cert", "ssl.certificate");
            put_pem(b, "ssl_key", "ssl.key");
            if (*conf_str(conf, "ssl_key_password"))
                put(b, "ssl.key.password", conf_str(conf, "ssl_key_password"), "ssl_key_password",
                    true);
        }
    }
    if (sasl) {
        const property_t *p = property_find("sasl_mechanism");
        put(b, "sasl.mechanisms", property_rdkafka_value(p, mechanism), "sasl_mechanism", true);
        put(b, "sasl.username", conf_str(conf, "sasl_username"), "sasl_username", true);
        put(b, "sasl.password", conf_str(conf, "sasl_password"), "sasl_password", true);
    }
}

kaffe_status_t conf_build_rdkafka(const kaffe_conf_t *conf, conf_role_t role, rd_kafka_conf_t **out,
                                  char *errstr, size_t errstr_size) {
    *out = NULL;
    kaffe_status_t st = conf_validate(conf, role, errstr, errstr_size);
    if (st != KAFFE_OK)
        return st;
    bool heroku = conf_bool(conf, "heroku_kafka_env");
    conf_heroku_t h = {0};
    if (heroku && (st = conf_heroku_read(&h, errstr, errstr_size)) != KAFFE_OK)
        return st;

    builder_t b = {.conf = conf,
                   .rdconf = rd_kafka_conf_new(),
                   .status = KAFFE_OK,
                   .errstr = errstr,
                   .errstr_size = errstr_size};
    if (heroku)
        put(&b, "bootstrap.servers", h.bootstrap, "heroku_kafka_env (KAFKA_URL)", true);
    else
        put(&b, "bootstrap.servers", conf_str(conf, "endpoints"), "endpoints", true);

    if (role == CONF_ROLE_CONSUMER) {
        put(&b, "group.id", conf_str(conf, "consumer_group"), "consumer_group", true);
        put(&b, "auto.offset.reset",
            conf_bool(conf, "start_with_earliest_message") ? "earliest" : "latest",
            "start_with_earliest_message", conf_is_set(conf, "start_with_earliest_message"));
        /* The consumer protocol has no client-side assignor (the broker
         * assigns); the classic one gets kaffe's incremental assignor. */
        if (conf_group_protocol_consumer(conf))
            put(&b, "group.protocol", "consumer", consumer_protocol_source(conf), true);
        else
            put(&b, "partition.assignment.strategy", "cooperative-sticky",
                "kaffe's default assignor", false);
    }
    if (role == CONF_ROLE_PRODUCER)
        put(&b, "acks", "all", "required_acks", false);

    /* Kaffe's names mapped one-to-one (max_bytes, required_acks, ...): only
     * when set, so unset ones leave librdkafka's default, except rows whose
     * default_applied says kaffe's default differs (the passthrough below
     * still overrides those). Conflicts with rdkafka.<property> were refused
     * at set time. */
    for (size_t i = 0; i < property_count(); i++) {
        const property_t *p = property_at(i);
        if (!(p->roles & (int)role) || !property_mapped_generically(p))
            continue;
        bool set = conf_is_set(conf, p->name);
        if (!set && !p->default_applied)
            continue;
        put(&b, p->rdkafka_name, property_rdkafka_value(p, conf_str(conf, p->name)), p->name, set);
    }
    put_security(&b, heroku ? &h : NULL);

    /* Passthrough last: rdkafka.<property> that no kaffe setting claims. */
    for (size_t i = 0; i < conf_passthrough_count(conf); i++) {
        const char *name, *value;
        conf_passthrough_at(conf, i, &name, &value);
        char shown[300];
        snprintf(shown, sizeof shown, "rdkafka.%s", name);
        put(&b, name, value, shown, false);
    }
    /* kaffe decides what is committed: not negotiable, and never silently. */
    if (role == CONF_ROLE_CONSUMER) {
        put(&b, "enable.auto.commit", "false", "kaffe's consumer (it commits acked offsets)", true);
        put(&b, "enable.auto.offset.store", "false", "kaffe's consumer (it stores acked offsets)",
            true);
    }
    conf_heroku_clear(&h);
    if (b.status != KAFFE_OK) {
        rd_kafka_conf_destroy(b.rdconf);
        return b.status;
    }
    *out = b.rdconf;
    return KAFFE_OK;
}

rd_kafka_conf_t *conf_to_rdkafka(const kaffe_conf_t *conf, conf_role_t role, char *errstr,
                                 size_t errstr_size) {
    rd_kafka_conf_t *rdconf = NULL;
    conf_build_rdkafka(conf, role, &rdconf, errstr, errstr_size);
    return rdconf;
}
