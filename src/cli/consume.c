/* kaffe consume -b BROKERS -t TOPIC[,TOPIC...] -g GROUP [--earliest]
 *               [--async [--ack-delay-ms MIN:MAX]] [--workers N]
 *               [--ordering partition|key|unordered] [--format json|value]
 *               [--count N] [--idle-exit-ms MS] [--metrics-addr HOST:PORT]
 *               [-c FILE] [-X name=value]...
 * Prints every handled message; stops on SIGINT/SIGTERM, after --count
 * messages or --idle-exit-ms without one, always with a final commit.
 * --metrics-addr serves the consumer's stats at http://HOST:PORT/metrics
 * (Prometheus text format) while it runs. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include <kaffe/kaffe.h>

#include "cli/cli.h"
#include "cli/delayed_ack.h"
#include "cli/json_line.h"
#include "cli/line_out.h"
#include "cli/metrics_http.h"
#include "common/clock.h"

/* Shared by the handler (worker threads), the delayed-ack thread, the error
 * callback (kaffe's poll thread) and the main thread. */
typedef struct consume {
    kaffe_consumer_t *consumer;
    delayed_ack_t *acker; /* async mode only */
    /* stdout, buffered: a message is acked (or, with --async, scheduled for
     * its delayed ack) only once its line was written out. */
    line_out_t *out;
    bool json;
    long count; /* 0: no limit */
    /* Messages printed. Relaxed: a count; the main thread only compares it. */
    atomic_long printed;
    /* CLOCK_MONOTONIC ms of the last message, or of the first assignment;
     * 0 before either. Relaxed: a clock reading, no data hangs on it. */
    atomic_llong last_activity_ms;
    /* A broker error that ends the command (exit 1): set by the error
     * callback, read by main. Relaxed: the error is printed already, only
     * the flag is read. */
    atomic_int fatal;
} consume_t;

static void consume_help(void) {
    printf("usage: kaffe consume -b BROKERS -t TOPIC[,TOPIC...] -g GROUP [options]\n"
           "\n"
           "Consumes with the kaffe consumer and prints every handled message. Offsets are\n"
           "committed as the library does (only over handled messages), and once more on exit:\n"
           "on SIGINT/SIGTERM, after --count messages, or after --idle-exit-ms without one.\n"
           "\n"
           "  -b, --brokers LIST       host:port[,host:port...] (may be omitted with\n"
           "                           heroku_kafka_env=true or endpoints in -c/-X)\n"
           "  -t, --topic LIST         topics, comma-separated\n"
           "  -g, --group GROUP        consumer group\n"
           "  -e, --earliest           start from the earliest message when the group has no\n"
           "                           committed offset (committed offsets always win)\n"
           "  -a, --async              ack from another thread after a random delay, so acks\n"
           "                           arrive out of order (async_message_ack=true)\n"
           "  -d, --ack-delay-ms MIN:MAX  the delay range for --async (default 0:10)\n"
           "  -w, --workers N          worker threads (default 8)\n"
           "  -o, --ordering MODE      partition (default), key or unordered\n"
           "  -f, --format FORMAT      json (default): one object per line with topic,\n"
           "                           partition, offset, key, value, timestamp (ms or null);\n"
           "                           a key or value that is not valid UTF-8 is written as\n"
           "                           key_base64/value_base64 instead; a null one as null.\n"
           "                           value: the value's bytes and a newline.\n"
           "  -n, --count N            exit after N messages (later ones are not committed)\n"
           "  -i, --idle-exit-ms MS    exit after MS without a message (counted from the\n"
           "                           first partition assignment)\n"
           "  -m, --metrics-addr HOST:PORT  serve the consumer's stats at\n"
           "                           http://HOST:PORT/metrics (Prometheus text format;\n"
           "                           HOST an IPv4 address, e.g. 127.0.0.1:9400; port 0:\n"
           "                           any free port, printed on stderr)\n"
           "  -c, --config FILE        kaffe properties, name = value per line\n"
           "  -X name=value            a kaffe property, or rdkafka.<property> (repeatable)\n"
           "  -h, --help               this help\n"
           "\n"
           "Exit status: 0 on a clean stop, 1 on a broker or consumer error, 2 on bad usage.\n");
}

