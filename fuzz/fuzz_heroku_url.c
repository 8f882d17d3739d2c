/* Fuzz target: the Heroku KAFKA_URL parser, conf_heroku_parse_url
 * (src/conf/heroku.h), called directly with the input as the URL (no
 * environment involved).
 *
 * Properties (beyond "no crash, leak or UB"):
 *  - OK or KAFFE_ERR_ENV (or NOMEM); on failure *bootstrap is NULL and the
 *    message starts with "KAFKA_URL: ", is NUL-terminated inside errstr and
 *    never contains '@' (an entry that may hold user:password@ is not echoed);
 *  - on success the bootstrap list is no longer than the URL, has one entry
 *    per URL entry, TLS is what the first entry's scheme says, the list holds
 *    only host names, IPv4 and bracketed IPv6 addresses (hex digits, ':' and
 *    '.' inside the brackets) and ports, and is accepted by the endpoints
 *    property (what a user
 *    would have written by hand; a Heroku URL must not produce a list that
 *    kaffe rejects elsewhere). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/conf.h>

#include "conf/heroku.h"
#include "fuzz_support.h"

static size_t count_char(const char *s, char c) {
    size_t n = 0;
    for (; *s; s++) {
        n += *s == c;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *url = fuzz_strndup(data, size);
    char *bootstrap = (char *)1; /* must be overwritten */
    bool tls = false;
    char errstr[300 + 16];
    fuzz_errstr_prepare(errstr, sizeof errstr);
    kaffe_status_t st = conf_heroku_parse_url(url, &bootstrap, &tls, errstr, 300);
    fuzz_errstr_check(errstr, 300, sizeof errstr, st != KAFFE_OK);
    if (st != KAFFE_OK) {
        FUZZ_CHECK(st == KAFFE_ERR_ENV || st == KAFFE_ERR_NOMEM);
        FUZZ_CHECK(bootstrap == NULL);
        if (st == KAFFE_ERR_ENV) {
            FUZZ_CHECK(strncmp(errstr, "KAFKA_URL: ", 11) == 0);
            FUZZ_CHECK(strchr(errstr, '@') == NULL);
        }
        free(url);
        return 0;
    }
    FUZZ_CHECK(bootstrap != NULL);
    FUZZ_CHECK(strlen(bootstrap) <= strlen(url));
    FUZZ_CHECK(count_char(bootstrap, ',') == count_char(url, ','));
    const char *first = url + strspn(url, " \t\n\v\f\r");
    FUZZ_CHECK(tls == (strncmp(first, "kafka+ssl://", 12) == 0));
    /* Host names, IPv4 and bracketed IPv6 addresses: nothing else reaches
     * librdkafka (which logs broker names: no "user:password@"). */
    FUZZ_CHECK(strspn(bootstrap, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                 ".-_:[],") == strlen(bootstrap));
    for (const char *open = strchr(bootstrap, '['); open; open = strchr(open + 1, '[')) {
        size_t inside = strcspn(open + 1, "]");
        FUZZ_CHECK(strspn(open + 1, "0123456789abcdefABCDEF:.") == inside);
    }

    kaffe_conf_t *conf = kaffe_conf_new();
    FUZZ_CHECK(conf);
    char why[300];
    if (kaffe_conf_set(conf, "endpoints", bootstrap, why, sizeof why) != KAFFE_OK) {
        fprintf(stderr, "KAFKA_URL \"%s\" gives bootstrap \"%s\", which endpoints rejects: %s\n",
                url, bootstrap, why);
        abort();
    }
    kaffe_conf_destroy(conf);
    free(bootstrap);
    free(url);
    return 0;
}
