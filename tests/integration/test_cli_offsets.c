/* `kaffe offsets` against `kaffe mock`: a group's committed offsets, log ends
 * and lag, read without joining the group ("-" before any commit); and the
 * embedded cluster's restart delay: a consumer of the same group restarted
 * right after the previous one left gets its partitions within a few seconds
 * when consumers use a short rdkafka.session.timeout.ms (librdkafka 2.0.2's
 * mock waits for the leaver's session timeout minus 1 s, 44 s by default,
 * before it takes a new member: see GETTING_STARTED, section 3). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "support/plain_client.h"
#include "support/subprocess.h"
#include "common/clock.h"

static subprocess_t mock;
static char bootstraps[256];

static void start_mock(void) {
    char *argv[] = {KAFFE_CLI_PATH, "mock", "--topic", "t:2", NULL};
    cr_assert_eq(subprocess_start(&mock, argv, 0), 0);
    cr_assert_eq(subprocess_read_line(&mock, bootstraps, sizeof bootstraps, 10000), 0);
}

/* Consumers of the embedded cluster restart quickly with this. */
#define QUICK_SESSION "-X rdkafka.session.timeout.ms=6000"

Test(cli_offsets, committed_offsets_and_lag_without_joining_the_group) {
    start_mock();
    cr_assert_eq(plain_produce(bootstraps, "t", 0, 5, 0, 0), 5);
    cr_assert_eq(plain_produce(bootstraps, "t", 1, 3, 0, 0), 3);
    char args[512], out[4096];
    snprintf(args, sizeof args, "offsets -b %s -g billing -t t", bootstraps);
    cr_assert_eq(subprocess_run_cli(args, NULL, out, sizeof out, 20000), 0, "%s", out);
    cr_expect_str_eq(out, "topic\tpartition\tcommitted\tlog_end\tlag\n"
                          "t\t0\t-\t5\t-\n"
                          "t\t1\t-\t3\t-\n");

    snprintf(args, sizeof args,
             "consume -b %s -t t -g billing --earliest --count 8 " QUICK_SESSION " >/dev/null",
             bootstraps);
    cr_assert_eq(subprocess_run_cli(args, NULL, out, sizeof out, 60000), 0, "%s", out);
    snprintf(args, sizeof args, "offsets -b %s -g billing -t t", bootstraps);
    cr_assert_eq(subprocess_run_cli(args, NULL, out, sizeof out, 20000), 0, "%s", out);
    cr_expect_str_eq(out, "topic\tpartition\tcommitted\tlog_end\tlag\n"
                          "t\t0\t5\t5\t0\n"
                          "t\t1\t3\t3\t0\n");
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}

Test(cli_offsets, an_unknown_topic_or_a_missing_group_is_an_error) {
    start_mock();
    char args[512], out[4096];
    snprintf(args, sizeof args, "offsets -b %s -g g -t nosuch", bootstraps);
    cr_expect_eq(subprocess_run_cli(args, NULL, out, sizeof out, 20000), 1, "%s", out);
    cr_expect(strstr(out, "nosuch"), "%s", out);
    snprintf(args, sizeof args, "offsets -b %s -t t", bootstraps);
    cr_expect_eq(subprocess_run_cli(args, NULL, out, sizeof out, 20000), 2, "%s", out);
    cr_expect(strstr(out, "-g GROUP is required"), "%s", out);
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}

Test(cli_offsets, a_restarted_group_member_gets_its_partitions_quickly) {
    start_mock();
    char args[512], out[4096];
    cr_assert_eq(plain_produce(bootstraps, "t", 0, 1, 0, 0), 1);
    snprintf(args, sizeof args, "consume -b %s -t t -g restart --earliest --count 1 " QUICK_SESSION,
             bootstraps);
    cr_assert_eq(subprocess_run_cli(args, NULL, out, sizeof out, 60000), 0, "%s", out);
    cr_assert(strstr(out, "value-0"), "first run: %s", out);

    /* The first member has left (its stop sent LeaveGroup): the second joins
     * at once. */
    cr_assert_eq(plain_produce(bootstraps, "t", 1, 1, 1, 0), 1);
    int64_t start = clock_now_ms();
    cr_assert_eq(subprocess_run_cli(args, NULL, out, sizeof out, 60000), 0, "%s", out);
    int64_t took = clock_now_ms() - start;
    cr_expect(strstr(out, "value-1") && !strstr(out, "value-0"), "second run: %s", out);
    /* 5 s (6 s session timeout - 1 s) plus the join and fetch; the default
     * 45 s session timeout would take at least 44 s. */
    cr_expect_lt(took, 20000, "the restarted member took %lld ms", (long long)took);
    cr_assert_eq(subprocess_stop(&mock, SIGTERM, 10000), 0);
}
