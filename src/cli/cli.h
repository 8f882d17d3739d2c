/* src/cli — the `kaffe` command. Each subcommand is one file with one entry
 * point; main.c dispatches. Exit codes: 0 success, 1 runtime/broker error,
 * 2 bad usage (flags or values). */
#ifndef KAFFE_SRC_CLI_H
#define KAFFE_SRC_CLI_H

#include <signal.h>

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

int cli_mock(int argc, char **argv);
int cli_bench(int argc, char **argv);

/* Prints "kaffe <sub>: <message>" to stderr and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Blocks SIGINT and SIGTERM in the calling thread (call before creating
 * threads, so every thread inherits the mask) and fills set with them, for
 * a later sigwait/sigtimedwait. */
void cli_block_stop_signals(sigset_t *set);

#endif
