/* `kaffe produce` against `kaffe mock` (both subprocesses): every stdin line
 * becomes one acknowledged message (read back with a plain client), in the
 * pipelined default and in --sync and --batch; each line that fails is named
 * by its number and the exit status is 1; -k defaults to murmur2; bad flags
 * exit 2. */
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
    char words[1024];
    snprintf(words, sizeof words, "produce %s", args);
    return subprocess_run_cli(words, input, out, size, 60000);
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

/* Lines 2 and 4 are larger than message.max.bytes (1000, librdkafka's
 * minimum): only they fail, in every mode, and each is named. */
Test(cli_produce, each_failed_line_is_named_by_its_number_in_every_mode) {
    start_mock();
    static const char *const modes[] = {"", "--sync", "--batch 2", "--in-flight 1"};
    char big[2100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char input[5000];
    snprintf(input, sizeof input, "one\n%s\nthree\n%s\nfive\n", big, big);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char args[512], out[8192];
        snprintf(args, sizeof args, "-b %s -t lines -p 0 -X rdkafka.message.max.bytes=1000 %s",
                 bootstraps, modes[i]);
        cr_expect_eq(produce(args, input, out, sizeof out), 1, "mode '%s': %s", modes[i], out);
        cr_expect(strstr(out, "line 2: ") && strstr(out, "line 4: "), "mode '%s': %s", modes[i],
                  out);
        cr_expect(!strstr(out, "line 1:") && !strstr(out, "line 3:") && !strstr(out, "line 5:"),
                  "mode '%s': %s", modes[i], out);
        cr_expect(strstr(out, "KAFFE_ERR_MSG_SIZE_TOO_LARGE"), "mode '%s': %s", modes[i], out);
        cr_expect(strstr(out, "2 of 5 messages failed"), "mode '%s': %s", modes[i], out);
        cr_expect_eq(plain_log_end(bootstraps, "lines", 0), (int64_t)(3 * (i + 1)),
                     "mode '%s': lines 1, 3 and 5 are written", modes[i]);
    }
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}

/* The pipelined default keeps the lines' order within a partition. */
Test(cli_produce, pipelined_lines_keep_their_order_in_a_partition) {
    start_mock();
    enum { LINES = 2000 };
    static char input[LINES * 8];
    size_t used = 0;
    for (int i = 0; i < LINES; i++)
        used += (size_t)snprintf(input + used, sizeof input - used, "l%d\n", i);
    char args[512], out[4096];
    snprintf(args, sizeof args, "-b %s -t lines -p 1 --in-flight 100", bootstraps);
    cr_assert_eq(produce(args, input, out, sizeof out), 0, "%s", out);
    plain_message_t *msgs;
    size_t n = plain_consume_all(bootstraps, "lines", LINES + 10, 3000, &msgs);
    cr_assert_eq(n, LINES);
    qsort(msgs, n, sizeof msgs[0], by_partition_offset);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "l%zu", i);
        cr_expect_str_eq(msgs[i].value, want);
    }
    plain_messages_free(msgs, n);
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}

/* With -k and no strategy, a key goes where --strategy murmur2 (the Java
 * client's partitioner) puts it. */
Test(cli_produce, keyed_lines_default_to_murmur2) {
    char *argv[] = {KAFFE_CLI_PATH, "mock", "--topic", "keyed:7", "--topic", "java:7", NULL};
    cr_assert_eq(subprocess_start(&mock, argv, 0), 0);
    cr_assert_eq(subprocess_read_line(&mock, bootstraps, sizeof bootstraps, 10000), 0);
    char input[1024] = "";
    size_t used = 0;
    for (int i = 0; i < 20; i++)
        used += (size_t)snprintf(input + used, sizeof input - used, "user-%d:v\n", i);
    char args[512], out[4096];
    snprintf(args, sizeof args, "-b %s -t keyed -k :", bootstraps);
    cr_assert_eq(produce(args, input, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args, "-b %s -t java -k : --strategy murmur2", bootstraps);
    cr_assert_eq(produce(args, input, out, sizeof out), 0, "%s", out);
    plain_message_t *a, *b;
    size_t na = plain_consume_all(bootstraps, "keyed", 100, 3000, &a);
    size_t nb = plain_consume_all(bootstraps, "java", 100, 3000, &b);
    cr_assert_eq(na, 20);
    cr_assert_eq(nb, 20);
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (strcmp(a[i].key, b[j].key) == 0)
                cr_expect_eq(a[i].partition, b[j].partition, "key %s", a[i].key);
    plain_messages_free(a, na);
    plain_messages_free(b, nb);
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}

/* `kaffe mock` does not create a topic for kaffe's producer, like a real
 * broker (kaffe asks for no auto-creation). */
Test(cli_produce, an_unknown_topic_is_refused_and_not_created) {
    start_mock();
    char args[512], out[4096];
    snprintf(args, sizeof args, "-b %s -t nosuch", bootstraps);
    cr_assert_eq(produce(args, "x\ny\n", out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "line 1: ") && strstr(out, "KAFFE_ERR_UNKNOWN_TOPIC"), "%s", out);
    cr_expect_eq(plain_log_end(bootstraps, "nosuch", 0), -1, "the topic was created");
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
                                      "-b 127.0.0.1:9 -t t --in-flight 0",
                                      "-b 127.0.0.1:9 -t t --sync --batch 2",
                                      "-b 127.0.0.1:9 -t t --sync --in-flight 2",
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
