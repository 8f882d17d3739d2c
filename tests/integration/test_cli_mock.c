/* `kaffe mock`: prints its bootstrap servers first, serves real Kafka until
 * SIGTERM/SIGINT, then exits 0; bad flags exit 2. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "support/plain_client.h"
#include "support/subprocess.h"

Test(cli_mock, serves_until_sigterm_then_exits_zero) {
    char *argv[] = {KAFFE_CLI_PATH, "mock", "--brokers", "2", "--topic", "orders:3", NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    char bootstraps[256];
    cr_assert_eq(subprocess_read_line(&sp, bootstraps, sizeof bootstraps, 10000), 0);
    cr_assert(strncmp(bootstraps, "127.0.0.1:", 10) == 0, "first line: %s", bootstraps);
    cr_assert(strchr(bootstraps, ','), "two brokers expected: %s", bootstraps);
    cr_assert_eq(plain_produce(bootstraps, "orders", 2, 20, 0, 0), 20);
    cr_assert_eq(plain_log_end(bootstraps, "orders", 2), 20);
    cr_assert_eq(subprocess_stop(&sp, SIGTERM, 10000), 0);
}

Test(cli_mock, stops_on_sigint_too) {
    char *argv[] = {KAFFE_CLI_PATH, "mock", NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    char line[256];
    cr_assert_eq(subprocess_read_line(&sp, line, sizeof line, 10000), 0);
    cr_assert_eq(subprocess_stop(&sp, SIGINT, 10000), 0);
}

Test(cli_mock, bad_flags_exit_2) {
    char *bad[][4] = {{KAFFE_CLI_PATH, "mock", "--topic", "nopartitions"},
                      {KAFFE_CLI_PATH, "mock", "--brokers", "0"},
                      {KAFFE_CLI_PATH, "mock", "--bogus", NULL},
                      {KAFFE_CLI_PATH, "nosuchcommand", NULL, NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[5] = {bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL};
        subprocess_t sp;
        cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
        cr_assert_eq(subprocess_wait(&sp, 10000), 2, "case %zu", i);
    }
}
