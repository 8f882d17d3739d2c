/* `kaffe produce` against `kaffe mock` (both subprocesses): every stdin line
 * becomes one acknowledged message (read back with a plain client); a line
 * that fails is named and the exit status is 1; bad flags exit 2. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/plain_client.h"
#include "support/subprocess.h"

static subprocess_t mock;
static char bootstraps[256];

static void start_mock(void) {
    char *argv[] = {KAFFE_CLI_PATH, "mock", "--topic", "lines:2", NULL};
    cr_assert_eq(subprocess_start(&mock, argv, 0), 0);
    cr_assert_eq(subprocess_read_line(&mock, bootstraps, sizeof bootstraps, 10000), 0);
}

/* Runs `kaffe produce ARGS... < input`, stderr merged into stdout; returns
 * the exit status and the output's lines joined by '\n' in out. */
static int produce(const char *args, const char *input, char *out, size_t size) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s produce %s 2>&1", KAFFE_CLI_PATH, args);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 1), 0);
    fputs(input, sp.in);
    fclose(sp.in);
    sp.in = NULL;
    size_t used = 0;
    char line[1024];
    out[0] = '\0';
    while (subprocess_read_line(&sp, line, sizeof line, 60000) == 0 && used + 2 < size)
        used += (size_t)snprintf(out + used, size - used, "%s\n", line);
    return subprocess_wait(&sp, 60000);
}

static int by_partition_offset(const void *a, const void *b) {
    const plain_message_t *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition - y->partition;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

Test(cli_produce, each_line_is_one_message_with_its_key) {
    start_mock();
    char args[512], out[4096];
    snprintf(args, sizeof args, "-b %s -t lines -k '=>' --strategy murmur2", bootstraps);
    cr_assert_eq(
        produce(args, "a=>1\nb=>two words\nno key here\n=>empty key\nc=>\n", out, sizeof out), 0,
        "%s", out);
    plain_message_t *msgs;
    size_t n = plain_consume_all(bootstraps, "lines", 100, 3000, &msgs);
    cr_assert_eq(n, 5);
    static const struct {
        const char *key, *value;
    } want[] = {
        {"a", "1"}, {"b", "two words"}, {NULL, "no key here"}, {"", "empty key"}, {"c", ""}};
    for (size_t w = 0; w < 5; w++) {
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(msgs[i].value, want[w].value) == 0 &&
                    (want[w].key ? msgs[i].key && strcmp(msgs[i].key, want[w].key) == 0
                                 : msgs[i].key == NULL);
        cr_expect(found, "message %s => %s missing", want[w].key ? want[w].key : "(null)",
                  want[w].value);
    }
    plain_messages_free(msgs, n);
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}

Test(cli_produce, a_partition_and_a_batch_keep_line_order) {
    start_mock();
    char args[512], out[4096];
    snprintf(args, sizeof args, "-b %s -t lines -p 1 --batch 3", bootstraps);
    cr_assert_eq(produce(args, "l1\nl2\nl3\nl4\nl5\n", out, sizeof out), 0, "%s", out);
    plain_message_t *msgs;
    size_t n = plain_consume_all(bootstraps, "lines", 100, 3000, &msgs);
    cr_assert_eq(n, 5);
    qsort(msgs, n, sizeof msgs[0], by_partition_offset);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "l%zu", i + 1);
        cr_expect_eq(msgs[i].partition, 1);
        cr_expect_str_eq(msgs[i].value, want);
    }
    plain_messages_free(msgs, n);
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}

Test(cli_produce, a_failed_line_is_named_and_exits_1) {
    start_mock();
    char args[512], out[4096];
    snprintf(args, sizeof args, "-b %s -t lines -p 9", bootstraps);
    cr_assert_eq(produce(args, "only line\n", out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "line 1:"), "%s", out);
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}

Test(cli_produce, unreachable_brokers_exit_1_with_the_reason) {
    char out[8192];
    cr_assert_eq(
        produce("-b 127.0.0.1:9 -t lines -X produce_timeout_ms=1500", "x\ny\n", out, sizeof out), 1,
        "%s", out);
    cr_expect(strstr(out, "line 1:"), "%s", out);
    cr_expect(strstr(out, "Connection refused") || strstr(out, "unreachable"), "%s", out);
}

Test(cli_produce, bad_flags_exit_2_with_one_line) {
    static const char *const bad[] = {"--bogus",
                                      "-b 127.0.0.1:9",
                                      "-b 127.0.0.1:9 -t t -s x",
                                      "-b 127.0.0.1:9 -t t -p x",
                                      "-b 127.0.0.1:9 -t t --batch 0",
                                      "-t t",
                                      "-b 127.0.0.1:9 -t t -X no.such=1",
                                      "-b 127.0.0.1:9 -t t -c /nonexistent.conf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[4096];
        cr_expect_eq(produce(bad[i], "", out, sizeof out), 2, "%s: %s", bad[i], out);
        cr_expect(strncmp(out, "kaffe produce: ", 15) == 0, "%s: %s", bad[i], out);
        cr_expect(strchr(out, '\n') == out + strlen(out) - 1, "one line expected: %s", out);
    }
}
