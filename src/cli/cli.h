/* src/cli — the `kaffe` command. Each subcommand is one file with one entry
 * point; main.c dispatches. Exit codes: 0 success, 1 runtime/broker error,
 * 2 bad usage (flags or values). */
#ifndef KAFFE_SRC_CLI_H
#define KAFFE_SRC_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <kaffe/conf.h>

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

/* -X name=value options per command. */
#define CLI_MAX_PROPS 64

int cli_mock(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_produce(int argc, char **argv);
int cli_consume(int argc, char **argv);
int cli_offsets(int argc, char **argv);

/* Prints "kaffe <sub>: <message>" to stderr and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Blocks SIGINT and SIGTERM in the calling thread (call before creating
 * threads, so every thread inherits the mask) and fills set with them, for
 * a later sigwait/sigtimedwait. */
void cli_block_stop_signals(sigset_t *set);

/* After getopt_long returned '?' or ':' (use opterr = 0 and an optstring
 * starting with ':'): a one-line usage error naming the unknown option, or
 * the option missing its value. */
int cli_bad_option(const char *sub, int opt, char **argv);

/* Writes a usage error's text into err (snprintf-style; err may be NULL when
 * err_size is 0) and returns CLI_EXIT_USAGE. For the option parsers below,
 * which print nothing (their callers print err with cli_usage_error). */
int cli_args_error(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cli_bad_option's message, written into err; returns CLI_EXIT_USAGE. */
int cli_bad_option_message(int opt, char **argv, char *err, size_t err_size);

/* The options every client subcommand (produce, consume) takes:
 * -b/--brokers, -c/--config FILE, -X name=value (kaffe properties, applied
 * after the file), -h/--help. */
typedef struct cli_client_args {
    const char *brokers, *config;
    char *props[CLI_MAX_PROPS];
    size_t prop_count;
    bool help;
} cli_client_args_t;

/* Their getopt_long entries and optstring letters, to put in a subcommand's
 * own option table and optstring. */
#define CLI_CLIENT_LONG_OPTIONS                                                                    \
    {"brokers", required_argument, NULL, 'b'}, {"config", required_argument, NULL, 'c'}, {         \
        "help", no_argument, NULL, 'h'                                                             \
    }
#define CLI_CLIENT_OPTSTRING "b:c:X:h"

/* Handles an option getopt_long returned that the subcommand's own cases do
 * not: one of the client options into *a, or getopt's '?'/':' as a usage
 * error. CLI_EXIT_OK, or CLI_EXIT_USAGE with a one-line message in err. */
int cli_parse_client_option(int opt, char **argv, cli_client_args_t *a, char *err, size_t err_size);

/* The option parsers of produce and consume (bench's is in bench.h): they
 * read argv with getopt_long (argv may be permuted; every string in *a points
 * into argv), check values, print nothing and exit nothing. CLI_EXIT_OK
 * (a->client.help set for -h: the caller prints the help), or CLI_EXIT_USAGE
 * with a one-line message in err. Not thread-safe (getopt's globals); may be
 * called again in the same process. */
typedef struct cli_produce_args {
    cli_client_args_t client;
    const char *topic, *strategy, *delim;
    long partition; /* KAFFE_PARTITION_ANY unless -p */
    long batch;     /* --batch N (1..CLI_PRODUCE_MAX_BATCH), 0 when not given */
    bool sync;      /* --sync: one acknowledged line at a time */
    long in_flight; /* --in-flight N (1..CLI_PRODUCE_MAX_IN_FLIGHT) for the pipelined default */
} cli_produce_args_t;
#define CLI_PRODUCE_MAX_BATCH 10000
#define CLI_PRODUCE_MAX_IN_FLIGHT 1000000
#define CLI_PRODUCE_DEFAULT_IN_FLIGHT 100000
int cli_parse_produce_args(int argc, char **argv, cli_produce_args_t *a, char *err,
                           size_t err_size);

typedef struct cli_consume_args {
    cli_client_args_t client;
    const char *topics, *group, *ordering, *workers;
    const char *metrics_addr; /* --metrics-addr HOST:PORT, or NULL */
    bool earliest, async, delay_given, json;
    long delay_min, delay_max; /* --ack-delay-ms MIN:MAX, 0 <= min <= max */
    long count, idle_ms;       /* 0: no limit */
} cli_consume_args_t;
int cli_parse_consume_args(int argc, char **argv, cli_consume_args_t *a, char *err,
                           size_t err_size);

/* Parses a base-10 integer in [min, max]. 0, or -1 when it is not one. */
int cli_parse_long(const char *s, long min, long max, long *out);

/* Sets one property; on failure prints kaffe's message as a usage error of
 * sub and returns CLI_EXIT_USAGE. */
int cli_conf_set(const char *sub, kaffe_conf_t *conf, const char *name, const char *value);

/* Loads file (if not NULL), then applies each "name=value" of props, in
 * order (later wins). CLI_EXIT_OK or CLI_EXIT_USAGE (message printed). */
int cli_conf_apply(const char *sub, kaffe_conf_t *conf, const char *file, char **props,
                   size_t prop_count);

/* Whether conf says where the brokers are: endpoints, or heroku_kafka_env. */
bool cli_conf_has_brokers(const kaffe_conf_t *conf);

#endif
