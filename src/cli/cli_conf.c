/* Options shared by the subcommands: usage errors, -c FILE, -X name=value,
 * numbers, and the stop signals. Every failure is a one-line usage error
 * (exit 2). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cli_usage_error(const char *sub, const char *fmt, ...) {
    fprintf(stderr, "kaffe %s: ", sub);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see kaffe %s --help)\n", sub);
    return CLI_EXIT_USAGE;
}

int cli_args_error(char *err, size_t err_size, const char *fmt, ...) {
    if (err_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return CLI_EXIT_USAGE;
}

void cli_block_stop_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int cli_bad_option_message(int opt, char **argv, char *err, size_t err_size) {
    if (opt == ':')
        return cli_args_error(err, err_size, "option \"%s\" needs a value", argv[optind - 1]);
    if (optopt)
        return cli_args_error(err, err_size, "unknown option \"-%c\"", optopt);
    return cli_args_error(err, err_size, "unknown option \"%s\"", argv[optind - 1]);
}

int cli_bad_option(const char *sub, int opt, char **argv) {
    char err[512];
    cli_bad_option_message(opt, argv, err, sizeof err);
    return cli_usage_error(sub, "%s", err);
}

int cli_parse_client_option(int opt, char **argv, cli_client_args_t *a, char *err,
                            size_t err_size) {
    switch (opt) {
        case 'b':
            a->brokers = optarg;
            return CLI_EXIT_OK;
        case 'c':
            a->config = optarg;
            return CLI_EXIT_OK;
        case 'X':
            if (a->prop_count == CLI_MAX_PROPS)
                return cli_args_error(err, err_size, "-X: at most %d properties", CLI_MAX_PROPS);
            a->props[a->prop_count++] = optarg;
            return CLI_EXIT_OK;
        case 'h':
            a->help = true;
            return CLI_EXIT_OK;
        default:
            return cli_bad_option_message(opt, argv, err, err_size);
    }
}

int cli_parse_long(const char *s, long min, long max, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_conf_set(const char *sub, kaffe_conf_t *conf, const char *name, const char *value) {
    char err[512];
    if (kaffe_conf_set(conf, name, value, err, sizeof err) != KAFFE_OK)
        return cli_usage_error(sub, "%s", err);
    return CLI_EXIT_OK;
}

int cli_conf_apply(const char *sub, kaffe_conf_t *conf, const char *file, char **props,
                   size_t prop_count) {
    char err[512];
    if (file && kaffe_conf_load(conf, file, err, sizeof err) != KAFFE_OK)
        return cli_usage_error(sub, "-c: %s", err);
    for (size_t i = 0; i < prop_count; i++) {
        const char *eq = strchr(props[i], '=');
        if (!eq || eq == props[i])
            return cli_usage_error(sub, "-X: expected name=value, got \"%s\"", props[i]);
        char name[256];
        size_t len = (size_t)(eq - props[i]);
        if (len >= sizeof name)
            return cli_usage_error(sub, "-X: name too long");
        memcpy(name, props[i], len);
        name[len] = '\0';
        int rc = cli_conf_set(sub, conf, name, eq + 1);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    return CLI_EXIT_OK;
}

bool cli_conf_has_brokers(const kaffe_conf_t *conf) {
    char value[4096];
    size_t size = sizeof value;
    if (kaffe_conf_get(conf, "heroku_kafka_env", value, &size) == KAFFE_OK &&
        strcmp(value, "true") == 0)
        return true;
    size = sizeof value;
    return kaffe_conf_get(conf, "endpoints", value, &size) == KAFFE_OK && value[0] != '\0';
}
