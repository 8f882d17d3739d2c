/* Fuzz target: the option parsers of `kaffe produce`, `kaffe consume` and
 * `kaffe bench` (cli_parse_produce_args, cli_parse_consume_args,
 * cli_parse_bench_args in src/cli), which print nothing and start nothing.
 *
 * Input: a byte choosing the subcommand, then the arguments separated by NUL
 * bytes (at most 99; argv[0] is the subcommand's name). Each argument is its
 * own allocation, freed after the run, so that ASan sees any pointer a parse
 * keeps into a previous run's arguments (getopt's state is global).
 *
 * Properties (beyond "no crash, leak or UB"):
 *  - CLI_EXIT_OK or CLI_EXIT_USAGE; a usage error has a non-empty message,
 *    NUL-terminated inside err, and nothing is written past err;
 *  - every string the parse returns points into the arguments;
 *  - accepted values are in their documented ranges (partition, batch,
 *    strategy, ack delays, count, idle time, workers, ordering, -X name=value);
 *  - parsing the same arguments twice in a row gives the same answer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "harness/bench.h"
#include "cli/cli.h"
#include "fuzz_support.h"

#define MAX_ARGS 100 /* room for more than CLI_MAX_PROPS -X options */
#define ERR_SIZE 200

static int arg_count;
static char *args[MAX_ARGS + 2];

/* NULL, or a pointer into one of the arguments. */
static void check_in_args(const char *s) {
    if (!s) {
        return;
    }
    for (int i = 0; i < arg_count; i++) {
        size_t len = strlen(args[i]);
        if (s >= args[i] && s <= args[i] + len) {
            return;
        }
    }
    fprintf(stderr, "a parsed string points outside the arguments\n");
    abort();
}

