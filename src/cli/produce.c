/* kaffe produce -b BROKERS -t TOPIC [-p PARTITION] [--strategy S] [-k DELIM]
 *               [--batch N] [-c FILE] [-X name=value]...
 * One message per stdin line, each acknowledged by the broker before the
 * next line is read (or per batch of N lines); every failed line is named,
 * and the exit status is 1 if any failed. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "cli/cli.h"

#define MAX_BATCH CLI_PRODUCE_MAX_BATCH

static void produce_help(void) {
    printf(
        "usage: kaffe produce -b BROKERS -t TOPIC [options] < lines\n"
        "\n"
        "Produces one message per line of stdin (the newline is not part of it) with the\n"
        "kaffe producer. Each message is acknowledged by the broker (acks=all) before the\n"
        "next line is read, or, with --batch N, every N lines together. A line that fails\n"
        "is named on stderr (\"line 12: ...\") and the exit status is then 1.\n"
        "\n"
        "  -b, --brokers LIST     host:port[,host:port...] (may be omitted with\n"
        "                         heroku_kafka_env=true or endpoints in -c/-X)\n"
        "  -t, --topic TOPIC      the topic\n"
        "  -p, --partition N      this partition (the strategy is not used)\n"
        "  -s, --strategy S       round_robin (default), random, md5 (Kaffe-compatible) or\n"
        "                         murmur2 (Java-client compatible); md5 and murmur2 hash the key\n"
        "  -k, --key-delimiter D  each line is KEY D VALUE (split at the first D); a line\n"
        "                         without D has a null key\n"
        "  -B, --batch N          produce N lines at a time (1..%d, default 1), one status\n"
        "                         per line\n"
        "  -c, --config FILE      kaffe properties, name = value per line\n"
        "  -X name=value          a kaffe property, or rdkafka.<property> (repeatable)\n"
        "  -h, --help             this help\n"
        "\n"
        "Exit status: 0 when every line was acknowledged, 1 if any failed (or the\n"
        "brokers could not be used), 2 on bad usage.\n",
        MAX_BATCH);
}

typedef struct line {
    char *text;
    size_t len;
    long number;
} line_t;

/* Splits a line into key and value at the first delim (NULL: no key). */
static void split(const line_t *l, const char *delim, kaffe_produce_msg_t *m) {
    m->key = NULL;
    m->key_len = 0;
    m->value = l->text;
    m->value_len = l->len;
    if (!delim)
        return;
    size_t dlen = strlen(delim);
    for (size_t i = 0; i + dlen <= l->len; i++)
        if (memcmp(l->text + i, delim, dlen) == 0) {
            m->key = l->text;
            m->key_len = i;
            m->value = l->text + i + dlen;
            m->value_len = l->len - i - dlen;
            return;
        }
}

/* Failures that every later line would share: stop reading instead of
 * waiting out the produce timeout once per line. */
static bool is_fatal(kaffe_status_t status) {
    return status == KAFFE_ERR_TRANSPORT || status == KAFFE_ERR_AUTHENTICATION ||
           status == KAFFE_ERR_SSL || status == KAFFE_ERR_UNKNOWN_TOPIC ||
           status == KAFFE_ERR_UNKNOWN_PARTITION;
}

/* Produces lines[0..n) and reports each failure. Returns the failures;
 * *fatal is set when one of them ends the command. */
static long produce_lines(kaffe_producer_t *p, const char *topic, int32_t partition,
                          const char *delim, line_t *lines, size_t n, kaffe_produce_msg_t *msgs,
                          kaffe_produce_result_t *results, bool *fatal) {
    for (size_t i = 0; i < n; i++) {
        msgs[i] = (kaffe_produce_msg_t)KAFFE_PRODUCE_MSG_INIT;
        msgs[i].topic = topic;
        msgs[i].partition = partition;
        split(&lines[i], delim, &msgs[i]);
    }
    if (n == 1)
        results[0].status = kaffe_produce_sync_msg(p, &msgs[0], &results[0]);
    else
        kaffe_produce_sync_batch(p, msgs, n, results);
    long failed = 0;
    for (size_t i = 0; i < n; i++)
        if (results[i].status != KAFFE_OK) {
            failed++;
            fprintf(stderr, "kaffe produce: line %ld: %s (%s)\n", lines[i].number,
                    kaffe_strerror(results[i].status), kaffe_err_name(results[i].status));
            *fatal |= is_fatal(results[i].status);
        }
    return failed;
}

