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

int cli_mock(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_produce(int argc, char **argv);
int cli_consume(int argc, char **argv);

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
