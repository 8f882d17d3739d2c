/* kaffe produce -b BROKERS -t TOPIC [-p PARTITION] [--strategy S] [-k DELIM]
 *               [--sync | --batch N | --in-flight N] [-c FILE] [-X name=value]...
 * One message per stdin line. By default the lines are pipelined: produced
 * asynchronously with at most --in-flight N unacknowledged at a time. --sync
 * waits for each line's acknowledgement before reading the next, --batch N
 * for every N lines. In every mode each failed line is named by its number,
 * and the exit status is 1 if any failed. */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "cli/cli.h"
#include "conf/conf.h"

#define MAX_BATCH CLI_PRODUCE_MAX_BATCH

static void produce_help(void) {
    printf("usage: kaffe produce -b BROKERS -t TOPIC [options] < lines\n"
           "\n"
           "Produces one message per line of stdin (the newline is not part of it) with the\n"
           "kaffe producer, acks=all. By default the lines are pipelined: produced\n"
           "asynchronously, at most --in-flight lines unacknowledged at a time. A line that\n"
           "fails is named on stderr (\"line 12: ...\", in the order the failures are\n"
           "known) and the exit status is then 1.\n"
           "\n"
           "  -b, --brokers LIST     host:port[,host:port...] (may be omitted with\n"
           "                         heroku_kafka_env=true or endpoints in -c/-X)\n"
           "  -t, --topic TOPIC      the topic\n"
           "  -p, --partition N      this partition (the strategy is not used)\n"
           "  -s, --strategy S       round_robin, random, md5 (Kaffe-compatible) or murmur2\n"
           "                         (Java-client compatible); md5 and murmur2 hash the key.\n"
           "                         Default: murmur2 with -k, so a key lands on the partition\n"
           "                         the Java client (and Kafka Streams, kafka-console-producer)\n"
           "                         chooses for it; round_robin without -k. Use md5 for\n"
           "                         topics partitioned by Elixir Kaffe. A partition_strategy\n"
           "                         set with -c/-X is kept.\n"
           "  -k, --key-delimiter D  each line is KEY D VALUE (split at the first D); a line\n"
           "                         without D has a null key\n"
           "      --in-flight N      pipelined mode: at most N lines unacknowledged (1..%d,\n"
           "                         default %d)\n"
           "      --sync             one line at a time: each acknowledged before the next is\n"
           "                         read (slow: one round trip per line)\n"
           "  -B, --batch N          N lines at a time (1..%d), each batch acknowledged before\n"
           "                         the next is read\n"
           "  -c, --config FILE      kaffe properties, name = value per line\n"
           "  -X name=value          a kaffe property, or rdkafka.<property> (repeatable)\n"
           "  -h, --help             this help\n"
           "\n"
           "Per partition the messages keep the order of the lines in every mode (as far as\n"
           "librdkafka's retries allow: set rdkafka.enable.idempotence=true for strict order).\n"
           "Exit status: 0 when every line was acknowledged, 1 if any failed (or the\n"
           "brokers could not be used), 2 on bad usage.\n",
           CLI_PRODUCE_MAX_IN_FLIGHT, CLI_PRODUCE_DEFAULT_IN_FLIGHT, MAX_BATCH);
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
    return status == KAFFE_ERR_TRANSPORT || status == KAFFE_ERR_ALL_BROKERS_DOWN ||
           status == KAFFE_ERR_AUTHENTICATION || status == KAFFE_ERR_SSL ||
           status == KAFFE_ERR_UNKNOWN_TOPIC || status == KAFFE_ERR_UNKNOWN_PARTITION;
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

/* The pipelined mode's shared state: the reading thread and the producer's
 * delivery thread (delivered()) meet under lock. */
typedef struct pipeline {
    pthread_mutex_t lock;
    pthread_cond_t room; /* signalled when a waiting reader may go on */
    bool waiting;        /* the reader waits for room; under lock */
    long in_flight;      /* queued, callback not yet run; under lock */
    long max_in_flight;  /* immutable */
    long failed;         /* under lock */
    bool fatal;          /* a failure every later line would share; under lock */
} pipeline_t;

/* One queued line: what its delivery callback needs (malloc'd by the reading
 * thread, freed by the callback). */
typedef struct queued_line {
    pipeline_t *pl;
    long number;
} queued_line_t;

static void report(long number, kaffe_status_t status) {
    fprintf(stderr, "kaffe produce: line %ld: %s (%s)\n", number, kaffe_strerror(status),
            kaffe_err_name(status));
}

/* Counts an outcome and makes room for the next line. Either thread. */
static void settle(pipeline_t *pl, long number, kaffe_status_t status) {
    pthread_mutex_lock(&pl->lock);
    if (status != KAFFE_OK) {
        pl->failed++;
        pl->fatal |= is_fatal(status);
        report(number, status);
    }
    /* Wake the reader only once a quarter of the window is free (or on a
     * fatal failure), not for every acknowledgement. */
    pl->in_flight--;
    if (pl->waiting && (pl->in_flight <= pl->max_in_flight - pl->max_in_flight / 4 || pl->fatal)) {
        pl->waiting = false;
        pthread_cond_signal(&pl->room);
    }
    pthread_mutex_unlock(&pl->lock);
}

/* kaffe_delivery_cb_t: on the producer's delivery thread, once per line. */
static void delivered(const kaffe_delivery_report_t *r, void *opaque) {
    queued_line_t *q = opaque;
    settle(q->pl, q->number, r->status);
    free(q);
}

/* Queues one line once fewer than max_in_flight are unacknowledged. Returns
 * false (nothing queued) when a fatal failure was seen: stop reading. */
static bool pipeline_line(kaffe_producer_t *p, pipeline_t *pl, const kaffe_produce_msg_t *m,
                          long number) {
    pthread_mutex_lock(&pl->lock);
    while (pl->in_flight >= pl->max_in_flight && !pl->fatal) {
        pl->waiting = true;
        pthread_cond_wait(&pl->room, &pl->lock);
    }
    bool fatal = pl->fatal;
    if (!fatal)
        pl->in_flight++;
    pthread_mutex_unlock(&pl->lock);
    if (fatal)
        return false;
    queued_line_t *q = malloc(sizeof *q);
    if (!q) {
        settle(pl, number, KAFFE_ERR_NOMEM);
        return true;
    }
    *q = (queued_line_t){.pl = pl, .number = number};
    kaffe_status_t st = kaffe_produce_async(p, m, delivered, q);
    if (st != KAFFE_OK) { /* not queued: no callback will come */
        free(q);
        settle(pl, number, st);
    }
    return true;
}

int cli_parse_produce_args(int argc, char **argv, cli_produce_args_t *a, char *err,
                           size_t err_size) {
    static const struct option options[] = {{"topic", required_argument, NULL, 't'},
                                            {"partition", required_argument, NULL, 'p'},
                                            {"strategy", required_argument, NULL, 's'},
                                            {"key-delimiter", required_argument, NULL, 'k'},
                                            {"batch", required_argument, NULL, 'B'},
                                            {"sync", no_argument, NULL, 'S'},
                                            {"in-flight", required_argument, NULL, 'I'},
                                            CLI_CLIENT_LONG_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    *a = (cli_produce_args_t){.partition = KAFFE_PARTITION_ANY,
                              .in_flight = CLI_PRODUCE_DEFAULT_IN_FLIGHT};
    bool in_flight_given = false;
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
            case 'S':
                a->sync = true;
                break;
            case 'I':
                if (cli_parse_long(optarg, 1, CLI_PRODUCE_MAX_IN_FLIGHT, &a->in_flight))
                    return cli_args_error(err, err_size, "--in-flight: expected 1..%d, got \"%s\"",
                                          CLI_PRODUCE_MAX_IN_FLIGHT, optarg);
                in_flight_given = true;
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
    if ((a->sync && a->batch) || ((a->sync || a->batch) && in_flight_given))
        return cli_args_error(err, err_size,
                              "--sync, --batch and --in-flight are different modes: give one");
    return CLI_EXIT_OK;
}

/* The pipelined mode: reads every line and queues it. Returns the failures;
 * *fatal is set when one of them ended the reading. */
static long pipeline_stdin(kaffe_producer_t *p, const cli_produce_args_t *a, long *number,
                           bool *fatal) {
    pipeline_t pl = {.max_in_flight = a->in_flight};
    pthread_mutex_init(&pl.lock, NULL);
    pthread_cond_init(&pl.room, NULL);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&buf, &cap, stdin)) >= 0) {
        if (len > 0 && buf[len - 1] == '\n')
            len--;
        line_t l = {.text = buf, .len = (size_t)len, .number = ++*number};
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.topic = a->topic;
        m.partition = (int32_t)a->partition;
        split(&l, a->delim, &m);
        if (!pipeline_line(p, &pl, &m, l.number)) {
            --*number; /* not produced: the last line read is the one before */
            break;
        }
    }
    free(buf);
    /* Every queued line gets its callback before the flush returns. */
    kaffe_producer_flush(p, -1);
    pthread_mutex_lock(&pl.lock);
    long failed = pl.failed;
    *fatal = pl.fatal;
    pthread_mutex_unlock(&pl.lock);
    pthread_cond_destroy(&pl.room);
    pthread_mutex_destroy(&pl.lock);
    return failed;
}

