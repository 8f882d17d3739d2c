/* Configuration of TLS and Heroku mode, without a broker: KAFKA_URL
 * parsing, missing and malformed variables, PEM checks, and that keys and
 * certificates never appear in messages. Certificates are made at test time
 * (support/pem_gen.h). Criterion runs each test in its own process, so
 * setenv() here does not leak between tests. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kaffe/kaffe.h>

#include "conf/conf.h"
#include "conf/heroku.h"
#include "support/pem_gen.h"

typedef struct pki {
    char *ca_key, *ca_cert;
    char *client_key, *client_cert;
    char *other_key; /* a key that belongs to no certificate here */
} pki_t;

static pki_t pki;

static void make_pki(void) {
    pki.ca_key = test_pem_key();
    pki.ca_cert = test_pem_cert(pki.ca_key, "kaffe test CA", NULL, NULL);
    pki.client_key = test_pem_key();
    pki.client_cert = test_pem_cert(pki.client_key, "kaffe client", pki.ca_cert, pki.ca_key);
    pki.other_key = test_pem_key();
}

static void free_pki(void) {
    free(pki.ca_key);
    free(pki.ca_cert);
    free(pki.client_key);
    free(pki.client_cert);
    free(pki.other_key);
}

TestSuite(tls, .init = make_pki, .fini = free_pki);

/* The second line of a PEM block: base64 body that must never be echoed. */
static char *body_line(const char *pem) {
    const char *nl = strchr(pem, '\n');
    cr_assert_not_null(nl);
    const char *end = strchr(nl + 1, '\n');
    return strndup(nl + 1, (size_t)(end - nl - 1));
}

static void assert_no_pem_in(const char *err) {
    const char *pems[] = {pki.ca_cert, pki.client_cert, pki.client_key, pki.other_key};
    for (size_t i = 0; i < 4; i++) {
        char *body = body_line(pems[i]);
        cr_assert_null(strstr(err, body), "PEM text leaked into: %s", err);
        free(body);
    }
}

static void set_heroku_env(const char *url, const char *cert, const char *key, const char *ca) {
    url ? setenv("KAFKA_URL", url, 1) : unsetenv("KAFKA_URL");
    cert ? setenv("KAFKA_CLIENT_CERT", cert, 1) : unsetenv("KAFKA_CLIENT_CERT");
    key ? setenv("KAFKA_CLIENT_CERT_KEY", key, 1) : unsetenv("KAFKA_CLIENT_CERT_KEY");
    ca ? setenv("KAFKA_TRUSTED_CERT", ca, 1) : unsetenv("KAFKA_TRUSTED_CERT");
}

static kaffe_conf_t *heroku_producer_conf(void) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "heroku_kafka_env", "true", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "topics", "t", err, sizeof err), KAFFE_OK);
    return conf;
}

static const char *rd_get(rd_kafka_conf_t *rd, const char *name) {
    static char v[8192];
    size_t n = sizeof v;
    return rd_kafka_conf_get(rd, name, v, &n) == RD_KAFKA_CONF_OK ? v : "(unset)";
}

Test(tls, kafka_url_lists_become_the_bootstrap_list) {
    char *bootstrap;
    bool tls;
    char err[256];
    cr_assert_eq(conf_heroku_parse_url("kafka+ssl://b1.example.com:9096, kafka+ssl://10.0.0.2:9096",
                                       &bootstrap, &tls, err, sizeof err),
                 KAFFE_OK, "%s", err);
    cr_assert_str_eq(bootstrap, "b1.example.com:9096,10.0.0.2:9096");
    cr_assert(tls);
    free(bootstrap);
    cr_assert_eq(conf_heroku_parse_url("kafka://localhost:9092", &bootstrap, &tls, err, sizeof err),
                 KAFFE_OK, "%s", err);
    cr_assert_str_eq(bootstrap, "localhost:9092");
    cr_assert_not(tls);
    free(bootstrap);
    cr_assert_eq(conf_heroku_parse_url("kafka+ssl://[::1]:9096", &bootstrap, &tls, err, sizeof err),
                 KAFFE_OK, "%s", err);
    cr_assert_str_eq(bootstrap, "[::1]:9096");
    free(bootstrap);
}

