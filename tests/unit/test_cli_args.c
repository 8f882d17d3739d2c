/* The option parsers of `kaffe produce`, `consume` and `bench`
 * (cli_parse_*_args): values, messages, and parsing twice in one process. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "harness/bench.h"
#include "cli/cli.h"

/* A heap argv of copies (freed by free_argv), like the fuzz target's. */
static char **make_argv(int argc, const char *const *words) {
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    for (int i = 0; i < argc; i++)
        argv[i] = strdup(words[i]);
    return argv;
}

static void free_argv(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
}

Test(cli_args, produce_options_are_parsed_into_the_struct) {
    const char *words[] = {"produce", "-b", "k1:9092", "--topic=orders", "-p", "3", "-s",
                           "murmur2", "-B", "100",     "-Xacks=all"};
    char **argv = make_argv(11, words);
    cli_produce_args_t a;
    char err[256];
    cr_assert_eq(cli_parse_produce_args(11, argv, &a, err, sizeof err), CLI_EXIT_OK, "%s", err);
    cr_assert_str_eq(a.client.brokers, "k1:9092");
    cr_assert_str_eq(a.topic, "orders");
    cr_assert_eq(a.partition, 3);
    cr_assert_str_eq(a.strategy, "murmur2");
    cr_assert_eq(a.batch, 100);
    cr_assert_eq(a.client.prop_count, 1);
    cr_assert_str_eq(a.client.props[0], "acks=all");
    cr_assert_not(a.client.help);
    free_argv(11, argv);
}

/* The pipelined default, --sync and --in-flight. */
Test(cli_args, produce_modes_are_parsed_into_the_struct) {
    const char *words[][3] = {{"produce", "-tt", NULL},
                              {"produce", "-tt", "--sync"},
                              {"produce", "-tt", "--in-flight=7"}};
    char err[256];
    cli_produce_args_t a;
    for (size_t i = 0; i < 3; i++) {
        int argc = words[i][2] ? 3 : 2;
        char **argv = make_argv(argc, words[i]);
        cr_assert_eq(cli_parse_produce_args(argc, argv, &a, err, sizeof err), CLI_EXIT_OK, "%s",
                     err);
        cr_expect_eq(a.sync, i == 1, "case %zu", i);
        cr_expect_eq(a.batch, 0, "case %zu", i);
        cr_expect_eq(a.in_flight, i == 2 ? 7 : CLI_PRODUCE_DEFAULT_IN_FLIGHT, "case %zu", i);
        free_argv(argc, argv);
    }
}

Test(cli_args, bad_values_are_one_line_messages_and_print_nothing) {
    struct {
        int argc;
        const char *words[4];
        const char *message;
    } cases[] = {
        {3, {"produce", "-t", ""}, "-t TOPIC is required"},
        {5, {"produce", "-t", "t", "-B0"}, "--batch: expected 1..10000, got \"0\""},
        {2, {"produce", "-t"}, "option \"-t\" needs a value"},
        {4, {"produce", "-t", "t", "extra"}, "unexpected argument \"extra\""},
        {4, {"produce", "-t", "t", "--in-flight=0"}, "--in-flight: expected 1..1000000, got \"0\""},
        {4,
         {"produce", "-tt", "--sync", "-B2"},
         "--sync, --batch and --in-flight are different modes: give one"},
        {3, {"consume", "-d", "5:1"}, "--ack-delay-ms: expected MIN:MAX, got \"5:1\""},
        {3, {"consume", "-d", "1:5"}, "--ack-delay-ms needs --async"},
        {2, {"consume", "--nope"}, "unknown option \"--nope\""},
        {3, {"bench", "--rounds", "0"}, "--rounds: expected 1..20, got \"0\""},
        {3, {"bench", "-r", "3x"}, "--rounds: expected 1..20, got \"3x\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int argc = cases[i].argc;
        char **argv = make_argv(argc, cases[i].words);
        char err[256] = "";
        int rc;
        if (strcmp(cases[i].words[0], "produce") == 0) {
            cli_produce_args_t a;
            rc = cli_parse_produce_args(argc, argv, &a, err, sizeof err);
        } else if (strcmp(cases[i].words[0], "bench") == 0) {
            bench_options_t o = {.scale = 1.0, .live_ms = 1000};
            bool list = false, help = false;
            rc = cli_parse_bench_args(argc, argv, &o, &list, &help, err, sizeof err);
        } else {
            cli_consume_args_t a;
            rc = cli_parse_consume_args(argc, argv, &a, err, sizeof err);
        }
        cr_assert_eq(rc, CLI_EXIT_USAGE, "case %zu accepted", i);
        cr_assert_str_eq(err, cases[i].message);
        free_argv(argc, argv);
    }
}

/* Found by fuzz/fuzz_cli_args: with optind = 1, glibc's getopt kept its
 * position inside a grouped short option ("-hb": -h returns, "b" is left) and
 * the next parse in the same process continued there, in the previous argv
 * (freed by then) instead of the new one. The parsers now set optind = 0. */
Test(cli_args, a_second_parse_does_not_continue_the_first) {
    const char *first[] = {"produce", "-hb", "x"};
    char **argv = make_argv(3, first);
    cli_produce_args_t a;
    char err[256];
    cr_assert_eq(cli_parse_produce_args(3, argv, &a, err, sizeof err), CLI_EXIT_OK);
    cr_assert(a.client.help);
    char **kept = argv; /* alive, so that a stale position would be read, not crash */

    const char *second[] = {"produce", "-t", "t"};
    argv = make_argv(3, second);
    cr_assert_eq(cli_parse_produce_args(3, argv, &a, err, sizeof err), CLI_EXIT_OK, "%s", err);
    cr_assert_null(a.client.brokers);
    cr_assert_str_eq(a.topic, "t");
    free_argv(3, argv);
    free_argv(3, kept);

    const char *third[] = {"consume", "-ae", "-d", "1:2"};
    argv = make_argv(4, third);
    cli_consume_args_t c;
    cr_assert_eq(cli_parse_consume_args(4, argv, &c, err, sizeof err), CLI_EXIT_OK, "%s", err);
    cr_assert(c.async && c.earliest);
    cr_assert_eq(c.delay_min, 1);
    cr_assert_eq(c.delay_max, 2);
    free_argv(4, argv);

    const char *fourth[] = {"bench", "-lqh"};
    argv = make_argv(2, fourth);
    bench_options_t o = {.scale = 1.0, .live_ms = 1000};
    bool list = false, help = false;
    cr_assert_eq(cli_parse_bench_args(2, argv, &o, &list, &help, err, sizeof err), CLI_EXIT_OK);
    cr_assert(list && help);
    free_argv(2, argv);
    const char *fifth[] = {"bench", "-n", "1000", "--rounds", "3"};
    argv = make_argv(5, fifth);
    o = (bench_options_t){.scale = 1.0, .live_ms = 1000};
    list = help = false;
    cr_assert_eq(cli_parse_bench_args(5, argv, &o, &list, &help, err, sizeof err), CLI_EXIT_OK,
                 "%s", err);
    cr_assert_not(list || help);
    cr_assert_eq(o.live_ms, 1000);
    cr_assert_eq(o.rounds, 3);
    free_argv(5, argv);
}