/* Buffers m's line; m is acked once the line is written out. */
static void print_message(consume_t *st, kaffe_message_t *m) {
    size_t klen = 0, vlen = 0;
    const void *key = kaffe_message_key(m, &klen);
    const void *value = kaffe_message_value(m, &vlen);
    json_buf_t b = {0};
    if (!st->json) {
        if (value)
            json_buf_raw(&b, value, vlen);
        json_buf_raw(&b, "\n", 1);
    } else {
        json_buf_raw(&b, "{", 1);
        json_field_str(&b, false, "topic", kaffe_message_topic(m));
        json_field_int(&b, true, "partition", kaffe_message_partition(m));
        json_field_int(&b, true, "offset", kaffe_message_offset(m));
        json_field_bytes(&b, true, "key", key, klen);
        json_field_bytes(&b, true, "value", value, vlen);
        int64_t ts = kaffe_message_timestamp(m, NULL);
        if (ts >= 0)
            json_field_int(&b, true, "timestamp", ts);
        else
            json_field_null(&b, true, "timestamp");
        json_buf_raw(&b, "}\n", 2);
    }
    line_out_push(st->out, b.data, b.len, m);
    json_buf_free(&b);
}

/* The writing thread, once m's line is out: the ack (or its delayed ack). */
static void line_written(void *item, void *opaque) {
    consume_t *st = opaque;
    if (st->acker)
        delayed_ack_push(st->acker, item);
    else
        kaffe_consumer_ack(st->consumer, item);
}

/* The handler's failure value for a message past --count (any value but
 * KAFFE_OK is a failure; the consumer reports it as KAFFE_ERR_HANDLER). */
#define PAST_COUNT 1

/* Whether --count messages were printed: a handler failure is then ours. */
static bool past_count(consume_t *st) {
    return st->count > 0 && atomic_load_explicit(&st->printed, memory_order_relaxed) > st->count;
}

/* Worker threads. Past --count, a message is refused (not printed, not
 * acked): the consumer then stops and commits nothing at or past it, so the
 * next consumer of the group gets it. */
static int handle(kaffe_message_t *m, void *opaque) {
    consume_t *st = opaque;
    atomic_store_explicit(&st->last_activity_ms, clock_now_ms(), memory_order_relaxed);
    if (st->count > 0 &&
        atomic_fetch_add_explicit(&st->printed, 1, memory_order_relaxed) >= st->count)
        return PAST_COUNT;
    if (st->count == 0)
        atomic_fetch_add_explicit(&st->printed, 1, memory_order_relaxed);
    print_message(st, m);
    return KAFFE_OK; /* accepted: acked by line_written */
}

/* The delayed-ack thread (or main, at exit). */
static void ack_later(void *item, void *opaque) {
    consume_t *st = opaque;
    kaffe_consumer_ack(st->consumer, item);
}

static bool is_fatal(int status) {
    switch (status) {
        case RD_KAFKA_RESP_ERR__FATAL:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        case KAFFE_ERR_ALL_BROKERS_DOWN:
        case KAFFE_ERR_AUTHENTICATION:
        case KAFFE_ERR_SSL:
        case KAFFE_ERR_UNKNOWN_TOPIC:
            return true;
        default:
            return false;
    }
}

/* kaffe's poll thread (or a worker). Logs every error; ends the command on
 * those a consumer cannot get past by retrying. */
static void on_error(int status, const char *reason, void *opaque) {
    consume_t *st = opaque;
    if (status == KAFFE_ERR_HANDLER && past_count(st))
        return; /* our own refusal past --count: expected */
    fprintf(stderr, "kaffe consume: %s: %s\n", kaffe_err_name(status), reason);
    if (!is_fatal(status))
        return;
    atomic_store_explicit(&st->fatal, status, memory_order_relaxed);
}

static void on_rebalance(kaffe_consumer_t *c, int assigned, const char *topic, int32_t partition,
                         void *opaque) {
    (void)c, (void)topic, (void)partition;
    consume_t *st = opaque;
    long long zero = 0;
    if (assigned)
        atomic_compare_exchange_strong_explicit(&st->last_activity_ms, &zero, clock_now_ms(),
                                                memory_order_relaxed, memory_order_relaxed);
}

static int parse_delay(const char *s, long *min, long *max) {
    char *colon = strchr(s, ':');
    if (!colon)
        return -1;
    char lo[32];
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof lo)
        return -1;
    memcpy(lo, s, n);
    lo[n] = '\0';
    if (cli_parse_long(lo, 0, 3600000, min) || cli_parse_long(colon + 1, 0, 3600000, max) ||
        *max < *min)
        return -1;
    return 0;
}

