/* `kaffe produce` and `kaffe consume` as a user runs them, against `kaffe
 * mock` (each a subprocess): a round trip in json format matches the input
 * exactly; --async with random ack delays delivers everything and commits to
 * the log end; SIGTERM mid-consume exits cleanly after a final commit; bad
 * flags exit 2 with a one-line message. Offsets are checked with a separate
 * plain client. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/plain_client.h"
#include "support/subprocess.h"

static subprocess_t mock;
static char bootstraps[256];

/* `kaffe mock --topic NAME:PARTITIONS` in the background. */
static void start_mock(const char *topic_spec) {
    char *argv[] = {KAFFE_CLI_PATH, "mock", "--topic", (char *)topic_spec, NULL};
    cr_assert_eq(subprocess_start(&mock, argv, 0), 0);
    cr_assert_eq(subprocess_read_line(&mock, bootstraps, sizeof bootstraps, 10000), 0);
}

static void stop_mock(void) {
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}

/* Decodes one JSON string starting at the opening quote into out. Returns
 * the length, -1 on a malformed string. */
static long json_unescape(const char *s, char *out) {
    if (*s++ != '"')
        return -1;
    long n = 0;
    while (*s && *s != '"') {
        if (*s != '\\') {
            out[n++] = *s++;
            continue;
        }
        s++;
        switch (*s) {
            case 'n':
                out[n++] = '\n';
                break;
            case 't':
                out[n++] = '\t';
                break;
            case 'r':
                out[n++] = '\r';
                break;
            case 'u': {
                unsigned int c;
                if (sscanf(s + 1, "%4x", &c) != 1 || c > 0x7f)
                    return -1;
                out[n++] = (char)c;
                s += 4;
                break;
            }
            default:
                out[n++] = *s;
        }
        s++;
    }
    return *s == '"' ? n : -1;
}

