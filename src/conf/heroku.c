/* Heroku mode: KAFKA_URL and the PEM variables. See heroku.h. */
#include "conf/heroku.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/errstr.h"
#include "conf/pem.h"

#define SCHEME_TLS "kafka+ssl://"
#define SCHEME_PLAIN "kafka://"

/* Checks one "host:port" (after the scheme). host is a name, an IPv4
 * address or a bracketed IPv6 address; port is 1..65535. */
static bool host_port_ok(const char *s, size_t len) {
    if (len == 0)
        return false;
    const char *colon = NULL;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || close == s + 1 || (size_t)(close - s) + 1 >= len || close[1] != ':')
            return false;
        /* An IPv6 literal: hex digits, ':' and '.' (an embedded IPv4 tail).
         * Anything else ("[user:pw@host]") would reach librdkafka, and its
         * logs, as a broker name. */
        for (const char *c = s + 1; c < close; c++)
            if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
                return false;
        colon = close + 1;
    } else {
        for (size_t i = 0; i < len; i++) {
            if (s[i] == ':') {
                if (colon)
                    return false; /* two colons: an unbracketed IPv6 address or junk */
                colon = s + i;
            } else if (!(isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '-' ||
                         s[i] == '_')) {
                return false; /* '/', '@', spaces: paths and credentials are not expected */
            }
        }
        if (!colon || colon == s)
            return false;
    }
    size_t digits = len - (size_t)(colon + 1 - s);
    if (digits == 0 || digits > 5)
        return false;
    long port = 0;
    for (const char *d = colon + 1; d < s + len; d++) {
        if (!isdigit((unsigned char)*d))
            return false;
        port = port * 10 + (*d - '0');
    }
    return port >= 1 && port <= 65535;
}

kaffe_status_t conf_heroku_parse_url(const char *url, char **bootstrap, bool *tls, char *errstr,
                                     size_t errstr_size) {
    *bootstrap = NULL;
    size_t cap = strlen(url) + 1;
    char *out = malloc(cap);
    if (!out)
        return KAFFE_ERR_NOMEM;
    size_t used = 0, index = 0;
    int scheme_seen = -1; /* -1 none yet, 0 plaintext, 1 TLS */
    const char *s = url;
    for (;;) {
        index++;
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        while (len > 0 && isspace((unsigned char)*s))
            s++, len--;
        while (len > 0 && isspace((unsigned char)s[len - 1]))
            len--;
        int scheme;
        size_t skip;
        if (len >= strlen(SCHEME_TLS) && strncmp(s, SCHEME_TLS, strlen(SCHEME_TLS)) == 0)
            scheme = 1, skip = strlen(SCHEME_TLS);
        else if (len >= strlen(SCHEME_PLAIN) && strncmp(s, SCHEME_PLAIN, strlen(SCHEME_PLAIN)) == 0)
            scheme = 0, skip = strlen(SCHEME_PLAIN);
        else
            scheme = -1, skip = 0;
        /* Echo the entry only when it cannot hold credentials (user:pw@). */
        bool echo = memchr(s, '@', len) == NULL && len < 200;
        const char *problem = NULL;
        if (len == 0)
            problem = "is empty";
        else if (scheme < 0)
            problem = "does not start with kafka+ssl:// or kafka://";
        else if (!host_port_ok(s + skip, len - skip))
            problem = "is not scheme://host:port (port 1..65535)";
        else if (scheme_seen >= 0 && scheme != scheme_seen)
            problem = "mixes kafka+ssl:// and kafka:// (all brokers must use one)";
        if (problem) {
            if (echo && len > 0)
                errstr_printf(errstr, errstr_size, "KAFKA_URL: entry %zu (\"%.*s\") %s", index,
                              (int)len, s, problem);
            else
                errstr_printf(errstr, errstr_size, "KAFKA_URL: entry %zu %s", index, problem);
            free(out);
            return KAFFE_ERR_ENV;
        }
        scheme_seen = scheme;
        if (used)
            out[used++] = ',';
        memcpy(out + used, s + skip, len - skip);
        used += len - skip;
        if (!end)
            break;
        s = end + 1;
    }
    out[used] = '\0';
    *bootstrap = out;
    *tls = scheme_seen == 1;
    return KAFFE_OK;
}

