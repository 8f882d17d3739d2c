/* Fuzz target: kaffe_conf_set / kaffe_conf_get on one configuration (src/conf).
 *
 * Input: a flag byte (picks the errstr size: none, 1, 24 or 400 bytes), then
 * lines "name=value" (split at the first '='; no '=' means an empty value;
 * nothing is trimmed), applied in order to one kaffe_conf_t (at most 32), so
 * that aliases, canonical rows and rdkafka.<property> passthroughs meet.
 *
 * Properties (beyond "no crash, leak or UB"):
 *  - the status is OK, UNKNOWN_CONF, INVALID_CONF or NOMEM;
 *  - after a successful set, kaffe_conf_get(name) returns value exactly;
 *  - after a failed set, kaffe_conf_get(name) returns what it did before
 *    (the configuration is unchanged);
 *  - a failure message is NUL-terminated inside errstr, nothing is written
 *    past it, and it never contains the value of a secret property (or of
 *    any secret set before; values that the current
 *    name/value contain, are not checked: they can match by chance; values
 *    under 12 bytes or without an upper-case letter, a lower-case letter and
 *    a digit are not checked: they can match the message's fixed words);
 *  - a duplicate answers kaffe_conf_get like the original.
 * Inputs that mention "plugin" are skipped: librdkafka dlopen()s
 * plugin.library.paths as soon as it is set. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/internal.h"
#include "conf/properties.h"
#include "fuzz_support.h"

#define MAX_LINES 32
#define GET_SIZE 1024

/* A secret distinctive enough that finding it in a message is not chance. */
static bool distinctive(const char *v) {
    bool upper = false, lower = false, digit = false;
    for (const char *c = v; *c; c++) {
        upper |= *c >= 'A' && *c <= 'Z';
        lower |= *c >= 'a' && *c <= 'z';
        digit |= *c >= '0' && *c <= '9';
    }
    return strlen(v) >= 12 && upper && lower && digit;
}

static bool is_secret(const char *name) {
    if (strncmp(name, "rdkafka.", 8) == 0) {
        return conf_rdkafka_name_is_secret(name + 8);
    }
    const property_t *p = property_find(name);
    return p && p->secret;
}

/* kaffe_conf_get into a malloc'ed string (NULL for UNKNOWN_CONF). */
static char *get(const kaffe_conf_t *conf, const char *name) {
    size_t need = 0;
    kaffe_status_t st = kaffe_conf_get(conf, name, NULL, &need);
    if (st == KAFFE_ERR_UNKNOWN_CONF) {
        return NULL;
    }
    FUZZ_CHECK(st == KAFFE_OK && need >= 1);
    char *v = malloc(need);
    FUZZ_CHECK(v);
    size_t size = need;
    FUZZ_CHECK(kaffe_conf_get(conf, name, v, &size) == KAFFE_OK && size == need);
    FUZZ_CHECK(strlen(v) + 1 == need);
    if (need > 1) { /* a short buffer is refused and names the size */
        size = need - 1;
        char *small = malloc(need - 1);
        FUZZ_CHECK(small);
        FUZZ_CHECK(kaffe_conf_get(conf, name, small, &size) == KAFFE_ERR_INVALID_ARG);
        FUZZ_CHECK(size == need);
        free(small);
    }
    return v;
}

static bool same(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || memmem(data, size, "plugin", 6)) {
        return 0;
    }
    static const size_t errstr_sizes[] = {0, 1, 24, 400};
    size_t errstr_size = errstr_sizes[data[0] & 3];
    char *text = fuzz_strndup(data + 1, size - 1);
    kaffe_conf_t *conf = kaffe_conf_new();
    FUZZ_CHECK(conf);
    const char *secrets[MAX_LINES];
    size_t secret_count = 0;

    char *line = text;
    for (int n = 0; line && n < MAX_LINES; n++) {
        char *next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        char *name = line, *value = "";
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        line = next;

        char *before = get(conf, name);
        char errstr[400 + 16];
        fuzz_errstr_prepare(errstr, sizeof errstr);
        kaffe_status_t st =
            kaffe_conf_set(conf, name, value, errstr_size ? errstr : NULL, errstr_size);
        FUZZ_CHECK(st == KAFFE_OK || st == KAFFE_ERR_UNKNOWN_CONF || st == KAFFE_ERR_INVALID_CONF ||
                   st == KAFFE_ERR_NOMEM);
        fuzz_errstr_check(errstr, errstr_size, sizeof errstr, st != KAFFE_OK);
        char *after = get(conf, name);
        if (st == KAFFE_OK) {
            FUZZ_CHECK(after && strcmp(after, value) == 0);
        } else {
            FUZZ_CHECK(same(before, after));
        }
        if (st != KAFFE_OK && errstr_size == 400) {
            if (is_secret(name) && distinctive(value) && !strstr(name, value)) {
                FUZZ_CHECK(!strstr(errstr, value));
            }
            for (size_t i = 0; i < secret_count; i++) {
                if (!strstr(name, secrets[i]) && !strstr(value, secrets[i])) {
                    FUZZ_CHECK(!strstr(errstr, secrets[i]));
                }
            }
        }
        if (st == KAFFE_OK && is_secret(name) && distinctive(value)) {
            secrets[secret_count++] = value; /* points into text: lives to the end */
        }
        free(before);
        free(after);
    }

    kaffe_conf_t *copy = kaffe_conf_dup(conf);
    FUZZ_CHECK(copy);
    for (size_t i = 0; i < property_count(); i++) {
        char *a = get(conf, property_at(i)->name), *b = get(copy, property_at(i)->name);
        FUZZ_CHECK(a && b && strcmp(a, b) == 0);
        free(a);
        free(b);
    }
    kaffe_conf_destroy(copy);
    kaffe_conf_destroy(conf);
    free(text);
    return 0;
}