static long base64_decode(const char *s, char *out) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (*s++ != '"')
        return -1;
    long n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '"'; s++) {
        if (*s == '=')
            continue;
        const char *p = strchr(alphabet, *s);
        if (!p)
            return -1;
        acc = (acc << 6) | (uint32_t)(p - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    return n;
}

/* The value of field name (or name_base64) of a json line; -2 for null. */
static long json_field(const char *line, const char *name, char *out) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", name);
    const char *p = strstr(line, pattern);
    if (p)
        return strncmp(p + strlen(pattern), "null", 4) == 0
                   ? -2
                   : json_unescape(p + strlen(pattern), out);
    snprintf(pattern, sizeof pattern, "\"%s_base64\": ", name);
    p = strstr(line, pattern);
    return p ? base64_decode(p + strlen(pattern), out) : -1;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(cli_consume, produce_then_consume_round_trip_matches_input_exactly) {
    start_mock("rt:3");
    /* Keys and values with JSON-special characters, UTF-8, a byte that is
     * not UTF-8, an empty value, and a line without the delimiter. */
    static const char *const lines[] = {
        "k1:plain value",
        "k2:quote \" and backslash \\ and tab \t end",
        "k3:caf\xc3\xa9 \xe2\x82\xac",
        "k4:not utf-8 \xff\xfe here",
        "k5:",
        "k6:value:with:colons",
        "no delimiter at all",
        "k\xc3\xa9y:unicode key",
    };
    size_t n = sizeof lines / sizeof lines[0];
    char *produce[] = {KAFFE_CLI_PATH, "produce", "-b", bootstraps, "-t", "rt", "-k", ":", NULL};
    subprocess_t p;
    cr_assert_eq(subprocess_start(&p, produce, 1), 0);
    for (size_t i = 0; i < n; i++)
        fprintf(p.in, "%s\n", lines[i]);
    fclose(p.in);
    p.in = NULL;
    cr_assert_eq(subprocess_wait(&p, 30000), 0, "kaffe produce failed");

    char count[16];
    snprintf(count, sizeof count, "%zu", n);
    char *consume[] = {KAFFE_CLI_PATH, "consume", "-b",       bootstraps,   "-t",
                       "rt",           "-g",      "rt-group", "--earliest", "--format",
                       "json",         "--count", count,      NULL};
    subprocess_t c;
    cr_assert_eq(subprocess_start(&c, consume, 0), 0);
    char *got[16], *want[16];
    for (size_t i = 0; i < n; i++) {
        char line[4096], key[1024], value[1024], topic[64];
        cr_assert_eq(subprocess_read_line(&c, line, sizeof line, 30000), 0, "line %zu", i);
        cr_assert_eq(json_field(line, "topic", topic), 2, "%s", line);
        cr_assert(strstr(line, "\"partition\": ") && strstr(line, "\"offset\": ") &&
                      strstr(line, "\"timestamp\": "),
                  "%s", line);
        long klen = json_field(line, "key", key);
        long vlen = json_field(line, "value", value);
        cr_assert(vlen >= 0, "%s", line);
        /* Rebuild the input line: KEY:VALUE, or VALUE for a null key. */
        char *rebuilt = calloc(1, 2048);
        if (klen == -2)
            memcpy(rebuilt, value, (size_t)vlen);
        else {
            cr_assert(klen >= 0, "%s", line);
            memcpy(rebuilt, key, (size_t)klen);
            rebuilt[klen] = ':';
            memcpy(rebuilt + klen + 1, value, (size_t)vlen);
        }
        got[i] = rebuilt;
        want[i] = (char *)lines[i];
    }
    cr_assert_eq(subprocess_wait(&c, 30000), 0, "kaffe consume did not exit 0 after --count");
    qsort(got, n, sizeof got[0], compare_strings);
    qsort(want, n, sizeof want[0], compare_strings);
    for (size_t i = 0; i < n; i++) {
        cr_expect_str_eq(got[i], want[i]);
        free(got[i]);
    }
    for (int part = 0; part < 3; part++)
        cr_expect_eq(plain_committed(bootstraps, "rt-group", "rt", part, NULL),
                     plain_log_end(bootstraps, "rt", part), "partition %d", part);
    stop_mock();
}

Test(cli_consume, async_with_random_ack_delays_handles_all_and_commits_to_the_log_end) {
    start_mock("async:4");
    enum { N = 2000 };
    for (int part = 0; part < 4; part++)
        cr_assert_eq(plain_produce(bootstraps, "async", part, N / 4, (size_t)part * (N / 4), 10),
                     N / 4);
    char *consume[] = {KAFFE_CLI_PATH,
                       "consume",
                       "-b",
                       bootstraps,
                       "-t",
                       "async",
                       "-g",
                       "async-group",
                       "--earliest",
                       "--async",
                       "--ack-delay-ms",
                       "0:20",
                       "--workers",
                       "4",
                       "--ordering",
                       "unordered",
                       "--format",
                       "value",
                       "--idle-exit-ms",
                       "3000",
                       NULL};
    subprocess_t c;
    cr_assert_eq(subprocess_start(&c, consume, 0), 0);
    static char seen[N];
    char line[256];
    size_t lines = 0;
    /* --idle-exit-ms ends it once everything is handled; stdout closes. */
    while (subprocess_read_line(&c, line, sizeof line, 60000) == 0) {
        int i;
        cr_assert_eq(sscanf(line, "value-%d", &i), 1, "%s", line);
        cr_assert(i >= 0 && i < N);
        seen[i] = 1;
        lines++;
    }
    cr_assert_eq(subprocess_wait(&c, 30000), 0);
    for (int i = 0; i < N; i++)
        cr_expect(seen[i], "value-%d never handled", i);
    cr_expect_geq(lines, N);
    for (int part = 0; part < 4; part++)
        cr_expect_eq(plain_committed(bootstraps, "async-group", "async", part, NULL), N / 4,
                     "partition %d", part);
    stop_mock();
}

Test(cli_consume, sigterm_mid_consume_exits_cleanly_after_a_final_commit) {
    start_mock("stop:2");
    enum { N = 20000 };
    cr_assert_eq(plain_produce(bootstraps, "stop", 0, N / 2, 0, 0), N / 2);
    cr_assert_eq(plain_produce(bootstraps, "stop", 1, N / 2, N / 2, 0), N / 2);
    char *consume[] = {KAFFE_CLI_PATH, "consume",    "-b",         bootstraps, "-t",    "stop",
                       "-g",           "stop-group", "--earliest", "--format", "value", NULL};
    subprocess_t c;
    cr_assert_eq(subprocess_start(&c, consume, 0), 0);
    char line[256];
    for (int i = 0; i < 100; i++)
        cr_assert_eq(subprocess_read_line(&c, line, sizeof line, 30000), 0);
    kill(c.pid, SIGTERM);
    long printed = 100;
    while (subprocess_read_line(&c, line, sizeof line, 30000) == 0)
        printed++;
    cr_assert_eq(subprocess_wait(&c, 30000), 0, "not a clean exit on SIGTERM");
    /* Sync mode, partition order: every printed message was acked, in order,
     * so the committed offsets add up to exactly what was printed. */
    int64_t c0 = plain_committed(bootstraps, "stop-group", "stop", 0, NULL);
    int64_t c1 = plain_committed(bootstraps, "stop-group", "stop", 1, NULL);
    cr_expect_eq((c0 < 0 ? 0 : c0) + (c1 < 0 ? 0 : c1), printed, "committed %lld + %lld",
                 (long long)c0, (long long)c1);
    stop_mock();
}

/* Output is written in batches, but a message is acked only after its line
 * was written out: SIGKILLed mid-run, every offset below a committed offset
 * has its line in the output (nothing committed is lost to a buffer). */
Test(cli_consume, sigkill_never_loses_a_line_whose_offset_was_committed) {
    start_mock("kill:2");
    enum { N = 40000, PER = N / 2 };
    cr_assert_eq(plain_produce(bootstraps, "kill", 0, PER, 0, 0), PER);
    cr_assert_eq(plain_produce(bootstraps, "kill", 1, PER, PER, 0), PER);
    char *consume[] = {KAFFE_CLI_PATH,
                       "consume",
                       "-b",
                       bootstraps,
                       "-t",
                       "kill",
                       "-g",
                       "kill-group",
                       "--earliest",
                       "--format",
                       "json",
                       "-X",
                       "commit_interval_ms=50",
                       NULL};
    subprocess_t c;
    cr_assert_eq(subprocess_start(&c, consume, 0), 0);
    static char seen[2][PER];
    char line[512];
    long lines = 0;
    /* Read (so the writes never block for long) until both partitions have
     * a commit, then kill while messages are still flowing. */
    for (int round = 0; round < 400; round++) {
        for (int i = 0; i < 50; i++) {
            cr_assert_eq(subprocess_read_line(&c, line, sizeof line, 30000), 0,
                         "consume ended early after %ld lines", lines);
            char *p = strstr(line, "\"partition\": "), *o = strstr(line, "\"offset\": ");
            cr_assert(p && o, "%s", line);
            int part = atoi(p + 13);
            long offset = atol(o + 10);
            cr_assert(part >= 0 && part < 2 && offset >= 0 && offset < PER, "%s", line);
            seen[part][offset] = 1;
            lines++;
        }
        if (lines >= 2000 && plain_committed(bootstraps, "kill-group", "kill", 0, NULL) > 0 &&
            plain_committed(bootstraps, "kill-group", "kill", 1, NULL) > 0)
            break;
    }
    kill(c.pid, SIGKILL);
    /* Whatever the process wrote before it died is still in the pipe. */
    while (subprocess_read_line(&c, line, sizeof line, 10000) == 0) {
        char *p = strstr(line, "\"partition\": "), *o = strstr(line, "\"offset\": ");
        if (p && o)
            seen[atoi(p + 13)][atol(o + 10)] = 1;
        lines++;
    }
    subprocess_wait(&c, 10000);
    for (int part = 0; part < 2; part++) {
        int64_t committed = plain_committed(bootstraps, "kill-group", "kill", part, NULL);
        cr_assert_gt(committed, 0, "partition %d: nothing committed before the kill", part);
        cr_assert_lt(committed, PER, "partition %d: the kill came after the end", part);
        for (int64_t o = 0; o < committed; o++)
            cr_assert(seen[part][o],
                      "partition %d offset %lld committed (at %lld) but its line is "
                      "not in the output (%ld lines read)",
                      part, (long long)o, (long long)committed, lines);
    }
    stop_mock();
}

/* Runs `kaffe ARGS 2>&1` and returns the exit status; the first line of
 * output goes to first_line. */
static int run_merged(const char *args, char *first_line, size_t size) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s %s 2>&1", KAFFE_CLI_PATH, args);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    first_line[0] = '\0';
    subprocess_read_line(&sp, first_line, size, 10000);
    return subprocess_wait(&sp, 10000);
}

