/* `kaffe --version` and `kaffe version` print "kaffe X.Y.Z (librdkafka V)"
 * on one line and exit 0; the version is the library's. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "support/subprocess.h"

static void expect_version(char *word) {
    char *argv[] = {KAFFE_CLI_PATH, word, NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    char line[256], want[64];
    cr_assert_eq(subprocess_read_line(&sp, line, sizeof line, 10000), 0, "%s: no output", word);
    snprintf(want, sizeof want, "kaffe %s (librdkafka ", kaffe_version_str());
    cr_expect(strncmp(line, want, strlen(want)) == 0, "%s: \"%s\"", word, line);
    cr_expect_neq(subprocess_read_line(&sp, line, sizeof line, 10000), 0, "%s: one line", word);
    cr_expect_eq(subprocess_wait(&sp, 10000), 0, "%s: exit status", word);
}

Test(cli_version, dash_dash_version_prints_the_version) {
    expect_version("--version");
}

Test(cli_version, the_version_command_prints_the_version) {
    expect_version("version");
}