Test(tls, malformed_kafka_urls_are_errors_naming_the_entry) {
    struct {
        const char *url, *message;
    } cases[] = {
        {"", "entry 1 is empty"},
        {"b1:9096", "does not start with kafka+ssl:// or kafka://"},
        {"http://b1:9096", "does not start with"},
        {"kafka+ssl://b1", "is not scheme://host:port"},
        {"kafka+ssl://b1:0", "is not scheme://host:port"},
        {"kafka+ssl://b1:65536", "is not scheme://host:port"},
        {"kafka+ssl://:9096", "is not scheme://host:port"},
        {"kafka+ssl://b1:9096/", "is not scheme://host:port"},
        {"kafka+ssl://b1:9096,", "entry 2 is empty"},
        {"kafka+ssl://b1:9096,kafka://b2:9092", "mixes kafka+ssl:// and kafka://"},
        {"kafka+ssl://b1:96x", "entry 1 (\"kafka+ssl://b1:96x\")"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bootstrap = NULL;
        bool tls;
        char err[256] = "";
        cr_assert_eq(conf_heroku_parse_url(cases[i].url, &bootstrap, &tls, err, sizeof err),
                     KAFFE_ERR_ENV, "\"%s\" was accepted", cases[i].url);
        cr_assert_null(bootstrap);
        cr_assert(strstr(err, "KAFKA_URL") && strstr(err, cases[i].message), "\"%s\": got %s",
                  cases[i].url, err);
    }
    /* An entry with credentials is never echoed. */
    char *bootstrap = NULL;
    bool tls;
    char err[256];
    cr_assert_eq(conf_heroku_parse_url("kafka+ssl://user:hunter2@b1:9096", &bootstrap, &tls, err,
                                       sizeof err),
                 KAFFE_ERR_ENV);
    cr_assert_null(strstr(err, "hunter2"), "got: %s", err);
}

/* Found by fuzz/fuzz_heroku_url: the brackets of an IPv6 entry took any
 * characters, so credentials or a second URL passed into bootstrap.servers. */
Test(tls, kafka_url_brackets_hold_only_an_ipv6_address) {
    static const char *const bad[] = {"kafka+ssl://[user:hunter2@b1]:9096",
                                      "kafka://[:kafka+ssl://:1]:9092", "kafka://[b1 b2]:9092",
                                      "kafka://[::1%eth0]:9092"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *bootstrap = NULL;
        bool tls;
        char err[256] = "";
        cr_assert_eq(conf_heroku_parse_url(bad[i], &bootstrap, &tls, err, sizeof err),
                     KAFFE_ERR_ENV, "\"%s\" was accepted", bad[i]);
        cr_assert_null(bootstrap);
        cr_assert(strstr(err, "is not scheme://host:port"), "\"%s\": got %s", bad[i], err);
        cr_assert_null(strstr(err, "hunter2"), "got: %s", err);
    }
    char *bootstrap = NULL;
    bool tls;
    char err[256];
    cr_assert_eq(conf_heroku_parse_url("kafka://[fe80::1:2]:9092,kafka://[::ffff:10.0.0.1]:9092",
                                       &bootstrap, &tls, err, sizeof err),
                 KAFFE_OK, "%s", err);
    cr_assert_str_eq(bootstrap, "[fe80::1:2]:9092,[::ffff:10.0.0.1]:9092");
    free(bootstrap);
}

Test(tls, heroku_mode_needs_each_variable_and_names_the_missing_one) {
    const char *names[] = {"KAFKA_CLIENT_CERT", "KAFKA_CLIENT_CERT_KEY", "KAFKA_TRUSTED_CERT"};
    kaffe_conf_t *conf = heroku_producer_conf();
    char err[400];
    set_heroku_env(NULL, pki.client_cert, pki.client_key, pki.ca_cert);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert(strstr(err, "KAFKA_URL: not set"), "got: %s", err);
    for (size_t i = 0; i < 3; i++) {
        set_heroku_env("kafka+ssl://127.0.0.1:9096", i == 0 ? NULL : pki.client_cert,
                       i == 1 ? NULL : pki.client_key, i == 2 ? NULL : pki.ca_cert);
        rd_kafka_conf_t *rd = NULL;
        cr_assert_eq(conf_build_rdkafka(conf, CONF_ROLE_PRODUCER, &rd, err, sizeof err),
                     KAFFE_ERR_ENV, "%s missing was accepted", names[i]);
        cr_assert_null(rd);
        char want[64];
        snprintf(want, sizeof want, "%s: not set", names[i]);
        cr_assert(strstr(err, want), "got: %s", err);
        assert_no_pem_in(err);
    }
    /* An empty variable counts as missing. */
    set_heroku_env("kafka+ssl://127.0.0.1:9096", "", pki.client_key, pki.ca_cert);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert(strstr(err, "KAFKA_CLIENT_CERT: not set"), "got: %s", err);
    kaffe_conf_destroy(conf);
}

Test(tls, non_pem_values_are_errors_naming_the_variable) {
    kaffe_conf_t *conf = heroku_producer_conf();
    char err[400];
    const char *url = "kafka+ssl://127.0.0.1:9096";
    /* A path where PEM text is expected (Kaffe wants text). */
    set_heroku_env(url, "/etc/kafka/client.crt", pki.client_key, pki.ca_cert);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert(strstr(err, "KAFKA_CLIENT_CERT: not a PEM certificate"), "got: %s", err);
    /* A key where a certificate is expected. */
    set_heroku_env(url, pki.client_cert, pki.client_key, pki.client_key);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert(strstr(err, "KAFKA_TRUSTED_CERT: not a PEM certificate"), "got: %s", err);
    assert_no_pem_in(err);
    /* A certificate where the key is expected. */
    set_heroku_env(url, pki.client_cert, pki.client_cert, pki.ca_cert);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert(strstr(err, "KAFKA_CLIENT_CERT_KEY: not a PEM private key"), "got: %s", err);
    assert_no_pem_in(err);
    /* PEM armour around a damaged body. */
    char *damaged = strdup(pki.ca_cert);
    char *body = strchr(damaged, '\n') + 1;
    memset(body + 10, '!', 8);
    set_heroku_env(url, pki.client_cert, pki.client_key, damaged);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert(strstr(err, "KAFKA_TRUSTED_CERT: PEM certificate 1 cannot be parsed"), "got: %s",
              err);
    free(damaged);
    char *damaged_key = strdup(pki.client_key);
    body = strchr(damaged_key, '\n') + 1;
    memset(body + 10, '*', 8);
    set_heroku_env(url, pki.client_cert, damaged_key, pki.ca_cert);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert(strstr(err, "KAFKA_CLIENT_CERT_KEY: PEM private key cannot be parsed"), "got: %s",
              err);
    assert_no_pem_in(err);
    free(damaged_key);
    kaffe_conf_destroy(conf);
}

Test(tls, a_key_that_does_not_match_the_certificate_is_an_error) {
    kaffe_conf_t *conf = heroku_producer_conf();
    char err[400];
    set_heroku_env("kafka+ssl://127.0.0.1:9096", pki.client_cert, pki.other_key, pki.ca_cert);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert(strstr(err, "KAFKA_CLIENT_CERT_KEY: the private key does not belong to the "
                          "certificate in KAFKA_CLIENT_CERT"),
              "got: %s", err);
    assert_no_pem_in(err);
    kaffe_conf_destroy(conf);
}

Test(tls, heroku_mode_sets_mutual_tls_with_hostname_verification) {
    kaffe_conf_t *conf = heroku_producer_conf();
    char err[400];
    set_heroku_env("kafka+ssl://127.0.0.1:9096,kafka+ssl://localhost:9097", pki.client_cert,
                   pki.client_key, pki.ca_cert);
    rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "bootstrap.servers"), "127.0.0.1:9096,localhost:9097");
    cr_assert_str_eq(rd_get(rd, "security.protocol"), "ssl");
    cr_assert_str_eq(rd_get(rd, "ssl.endpoint.identification.algorithm"), "https");
    cr_assert_str_eq(rd_get(rd, "ssl.ca.pem"), pki.ca_cert);
    cr_assert_str_eq(rd_get(rd, "ssl.certificate.pem"), pki.client_cert);
    cr_assert_str_eq(rd_get(rd, "ssl.key.pem"), pki.client_key);
    rd_kafka_conf_destroy(rd);
    /* The documented switch turns hostname verification off. */
    cr_assert_eq(kaffe_conf_set(conf, "ssl_verify_hostname", "false", err, sizeof err), KAFFE_OK);
    rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "ssl.endpoint.identification.algorithm"), "none");
    rd_kafka_conf_destroy(rd);
    /* With SASL: sasl_ssl. */
    kaffe_conf_set(conf, "sasl_mechanism", "scram_sha_256", err, sizeof err);
    kaffe_conf_set(conf, "sasl_username", "u", err, sizeof err);
    kaffe_conf_set(conf, "sasl_password", "p", err, sizeof err);
    rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "security.protocol"), "sasl_ssl");
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);
}