Test(cli_consume, bad_flags_and_values_exit_2_with_a_one_line_message) {
    static const char *const bad[] = {
        "consume --bogus",
        "consume -b 127.0.0.1:9 -t t -g g --workers 0",
        "consume -b 127.0.0.1:9 -t t -g g --ordering sideways",
        "consume -b 127.0.0.1:9 -t t -g g --format xml",
        "consume -b 127.0.0.1:9 -t t -g g --count -3",
        "consume -b 127.0.0.1:9 -t t -g g --ack-delay-ms 5",
        "consume -b 127.0.0.1:9 -t t -g g --ack-delay-ms 1:2",
        "consume -t t -g g",
        "consume -b 127.0.0.1:9 -t t -g g -X nosuch.property=1",
        "consume -b 127.0.0.1:9 -t t -g g -X novalue",
        "consume -b 127.0.0.1:9 -t t -g g -c /nonexistent/kaffe.conf",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[1024];
        cr_expect_eq(run_merged(bad[i], line, sizeof line), 2, "%s", bad[i]);
        cr_expect(strncmp(line, "kaffe ", 6) == 0 || strncmp(line, "kaffe: ", 7) == 0, "%s: %s",
                  bad[i], line);
    }
}

Test(cli_consume, heroku_kafka_env_replaces_b) {
    /* No -b, no KAFKA_URL: the complaint is about the Heroku variables, not
     * about a missing -b. */
    char line[1024];
    unsetenv("KAFKA_URL");
    run_merged("consume -t t -g g -X heroku_kafka_env=true", line, sizeof line);
    cr_expect(strstr(line, "-b BROKERS is required") == NULL, "%s", line);
    cr_expect(strstr(line, "KAFKA_URL") != NULL, "%s", line);
}

Test(cli_consume, help_exits_0) {
    char line[1024];
    cr_expect_eq(run_merged("consume --help", line, sizeof line), 0);
    cr_expect(strncmp(line, "usage: kaffe consume", 20) == 0, "%s", line);
    cr_expect_eq(run_merged("produce --help", line, sizeof line), 0);
    cr_expect(strncmp(line, "usage: kaffe produce", 20) == 0, "%s", line);
}
