/* `kaffe bench --quick`: each scenario runs to the end on the embedded
 * cluster and its correctness line holds (every message handled at least
 * once, committed offsets equal the log ends). Asserts correctness, never
 * speed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/subprocess.h"

/* A `kaffe bench --quick` run on some scenarios, with its own embedded
 * cluster, writing JSON to a file of its own. */
typedef struct run {
    subprocess_t sp;
    char json[64];
    const char *const *scenarios;
    size_t n;
    int rounds;
    char rounds_arg[8];
} run_t;

static void run_start_rounds(run_t *r, int id, const char *const *scenarios, size_t n, int rounds) {
    r->scenarios = scenarios;
    r->n = n;
    r->rounds = rounds;
    snprintf(r->json, sizeof r->json, "/tmp/kaffe-test-bench-%d-%d.json", (int)getpid(), id);
    snprintf(r->rounds_arg, sizeof r->rounds_arg, "%d", rounds);
    unlink(r->json);
    char *argv[64] = {KAFFE_CLI_PATH, "bench",    "--quick",    "--json",
                      r->json,        "--rounds", r->rounds_arg};
    size_t argc = 7;
    for (size_t i = 0; i < n && argc + 3 < 64; i++) {
        argv[argc++] = "--scenario";
        argv[argc++] = (char *)scenarios[i];
    }
    argv[argc] = NULL;
    cr_assert_eq(subprocess_start(&r->sp, argv, 0), 0);
}

static void run_start(run_t *r, int id, const char *const *scenarios, size_t n) {
    run_start_rounds(r, id, scenarios, n, 1);
}

/* Waits for the run and checks that the JSON says every scenario ran and
 * was correct. */
static void run_check(run_t *r) {
    /* The table comes at the end; read it so the child never blocks. */
    char line[1024];
    while (subprocess_read_line(&r->sp, line, sizeof line, 280000) == 0)
        cr_log_info("%s", line);
    cr_assert_eq(subprocess_wait(&r->sp, 60000), 0, "kaffe bench failed (see the table above)");
    const char *const *scenarios = r->scenarios;
    size_t n = r->n;
    const char *json = r->json;
    /* A real JSON parser reads the file and checks every field the report
     * promises (python3's json module: scripts/setup.sh installs python3). */
    char cmd[2048];
    int len = snprintf(cmd, sizeof cmd, "python3 - '%s' %d", json, r->rounds);
    for (size_t i = 0; i < n; i++)
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s'", scenarios[i]);
    snprintf(cmd + len, sizeof cmd - (size_t)len, " <<'PY'\n%s\nPY\n",
             "import json, sys\n"
             "path, rounds, wanted = sys.argv[1], int(sys.argv[2]), sys.argv[3:]\n"
             "d = json.load(open(path))\n"
             "assert d['rounds'] == rounds, d['rounds']\n"
             "for k in ('kaffe_version', 'librdkafka_version', 'command', 'brokers'):\n"
             "    assert isinstance(d[k], str) and d[k], k\n"
             "assert d['online_cpus'] >= 1 and d['elapsed_s'] > 0\n"
             "by_name = {s['name']: s for s in d['scenarios']}\n"
             "for name in wanted:\n"
             "    s = by_name[name]\n"
             "    assert s['ran'] is True and s['correct'] is True, (name, s['error'])\n"
             "    assert s['msgs_per_s'] > 0 and s['seconds'] > 0 and s['cpu_s'] >= 0, name\n"
             "    assert s['messages'] > 0 and s['expected'] == s['handled_once'], name\n"
             "    assert s['missing'] == 0 and s['committed_equals_log_end'] is True, name\n"
             "    assert s['partitions'] >= 1 and s['message_size'] > 0, name\n"
             "    assert s['cpu_us_per_msg'] > 0, name\n"
             "    rs = s['rounds']\n"
             "    assert [x['round'] for x in rs] == list(range(1, rounds + 1)), rs\n"
             "    assert all(x['correct'] is True and x['msgs_per_s'] > 0 for x in rs), rs\n"
             "    assert s['msgs_per_s'] == max(x['msgs_per_s'] for x in rs), name\n");
    cr_expect_eq(system(cmd), 0, "the JSON report %s does not parse or misses a field", json);
    unlink(json);
}

Test(cli_bench, raw_baselines_complete_and_are_correct) {
    static const char *const s[] = {"raw", "raw-1k", "raw-16k"};
    run_t r;
    run_start(&r, 0, s, sizeof s / sizeof s[0]);
    run_check(&r);
}

/* --rounds: every scenario in every round, each round correct; the kept
 * figures are the best round's. */
Test(cli_bench, rounds_keep_every_round_and_the_best) {
    static const char *const s[] = {"raw", "sync"};
    run_t r;
    run_start_rounds(&r, 5, s, sizeof s / sizeof s[0], 2);
    run_check(&r);
}

Test(cli_bench, list_names_every_family) {
    char *argv[] = {KAFFE_CLI_PATH, "bench", "--list", NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    char line[512];
    int families = 0;
    while (subprocess_read_line(&sp, line, sizeof line, 10000) == 0)
        families |= (strstr(line, " baseline ") ? 1 : 0) | (strstr(line, " modes ") ? 2 : 0) |
                    (strstr(line, " workers ") ? 4 : 0) | (strstr(line, " cost ") ? 8 : 0) |
                    (strstr(line, " size ") ? 16 : 0);
    cr_assert_eq(subprocess_wait(&sp, 10000), 0);
    cr_assert_eq(families, 31);
}

Test(cli_bench, bad_flags_exit_2) {
    char *bad[][4] = {{KAFFE_CLI_PATH, "bench", "--scenario", "nosuch"},
                      {KAFFE_CLI_PATH, "bench", "--messages", "12x"},
                      {KAFFE_CLI_PATH, "bench", "-X", "novalue"},
                      {KAFFE_CLI_PATH, "bench", "--bogus", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[5] = {bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL};
        subprocess_t sp;
        cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
        cr_assert_eq(subprocess_wait(&sp, 10000), 2, "case %zu", i);
    }
}

/* Every scenario of --list, in four concurrent runs (each with its own
 * embedded cluster) to keep the test short; figures are meaningless here,
 * correctness is not. */
Test(cli_bench, every_scenario_completes_and_is_correct) {
    static char names[64][64];
    static const char *groups[4][64];
    size_t count = 0, sizes[4] = {0};
    char *argv[] = {KAFFE_CLI_PATH, "bench", "--list", NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    char line[512];
    while (count < 64 && subprocess_read_line(&sp, line, sizeof line, 10000) == 0)
        if (sscanf(line, "%63s", names[count]) == 1)
            count++;
    cr_assert_eq(subprocess_wait(&sp, 10000), 0);
    cr_assert_gt(count, 10);
    for (size_t i = 0; i < count; i++)
        groups[i % 4][sizes[i % 4]++] = names[i];
    static run_t runs[4];
    for (int g = 0; g < 4; g++)
        run_start(&runs[g], g + 1, groups[g], sizes[g]);
    for (int g = 0; g < 4; g++)
        run_check(&runs[g]);
}