Test(tls, heroku_plaintext_url_takes_no_certificates) {
    kaffe_conf_t *conf = heroku_producer_conf();
    char err[400];
    set_heroku_env("kafka://127.0.0.1:9092", NULL, NULL, NULL);
    rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "security.protocol"), "plaintext");
    rd_kafka_conf_destroy(rd);
    set_heroku_env("kafka://127.0.0.1:9092", NULL, NULL, pki.ca_cert);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_ENV);
    cr_assert(strstr(err, "KAFKA_TRUSTED_CERT: set, but KAFKA_URL uses kafka://"), "got: %s", err);
    kaffe_conf_destroy(conf);
}

Test(tls, heroku_mode_excludes_ssl_settings) {
    kaffe_conf_t *conf = heroku_producer_conf();
    char err[400];
    set_heroku_env("kafka+ssl://127.0.0.1:9096", pki.client_cert, pki.client_key, pki.ca_cert);
    cr_assert_eq(kaffe_conf_set(conf, "ssl_ca", pki.ca_cert, err, sizeof err), KAFFE_OK);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "ssl_ca: not used with heroku_kafka_env=true"), "got: %s", err);
    assert_no_pem_in(err);
    kaffe_conf_destroy(conf);
    conf = heroku_producer_conf();
    cr_assert_eq(kaffe_conf_set(conf, "ssl", "true", err, sizeof err), KAFFE_OK);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "ssl: not used with heroku_kafka_env=true"), "got: %s", err);
    kaffe_conf_destroy(conf);
}

