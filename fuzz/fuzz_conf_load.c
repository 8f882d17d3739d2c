/* Fuzz target: the configuration file parser, kaffe_conf_load (src/conf).
 *
 * The input is the file's content, written to a memfd and loaded through its
 * /proc/self/fd path (no disk I/O). Then the loaded configuration is
 * duplicated, validated for both roles and turned into a librdkafka
 * configuration, as kaffe_consumer_new / kaffe_producer_new would.
 *
 * Properties: no crash, leak or UB; on failure the message is
 * NUL-terminated, starts with "path:line: " and stays inside errstr; a
 * duplicate validates exactly like the original.
 *
 * Inputs that mention "plugin" are skipped: librdkafka dlopen()s
 * plugin.library.paths as soon as it is set. Inputs that contain '/' are
 * loaded but not validated: validation reads the PEM files the
 * configuration names (a path such as /dev/stdin would block). */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf/conf.h"
#include "fuzz_support.h"

static int file_fd = -1;
static char file_path[64];

static int handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return 0;
}

static void check_validation(const kaffe_conf_t *conf, const kaffe_conf_t *copy) {
    static const conf_role_t roles[] = {CONF_ROLE_CONSUMER, CONF_ROLE_PRODUCER};
    for (size_t r = 0; r < 2; r++) {
        char why[512], why_copy[512];
        kaffe_status_t st = conf_validate(conf, roles[r], why, sizeof why);
        kaffe_status_t st_copy = conf_validate(copy, roles[r], why_copy, sizeof why_copy);
        FUZZ_CHECK(st == st_copy);
        if (st != KAFFE_OK) {
            FUZZ_CHECK(memchr(why, '\0', sizeof why) && strcmp(why, why_copy) == 0);
            continue;
        }
        rd_kafka_conf_t *rk = NULL;
        st = conf_build_rdkafka(conf, roles[r], &rk, why, sizeof why);
        FUZZ_CHECK((st == KAFFE_OK) == (rk != NULL));
        if (rk) {
            rd_kafka_conf_destroy(rk);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (memmem(data, size, "plugin", 6)) {
        return 0;
    }
    if (file_fd < 0) {
        file_fd = memfd_create("kaffe-conf", 0);
        FUZZ_CHECK(file_fd >= 0);
        snprintf(file_path, sizeof file_path, "/proc/self/fd/%d", file_fd);
    }
    FUZZ_CHECK(ftruncate(file_fd, 0) == 0);
    FUZZ_CHECK(pwrite(file_fd, data, size, 0) == (ssize_t)size);

    kaffe_conf_t *conf = kaffe_conf_new();
    FUZZ_CHECK(conf);
    kaffe_conf_set_message_handler(conf, handler, NULL);
    char errstr[256 + 16];
    fuzz_errstr_prepare(errstr, sizeof errstr);
    kaffe_status_t st = kaffe_conf_load(conf, file_path, errstr, 256);
    fuzz_errstr_check(errstr, 256, sizeof errstr, st != KAFFE_OK);
    if (st != KAFFE_OK) {
        FUZZ_CHECK(st == KAFFE_ERR_INVALID_CONF || st == KAFFE_ERR_UNKNOWN_CONF ||
                   st == KAFFE_ERR_NOMEM);
        FUZZ_CHECK(strncmp(errstr, file_path, strlen(file_path)) == 0 &&
                   errstr[strlen(file_path)] == ':');
    }

    kaffe_conf_t *copy = kaffe_conf_dup(conf);
    FUZZ_CHECK(copy);
    if (!memchr(data, '/', size)) {
        check_validation(conf, copy);
    }
    kaffe_conf_destroy(copy);
    kaffe_conf_destroy(conf);
    return 0;
}