int cli_parse_consume_args(int argc, char **argv, cli_consume_args_t *a, char *err,
                           size_t err_size) {
    static const struct option options[] = {{"topic", required_argument, NULL, 't'},
                                            {"group", required_argument, NULL, 'g'},
                                            {"earliest", no_argument, NULL, 'e'},
                                            {"async", no_argument, NULL, 'a'},
                                            {"ack-delay-ms", required_argument, NULL, 'd'},
                                            {"workers", required_argument, NULL, 'w'},
                                            {"ordering", required_argument, NULL, 'o'},
                                            {"format", required_argument, NULL, 'f'},
                                            {"count", required_argument, NULL, 'n'},
                                            {"idle-exit-ms", required_argument, NULL, 'i'},
                                            {"metrics-addr", required_argument, NULL, 'm'},
                                            CLI_CLIENT_LONG_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    *a = (cli_consume_args_t){.delay_max = 10, .json = true};
    long n;
    int opt;
    optind = 0; /* 0, not 1: glibc then also forgets a previous parse's state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":t:g:ead:w:o:f:n:i:m:" CLI_CLIENT_OPTSTRING, options,
                              NULL)) != -1) {
        switch (opt) {
            case 't':
                a->topics = optarg;
                break;
            case 'g':
                a->group = optarg;
                break;
            case 'e':
                a->earliest = true;
                break;
            case 'a':
                a->async = true;
                break;
            case 'd':
                if (parse_delay(optarg, &a->delay_min, &a->delay_max))
                    return cli_args_error(err, err_size,
                                          "--ack-delay-ms: expected MIN:MAX, got \"%s\"", optarg);
                a->delay_given = true;
                break;
            case 'w':
                if (cli_parse_long(optarg, 1, 1024, &n))
                    return cli_args_error(err, err_size, "--workers: expected 1..1024, got \"%s\"",
                                          optarg);
                a->workers = optarg;
                break;
            case 'o':
                if (strcmp(optarg, "partition") && strcmp(optarg, "key") &&
                    strcmp(optarg, "unordered"))
                    return cli_args_error(
                        err, err_size,
                        "--ordering: expected partition, key or unordered, got \"%s\"", optarg);
                a->ordering = optarg;
                break;
            case 'f':
                if (strcmp(optarg, "json") && strcmp(optarg, "value"))
                    return cli_args_error(err, err_size,
                                          "--format: expected json or value, got \"%s\"", optarg);
                a->json = strcmp(optarg, "json") == 0;
                break;
            case 'n':
                if (cli_parse_long(optarg, 1, 1000000000000L, &a->count))
                    return cli_args_error(
                        err, err_size, "--count: expected a positive number, got \"%s\"", optarg);
                break;
            case 'i':
                if (cli_parse_long(optarg, 1, 86400000, &a->idle_ms))
                    return cli_args_error(
                        err, err_size, "--idle-exit-ms: expected 1..86400000, got \"%s\"", optarg);
                break;
            case 'm': {
                char host[64], why[256];
                uint16_t port;
                if (cli_metrics_parse_addr(optarg, host, sizeof host, &port, why, sizeof why))
                    return cli_args_error(err, err_size, "%s", why);
                a->metrics_addr = optarg;
                break;
            }
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
    if (a->delay_given && !a->async)
        return cli_args_error(err, err_size, "--ack-delay-ms needs --async");
    return CLI_EXIT_OK;
}

int cli_consume(int argc, char **argv) {
    cli_consume_args_t a;
    char usage[512];
    if (cli_parse_consume_args(argc, argv, &a, usage, sizeof usage) != CLI_EXIT_OK)
        return cli_usage_error("consume", "%s", usage);
    if (a.client.help) {
        consume_help();
        return CLI_EXIT_OK;
    }
    const char *brokers = a.client.brokers, *topics = a.topics, *group = a.group,
               *ordering = a.ordering, *workers = a.workers, *config = a.client.config;
    char **props = a.client.props;
    size_t prop_count = a.client.prop_count;
    bool earliest = a.earliest, async = a.async, json = a.json;
    long delay_min = a.delay_min, delay_max = a.delay_max, count = a.count, idle_ms = a.idle_ms;

    kaffe_conf_t *conf = kaffe_conf_new();
    consume_t *st = calloc(1, sizeof *st);
    int rc = cli_conf_apply("consume", conf, config, props, prop_count);
    /* The flags win over the file and -X. */
    if (rc == CLI_EXIT_OK && brokers)
        rc = cli_conf_set("consume", conf, "endpoints", brokers);
    if (rc == CLI_EXIT_OK && topics)
        rc = cli_conf_set("consume", conf, "topics", topics);
    if (rc == CLI_EXIT_OK && group)
        rc = cli_conf_set("consume", conf, "consumer_group", group);
    if (rc == CLI_EXIT_OK && earliest)
        rc = cli_conf_set("consume", conf, "start_with_earliest_message", "true");
    /* Always async: a message is acked after its line is written out (sync
     * would ack on the handler's return, before the buffered write). */
    if (rc == CLI_EXIT_OK)
        rc = cli_conf_set("consume", conf, "async_message_ack", "true");
    if (rc == CLI_EXIT_OK && workers)
        rc = cli_conf_set("consume", conf, "workers", workers);
    if (rc == CLI_EXIT_OK && ordering)
        rc = cli_conf_set("consume", conf, "ordering", ordering);
    if (rc == CLI_EXIT_OK && !cli_conf_has_brokers(conf))
        rc = cli_usage_error("consume", "-b BROKERS is required (or endpoints or "
                                        "heroku_kafka_env=true in -c/-X)");
    if (rc != CLI_EXIT_OK) {
        kaffe_conf_destroy(conf);
        free(st);
        return rc;
    }
    st->json = json;
    st->count = count;
    kaffe_conf_set_message_handler(conf, handle, st);
    kaffe_conf_set_error_cb(conf, on_error, st);

    sigset_t stop_signals;
    cli_block_stop_signals(&stop_signals); /* before any thread starts */
    char err[512];
    st->consumer = kaffe_consumer_new(conf, err, sizeof err);
    if (!st->consumer) {
        kaffe_conf_destroy(conf);
        free(st);
        /* The configuration is the user's: a usage error. */
        return cli_usage_error("consume", "%s", err);
    }
    kaffe_consumer_set_rebalance_cb(st->consumer, on_rebalance, st);
    if (async &&
        !(st->acker = delayed_ack_new(delay_min * 1000, delay_max * 1000, ack_later, st))) {
        fprintf(stderr, "kaffe consume: cannot start the ack thread\n");
        kaffe_consumer_destroy(st->consumer);
        free(st);
        return CLI_EXIT_FAILURE;
    }
    /* 64 KiB writes, or every 10 ms when less is buffered. */
    if (!(st->out = line_out_new(STDOUT_FILENO, 64 * 1024, 10, line_written, st))) {
        fprintf(stderr, "kaffe consume: cannot start the output thread\n");
        delayed_ack_destroy(st->acker);
        kaffe_consumer_destroy(st->consumer);
        free(st);
        return CLI_EXIT_FAILURE;
    }
    /* After the signals are blocked: the server's thread inherits the mask. */
    cli_metrics_server_t *metrics = NULL;
    if (a.metrics_addr) {
        metrics = cli_metrics_serve(a.metrics_addr, st->consumer, err, sizeof err);
        if (!metrics) {
            fprintf(stderr, "kaffe consume: %s\n", err);
            line_out_destroy(st->out);
            delayed_ack_destroy(st->acker);
            kaffe_consumer_destroy(st->consumer);
            free(st);
            return CLI_EXIT_FAILURE;
        }
        char host[64], why[256];
        uint16_t port;
        cli_metrics_parse_addr(a.metrics_addr, host, sizeof host, &port, why, sizeof why);
        fprintf(stderr, "kaffe consume: metrics at http://%s:%u/metrics\n", host,
                (unsigned)cli_metrics_port(metrics));
    }
    kaffe_status_t status = kaffe_consumer_start(st->consumer);
    if (status != KAFFE_OK) {
        fprintf(stderr, "kaffe consume: start: %s\n", kaffe_strerror(status));
        rc = CLI_EXIT_FAILURE;
    }
    const char *why = NULL;
    while (rc == CLI_EXIT_OK && !why) {
        struct timespec tick = {0, 50 * 1000000L};
        int sig = sigtimedwait(&stop_signals, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM)
            why = "signal";
        else if (count > 0 && atomic_load_explicit(&st->printed, memory_order_relaxed) >= count)
            why = "count";
        else if (atomic_load_explicit(&st->fatal, memory_order_relaxed) != 0)
            rc = CLI_EXIT_FAILURE;
        else if (line_out_failed(st->out)) {
            /* Those lines' messages are never acked: the group gets them again. */
            fprintf(stderr, "kaffe consume: cannot write the output: %s\n",
                    strerror(line_out_failed(st->out)));
            rc = CLI_EXIT_FAILURE;
        } else if (kaffe_consumer_wait(st->consumer, 0) == KAFFE_OK)
            why = "stopped";
        else if (idle_ms > 0) {
            long long last = atomic_load_explicit(&st->last_activity_ms, memory_order_relaxed);
            if (last > 0 && clock_now_ms() - last >= idle_ms)
                why = "idle";
        }
    }
    /* The final commit, in every case: stop drains in-flight messages (the
     * output and ack threads keep writing and acking meanwhile) and commits
     * what is acked. */
    status = kaffe_consumer_stop(st->consumer);
    line_out_destroy(st->out);      /* lines still buffered: written, acks refused (stopped) */
    delayed_ack_destroy(st->acker); /* anything left is refused (stopped) */
    /* Every error was printed when it came (on_error): the status that
     * stopped the consumer only decides the exit code. */
    if (status != KAFFE_OK && !(status == KAFFE_ERR_HANDLER && past_count(st)))
        rc = CLI_EXIT_FAILURE;
    cli_metrics_stop(metrics); /* before the consumer it reads goes */
    kaffe_consumer_destroy(st->consumer);
    free(st);
    return rc;
}