/* --sync (batch 1) and --batch N: each group of lines acknowledged before the
 * next is read. Returns the failures; *fatal as above. */
static long confirm_stdin(kaffe_producer_t *p, const cli_produce_args_t *a, long *number,
                          bool *fatal) {
    size_t batch = a->batch ? (size_t)a->batch : 1;
    line_t *lines = calloc(batch, sizeof *lines);
    kaffe_produce_msg_t *msgs = calloc(batch, sizeof *msgs);
    kaffe_produce_result_t *results = calloc(batch, sizeof *results);
    long failed = 0;
    size_t n = 0;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    while (!*fatal && (len = getline(&buf, &cap, stdin)) >= 0) {
        if (len > 0 && buf[len - 1] == '\n')
            len--;
        line_t *l = &lines[n++];
        l->number = ++*number;
        l->len = (size_t)len;
        l->text = malloc((size_t)len + 1);
        memcpy(l->text, buf, (size_t)len);
        if (n == batch) {
            failed += produce_lines(p, a->topic, (int32_t)a->partition, a->delim, lines, n, msgs,
                                    results, fatal);
            for (size_t i = 0; i < n; i++)
                free(lines[i].text);
            n = 0;
        }
    }
    if (n > 0)
        failed += produce_lines(p, a->topic, (int32_t)a->partition, a->delim, lines, n, msgs,
                                results, fatal);
    for (size_t i = 0; i < n; i++)
        free(lines[i].text);
    free(buf);
    free(lines);
    free(msgs);
    free(results);
    return failed;
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

    kaffe_conf_t *conf = kaffe_conf_new();
    int rc = cli_conf_apply("produce", conf, a.client.config, a.client.props, a.client.prop_count);
    if (rc == CLI_EXIT_OK && a.client.brokers)
        rc = cli_conf_set("produce", conf, "endpoints", a.client.brokers);
    if (rc == CLI_EXIT_OK)
        rc = cli_conf_set("produce", conf, "topics", a.topic);
    if (rc == CLI_EXIT_OK && a.strategy)
        rc = cli_conf_set("produce", conf, "partition_strategy", a.strategy);
    else if (rc == CLI_EXIT_OK && a.delim && !conf_is_set(conf, "partition_strategy"))
        rc = cli_conf_set("produce", conf, "partition_strategy", "murmur2");
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

    long number = 0;
    bool fatal = false;
    long failed = a.sync || a.batch ? confirm_stdin(p, &a, &number, &fatal)
                                    : pipeline_stdin(p, &a, &number, &fatal);
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
