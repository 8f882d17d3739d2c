/* The `kaffe` command: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include <kaffe/kaffe.h>

#include "cli/cli.h"

/* `kaffe version`, `kaffe --version`: the library's version and
 * librdkafka's, one line on stdout. */
static int cli_version(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "kaffe version: takes no arguments\n");
        return CLI_EXIT_USAGE;
    }
    printf("kaffe %s (librdkafka %s)\n", kaffe_version_str(), rd_kafka_version_str());
    return CLI_EXIT_OK;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommands[] = {
    {"mock", cli_mock, "start an embedded Kafka cluster and print its bootstrap servers"},
    {"produce", cli_produce, "produce one message per stdin line"},
    {"consume", cli_consume, "consume with the kaffe consumer and print each message"},
    {"offsets", cli_offsets, "print a group's committed offsets and lag without joining it"},
    {"bench", cli_bench, "benchmark the consumer against a plain librdkafka loop"},
    {"version", cli_version, "print kaffe's and librdkafka's versions (also --version)"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: kaffe <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out, "\n`kaffe <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return cli_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "kaffe: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