static void wipe_free(char *s) {
    if (!s)
        return;
    /* volatile: the wipe must not be optimised away as a dead store. */
    for (volatile char *p = s; *p; p++)
        *p = '\0';
    free(s);
}

void conf_heroku_clear(conf_heroku_t *h) {
    free(h->bootstrap);
    wipe_free(h->client_cert);
    wipe_free(h->client_key);
    free(h->trusted_cert);
    memset(h, 0, sizeof *h);
}

static const char *env_value(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

kaffe_status_t conf_heroku_read(conf_heroku_t *out, char *errstr, size_t errstr_size) {
    memset(out, 0, sizeof *out);
    const char *url = env_value("KAFKA_URL");
    if (!url) {
        errstr_printf(errstr, errstr_size,
                      "KAFKA_URL: not set (heroku_kafka_env=true reads the brokers from it, e.g. "
                      "kafka+ssl://host:9096,kafka+ssl://host2:9096)");
        return KAFFE_ERR_ENV;
    }
    kaffe_status_t st = conf_heroku_parse_url(url, &out->bootstrap, &out->tls, errstr, errstr_size);
    if (st != KAFFE_OK)
        return st;

    static const char *const pem_vars[] = {"KAFKA_CLIENT_CERT", "KAFKA_CLIENT_CERT_KEY",
                                           "KAFKA_TRUSTED_CERT"};
    if (!out->tls) {
        for (size_t i = 0; i < 3; i++) {
            if (env_value(pem_vars[i])) {
                errstr_printf(errstr, errstr_size,
                              "%s: set, but KAFKA_URL uses kafka:// (plaintext), so it would "
                              "not be used; use kafka+ssl:// or unset %s",
                              pem_vars[i], pem_vars[i]);
                conf_heroku_clear(out);
                return KAFFE_ERR_ENV;
            }
        }
        return KAFFE_OK;
    }
    const char *values[3];
    for (size_t i = 0; i < 3; i++) {
        values[i] = env_value(pem_vars[i]);
        if (!values[i]) {
            errstr_printf(errstr, errstr_size,
                          "%s: not set (KAFKA_URL uses kafka+ssl://, which needs "
                          "KAFKA_CLIENT_CERT, KAFKA_CLIENT_CERT_KEY and KAFKA_TRUSTED_CERT as "
                          "PEM text)",
                          pem_vars[i]);
            conf_heroku_clear(out);
            return KAFFE_ERR_ENV;
        }
    }
    char why[400];
    if ((st = conf_pem_check_certificates("KAFKA_CLIENT_CERT", values[0], why, sizeof why)) ||
        (st = conf_pem_check_private_key("KAFKA_CLIENT_CERT_KEY", values[1], NULL, why,
                                         sizeof why)) ||
        (st = conf_pem_check_certificates("KAFKA_TRUSTED_CERT", values[2], why, sizeof why)) ||
        (st = conf_pem_check_key_matches("KAFKA_CLIENT_CERT", values[0], "KAFKA_CLIENT_CERT_KEY",
                                         values[1], NULL, why, sizeof why))) {
        errstr_printf(errstr, errstr_size, "%s", why);
        conf_heroku_clear(out);
        return st == KAFFE_ERR_NOMEM ? st : KAFFE_ERR_ENV;
    }
    out->client_cert = strdup(values[0]);
    out->client_key = strdup(values[1]);
    out->trusted_cert = strdup(values[2]);
    if (!out->client_cert || !out->client_key || !out->trusted_cert) {
        conf_heroku_clear(out);
        return KAFFE_ERR_NOMEM;
    }
    return KAFFE_OK;
}