int cli_parse_produce_args(int argc, char **argv, cli_produce_args_t *a, char *err,
                           size_t err_size) {
    static const struct option options[] = {{"topic", required_argument, NULL, 't'},
                                            {"partition", required_argument, NULL, 'p'},
                                            {"strategy", required_argument, NULL, 's'},
                                            {"key-delimiter", required_argument, NULL, 'k'},
                                            {"batch", required_argument, NULL, 'B'},
                                            CLI_CLIENT_LONG_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    *a = (cli_produce_args_t){.partition = KAFFE_PARTITION_ANY, .batch = 1};
    int opt;
    optind = 0; /* 0, not 1: glibc then also forgets a previous parse's state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":t:p:s:k:B:" CLI_CLIENT_OPTSTRING, options, NULL)) !=
           -1) {
        switch (opt) {
            case 't':
                a->topic = optarg;
                break;
            case 'p':
                if (cli_parse_long(optarg, 0, INT32_MAX, &a->partition))
                    return cli_args_error(err, err_size,
                                          "--partition: expected a partition number, "
                                          "got \"%s\"",
                                          optarg);
                break;
            case 's':
                if (strcmp(optarg, "round_robin") && strcmp(optarg, "random") &&
                    strcmp(optarg, "md5") && strcmp(optarg, "murmur2"))
                    return cli_args_error(err, err_size,
                                          "--strategy: expected round_robin, random, md5 or "
                                          "murmur2, got \"%s\"",
                                          optarg);
                a->strategy = optarg;
                break;
            case 'k':
                if (!*optarg)
                    return cli_args_error(err, err_size, "--key-delimiter: empty");
                a->delim = optarg;
                break;
            case 'B':
                if (cli_parse_long(optarg, 1, MAX_BATCH, &a->batch))
                    return cli_args_error(err, err_size, "--batch: expected 1..%d, got \"%s\"",
                                          MAX_BATCH, optarg);
                break;
            default:
                if (cli_parse_client_option(opt, argv, &a->client, err, err_size) != CLI_EXIT_OK)
                    return CLI_EXIT_USAGE;
                if (a->client.help)
                    return CLI_EXIT_OK;
                break;
        }
    }
    if (optind < argc)
        return cli_args_error(err, err_size, "unexpected argument \"%s\"", argv[optind]);
    if (!a->topic || !*a->topic)
        return cli_args_error(err, err_size, "-t TOPIC is required");
    return CLI_EXIT_OK;
}

int cli_produce(int argc, char **argv) {
    cli_produce_args_t a;
    char usage[512];
    if (cli_parse_produce_args(argc, argv, &a, usage, sizeof usage) != CLI_EXIT_OK)
        return cli_usage_error("produce", "%s", usage);
    if (a.client.help) {
        produce_help();
        return CLI_EXIT_OK;
    }
    const char *brokers = a.client.brokers, *topic = a.topic, *strategy = a.strategy,
               *delim = a.delim, *config = a.client.config;
    char **props = a.client.props;
    size_t prop_count = a.client.prop_count;
    long partition = a.partition, batch = a.batch;

    kaffe_conf_t *conf = kaffe_conf_new();
    int rc = cli_conf_apply("produce", conf, config, props, prop_count);
    if (rc == CLI_EXIT_OK && brokers)
        rc = cli_conf_set("produce", conf, "endpoints", brokers);
    if (rc == CLI_EXIT_OK)
        rc = cli_conf_set("produce", conf, "topics", topic);
    if (rc == CLI_EXIT_OK && strategy)
        rc = cli_conf_set("produce", conf, "partition_strategy", strategy);
    if (rc == CLI_EXIT_OK && !cli_conf_has_brokers(conf))
        rc = cli_usage_error("produce", "-b BROKERS is required (or endpoints or "
                                        "heroku_kafka_env=true in -c/-X)");
    if (rc != CLI_EXIT_OK) {
        kaffe_conf_destroy(conf);
        return rc;
    }
    char err[512];
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    if (!p) {
        kaffe_conf_destroy(conf);
        return cli_usage_error("produce", "%s", err);
    }

    line_t *lines = calloc((size_t)batch, sizeof *lines);
    kaffe_produce_msg_t *msgs = calloc((size_t)batch, sizeof *msgs);
    kaffe_produce_result_t *results = calloc((size_t)batch, sizeof *results);
    long number = 0, failed = 0;
    bool fatal = false;
    size_t n = 0;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while (!fatal && (len = getline(&buf, &cap, stdin)) >= 0) {
        if (len > 0 && buf[len - 1] == '\n')
            len--;
        line_t *l = &lines[n++];
        l->number = ++number;
        l->len = (size_t)len;
        l->text = malloc((size_t)len + 1);
        memcpy(l->text, buf, (size_t)len);
        if (n == (size_t)batch) {
            failed +=
                produce_lines(p, topic, (int32_t)partition, delim, lines, n, msgs, results, &fatal);
            for (size_t i = 0; i < n; i++)
                free(lines[i].text);
            n = 0;
        }
    }
    if (n > 0)
        failed +=
            produce_lines(p, topic, (int32_t)partition, delim, lines, n, msgs, results, &fatal);
    for (size_t i = 0; i < n; i++)
        free(lines[i].text);
    free(buf);
    free(lines);
    free(msgs);
    free(results);
    kaffe_producer_destroy(p);
    if (fatal) {
        fprintf(stderr, "kaffe produce: stopped after line %ld; later lines were not read\n",
                number);
        return CLI_EXIT_FAILURE;
    }
    if (failed) {
        fprintf(stderr, "kaffe produce: %ld of %ld messages failed\n", failed, number);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}