static bool str_same(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool one_of(const char *s, const char *const *choices) {
    for (; *choices; choices++) {
        if (strcmp(s, *choices) == 0) {
            return true;
        }
    }
    return false;
}

static bool props_same(char *const *a, size_t na, char *const *b, size_t nb) {
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i], b[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* A fresh argv (the parsers may permute it) over the same strings. */
static char **fresh_argv(char **argv) {
    memcpy(argv, args, sizeof args);
    return argv;
}

static int parse(int which, char *err, void *out, bool *list, bool *help) {
    char *argv[MAX_ARGS + 2];
    fresh_argv(argv);
    fuzz_errstr_prepare(err, ERR_SIZE + 16);
    int rc;
    if (which == 0) {
        rc = cli_parse_produce_args(arg_count, argv, out, err, ERR_SIZE);
    } else if (which == 1) {
        rc = cli_parse_consume_args(arg_count, argv, out, err, ERR_SIZE);
    } else {
        bench_options_t *o = out;
        *o = (bench_options_t){.scale = 1.0, .live_ms = 1000};
        *list = *help = false;
        rc = cli_parse_bench_args(arg_count, argv, o, list, help, err, ERR_SIZE);
    }
    FUZZ_CHECK(rc == CLI_EXIT_OK || rc == CLI_EXIT_USAGE);
    fuzz_errstr_check(err, ERR_SIZE, ERR_SIZE + 16, rc != CLI_EXIT_OK);
    if (rc != CLI_EXIT_OK) {
        FUZZ_CHECK(err[0] != '\0');
    }
    return rc;
}

/* The shared client options of two parses of the same input are the same,
 * and every string points into the arguments. */
static void check_client(const cli_client_args_t *a, const cli_client_args_t *b) {
    FUZZ_CHECK(a->help == b->help && str_same(a->brokers, b->brokers) &&
               str_same(a->config, b->config) &&
               props_same(a->props, a->prop_count, b->props, b->prop_count));
    check_in_args(a->brokers);
    check_in_args(a->config);
    FUZZ_CHECK(a->prop_count <= CLI_MAX_PROPS);
    for (size_t i = 0; i < a->prop_count; i++) {
        check_in_args(a->props[i]);
    }
}

static void check_produce(void) {
    static const char *const strategies[] = {"round_robin", "random", "md5", "murmur2", NULL};
    cli_produce_args_t a, b;
    char err_a[ERR_SIZE + 16], err_b[ERR_SIZE + 16];
    int rc = parse(0, err_a, &a, NULL, NULL);
    FUZZ_CHECK(parse(0, err_b, &b, NULL, NULL) == rc);
    if (rc != CLI_EXIT_OK) {
        FUZZ_CHECK(strcmp(err_a, err_b) == 0);
        return;
    }
    check_client(&a.client, &b.client);
    FUZZ_CHECK(str_same(a.topic, b.topic) && str_same(a.strategy, b.strategy) &&
               str_same(a.delim, b.delim) && a.partition == b.partition && a.batch == b.batch &&
               a.sync == b.sync && a.in_flight == b.in_flight);
    check_in_args(a.topic);
    check_in_args(a.strategy);
    check_in_args(a.delim);
    if (a.client.help) {
        return;
    }
    FUZZ_CHECK(a.topic && a.topic[0] != '\0');
    FUZZ_CHECK(a.partition == KAFFE_PARTITION_ANY ||
               (a.partition >= 0 && a.partition <= INT32_MAX));
    FUZZ_CHECK(a.batch == 0 || (a.batch >= 1 && a.batch <= CLI_PRODUCE_MAX_BATCH));
    FUZZ_CHECK(a.in_flight >= 1 && a.in_flight <= CLI_PRODUCE_MAX_IN_FLIGHT);
    FUZZ_CHECK(!(a.sync && a.batch)); /* one mode */
    FUZZ_CHECK(!a.strategy || one_of(a.strategy, strategies));
    FUZZ_CHECK(!a.delim || a.delim[0] != '\0');
}

static void check_consume(void) {
    static const char *const orderings[] = {"partition", "key", "unordered", NULL};
    cli_consume_args_t a, b;
    char err_a[ERR_SIZE + 16], err_b[ERR_SIZE + 16];
    int rc = parse(1, err_a, &a, NULL, NULL);
    FUZZ_CHECK(parse(1, err_b, &b, NULL, NULL) == rc);
    if (rc != CLI_EXIT_OK) {
        FUZZ_CHECK(strcmp(err_a, err_b) == 0);
        return;
    }
    check_client(&a.client, &b.client);
    FUZZ_CHECK(str_same(a.topics, b.topics) && str_same(a.group, b.group) &&
               str_same(a.ordering, b.ordering) && str_same(a.workers, b.workers) &&
               a.earliest == b.earliest && a.async == b.async && a.delay_given == b.delay_given &&
               a.json == b.json && a.delay_min == b.delay_min && a.delay_max == b.delay_max &&
               a.count == b.count && a.idle_ms == b.idle_ms);
    check_in_args(a.topics);
    check_in_args(a.group);
    check_in_args(a.ordering);
    check_in_args(a.workers);
    if (a.client.help) {
        return;
    }
    FUZZ_CHECK(a.delay_min >= 0 && a.delay_min <= a.delay_max && a.delay_max <= 3600000);
    FUZZ_CHECK(!a.delay_given || a.async);
    FUZZ_CHECK(a.count >= 0 && a.count <= 1000000000000L);
    FUZZ_CHECK(a.idle_ms >= 0 && a.idle_ms <= 86400000);
    FUZZ_CHECK(!a.ordering || one_of(a.ordering, orderings));
    if (a.workers) {
        long n;
        FUZZ_CHECK(cli_parse_long(a.workers, 1, 1024, &n) == 0);
    }
}

static void check_bench(void) {
    bench_options_t a, b;
    bool list_a, help_a, list_b, help_b;
    char err_a[ERR_SIZE + 16], err_b[ERR_SIZE + 16];
    int rc = parse(2, err_a, &a, &list_a, &help_a);
    FUZZ_CHECK(parse(2, err_b, &b, &list_b, &help_b) == rc);
    if (rc != CLI_EXIT_OK) {
        FUZZ_CHECK(strcmp(err_a, err_b) == 0);
        return;
    }
    FUZZ_CHECK(list_a == list_b && help_a == help_b &&
               memcmp(a.selected, b.selected, sizeof a.selected) == 0 &&
               a.any_selected == b.any_selected && str_same(a.brokers, b.brokers) &&
               a.scale == b.scale && a.live_ms == b.live_ms && str_same(a.json_path, b.json_path) &&
               str_same(a.plot_dir, b.plot_dir) &&
               props_same(a.props, a.prop_count, b.props, b.prop_count));
    check_in_args(a.brokers);
    check_in_args(a.json_path);
    check_in_args(a.plot_dir);
    FUZZ_CHECK(a.prop_count <= BENCH_MAX_PROPS);
    for (size_t i = 0; i < a.prop_count; i++) {
        check_in_args(a.props[i]);
        FUZZ_CHECK(a.props[i][0] != '=' && strchr(a.props[i], '='));
    }
    FUZZ_CHECK(a.scale > 0 && a.live_ms > 0);
    FUZZ_CHECK(!a.brokers || a.brokers[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"produce", "consume", "bench"};
    if (size < 1) {
        return 0;
    }
    int which = data[0] % 3;
    data++;
    size--;
    arg_count = 0;
    args[arg_count++] = strdup(names[which]);
    size_t at = 0;
    while (at < size && arg_count < MAX_ARGS) {
        const uint8_t *nul = memchr(data + at, '\0', size - at);
        size_t len = nul ? (size_t)(nul - (data + at)) : size - at;
        args[arg_count++] = fuzz_strndup(data + at, len);
        at += len + 1;
    }
    args[arg_count] = NULL;
    if (which == 0) {
        check_produce();
    } else if (which == 1) {
        check_consume();
    } else {
        check_bench();
    }
    for (int i = 0; i < arg_count; i++) {
        free(args[i]);
    }
    return 0;
}