static char *write_temp(const char *text) {
    char *path = strdup("/tmp/kaffe-pem-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static kaffe_conf_t *tls_conf(const char *ca, const char *cert, const char *key) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", "127.0.0.1:9093", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "topics", "t", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "ssl", "true", err, sizeof err), KAFFE_OK);
    if (ca)
        cr_assert_eq(kaffe_conf_set(conf, "ssl_ca", ca, err, sizeof err), KAFFE_OK);
    if (cert)
        cr_assert_eq(kaffe_conf_set(conf, "ssl_cert", cert, err, sizeof err), KAFFE_OK);
    if (key)
        cr_assert_eq(kaffe_conf_set(conf, "ssl_key", key, err, sizeof err), KAFFE_OK);
    return conf;
}

Test(tls, ssl_settings_take_paths_or_pem_text) {
    char *ca_path = write_temp(pki.ca_cert);
    char *key_path = write_temp(pki.client_key);
    kaffe_conf_t *conf = tls_conf(ca_path, pki.client_cert, key_path);
    char err[400];
    rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "security.protocol"), "ssl");
    cr_assert_str_eq(rd_get(rd, "ssl.ca.location"), ca_path);
    cr_assert_str_eq(rd_get(rd, "ssl.certificate.pem"), pki.client_cert);
    cr_assert_str_eq(rd_get(rd, "ssl.key.location"), key_path);
    cr_assert_str_eq(rd_get(rd, "ssl.endpoint.identification.algorithm"), "https");
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);
    /* Server-authenticated TLS only: no client certificate. */
    conf = tls_conf(pki.ca_cert, NULL, NULL);
    rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);
    unlink(ca_path);
    unlink(key_path);
    free(ca_path);
    free(key_path);
}

Test(tls, ssl_material_is_checked_before_connecting) {
    char err[400];
    kaffe_conf_t *conf = tls_conf("/nonexistent/ca.pem", NULL, NULL);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_IO);
    cr_assert(strstr(err, "ssl_ca: cannot read /nonexistent/ca.pem"), "got: %s", err);
    kaffe_conf_destroy(conf);

    conf = tls_conf(pki.ca_cert, pki.client_cert, pki.other_key);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "ssl_key: the private key does not belong to the certificate in "
                          "ssl_cert"),
              "got: %s", err);
    assert_no_pem_in(err);
    kaffe_conf_destroy(conf);

    char *not_pem = write_temp("just some text\n");
    conf = tls_conf(not_pem, NULL, NULL);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "ssl_ca: not a PEM certificate"), "got: %s", err);
    kaffe_conf_destroy(conf);
    unlink(not_pem);
    free(not_pem);
}

Test(tls, encrypted_keys_need_their_password) {
    const char *password = "k3y-pa55word";
    char *encrypted = test_pem_key_encrypted(pki.client_key, password);
    char err[400];
    kaffe_conf_t *conf = tls_conf(pki.ca_cert, pki.client_cert, encrypted);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "ssl_key: the private key is encrypted and no password is set"),
              "got: %s", err);
    cr_assert_eq(kaffe_conf_set(conf, "ssl_key_password", "wrong-password", err, sizeof err),
                 KAFFE_OK);
    cr_assert_eq(conf_validate(conf, CONF_ROLE_PRODUCER, err, sizeof err), KAFFE_ERR_INVALID_CONF);
    cr_assert(strstr(err, "cannot be decrypted"), "got: %s", err);
    cr_assert_null(strstr(err, "wrong-password"), "password leaked: %s", err);
    cr_assert_eq(kaffe_conf_set(conf, "ssl_key_password", password, err, sizeof err), KAFFE_OK);
    rd_kafka_conf_t *rd = conf_to_rdkafka(conf, CONF_ROLE_PRODUCER, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_str_eq(rd_get(rd, "ssl.key.password"), password);
    rd_kafka_conf_destroy(rd);
    kaffe_conf_destroy(conf);
    free(encrypted);
}
