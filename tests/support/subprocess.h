/* tests/support — running the `kaffe` command (or any program) as a child
 * process with its stdout on a pipe. */
#ifndef KAFFE_TESTS_SUPPORT_SUBPROCESS_H
#define KAFFE_TESTS_SUPPORT_SUBPROCESS_H

#include <stdio.h>
#include <sys/types.h>

typedef struct subprocess {
    pid_t pid;
    FILE *out; /* the child's stdout (read end) */
    FILE *in;  /* the child's stdin (write end), or NULL */
} subprocess_t;

/* Starts argv[0] (a path) with argv. with_stdin: give it a pipe for stdin
 * (else /dev/null). Returns 0 or -1. */
int subprocess_start(subprocess_t *sp, char *const argv[], int with_stdin);

/* Reads one line of the child's stdout into buf (without the newline),
 * waiting at most timeout_ms. Returns 0, or -1 on EOF/timeout. */
int subprocess_read_line(subprocess_t *sp, char *buf, size_t size, int timeout_ms);

/* Sends sig, then waits up to timeout_ms for exit. Returns the exit status
 * (0..255), 128+signal if it died of a signal, or -1 if it did not exit in
 * time (it is then killed). Closes the pipes. */
int subprocess_stop(subprocess_t *sp, int sig, int timeout_ms);

/* Waits up to timeout_ms for exit without signalling; as subprocess_stop. */
int subprocess_wait(subprocess_t *sp, int timeout_ms);

/* Runs `kaffe ARGS` (KAFFE_CLI_PATH, through /bin/sh: ARGS may quote) with
 * input on its stdin (NULL: none) and stderr merged into stdout; the output's
 * lines, joined by '\n', go to out (truncated to size). Waits up to
 * timeout_ms for each line and for the exit. Returns the exit status, as
 * subprocess_wait(), or -1 if it could not start. */
int subprocess_run_cli(const char *args, const char *input, char *out, size_t size, int timeout_ms);

#endif
