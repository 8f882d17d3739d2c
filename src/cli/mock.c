/* kaffe mock [--brokers N] [--topic NAME:PARTITIONS]...
 * Starts the embedded cluster, prints its bootstrap servers as the first line
 * of stdout, and serves until SIGINT or SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "mock/mock_cluster.h"

#define MAX_TOPICS 64

static void mock_help(void) {
    printf("usage: kaffe mock [--brokers N] [--topic NAME:PARTITIONS]...\n\n"
           "Starts librdkafka's mock cluster (real Kafka protocol, plaintext, on 127.0.0.1),\n"
           "prints its bootstrap servers as the first line, and serves until SIGINT/SIGTERM.\n"
           "A mock partition keeps only about 100k messages or 5 MB; older data is dropped.\n"
           "Topics are created by --topic, or on first use by a client that asks for it\n"
           "(allow.auto.create.topics=true, librdkafka's producer default, e.g. kcat -P),\n"
           "with 4 partitions, as by a broker with auto.create.topics.enable=true. kaffe's\n"
           "producer and consumers do not ask: they get an unknown-topic error.\n"
           "A consumer group whose last member left waits for the leaver's session timeout\n"
           "(minus 1 s) before it takes a new member: give consumers of the mock a short\n"
           "rdkafka.session.timeout.ms (e.g. 6000) for quick restarts.\n\n"
           "  -B, --brokers N              brokers (1..16, default 1)\n"
           "  -t, --topic NAME:PARTITIONS  create a topic (repeatable; partitions 1..10000)\n"
           "  -h, --help                   this help\n");
}

int cli_mock(int argc, char **argv) {
    static const struct option options[] = {{"brokers", required_argument, NULL, 'B'},
                                            {"topic", required_argument, NULL, 't'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    long brokers = 1;
    mock_topic_t topics[MAX_TOPICS];
    char *names[MAX_TOPICS];
    size_t topic_count = 0;
    int rc = CLI_EXIT_OK;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":B:t:h", options, NULL)) != -1) {
        switch (opt) {
            case 'B':
                if (cli_parse_long(optarg, 1, 16, &brokers) != 0)
                    rc = cli_usage_error("mock", "--brokers: expected 1..16, got \"%s\"", optarg);
                break;
            case 't': {
                char *colon = strrchr(optarg, ':');
                long partitions = 0;
                if (!colon || colon == optarg || cli_parse_long(colon + 1, 1, 10000, &partitions)) {
                    rc = cli_usage_error("mock", "--topic: expected NAME:PARTITIONS, got \"%s\"",
                                         optarg);
                    break;
                }
                if (topic_count == MAX_TOPICS) {
                    rc = cli_usage_error("mock", "--topic: at most %d topics", MAX_TOPICS);
                    break;
                }
                names[topic_count] = strndup(optarg, (size_t)(colon - optarg));
                topics[topic_count].name = names[topic_count];
                topics[topic_count].partitions = (int)partitions;
                topic_count++;
                break;
            }
            case 'h':
                mock_help();
                goto out;
            default:
                rc = cli_bad_option("mock", opt, argv);
        }
        if (rc != CLI_EXIT_OK)
            goto out;
    }
    if (optind < argc) {
        rc = cli_usage_error("mock", "unexpected argument \"%s\"", argv[optind]);
        goto out;
    }

    sigset_t stop_signals;
    cli_block_stop_signals(&stop_signals);
    char err[256];
    mock_cluster_t *mc = mock_cluster_start((int)brokers, topics, topic_count, err, sizeof err);
    if (mc && mock_cluster_honour_auto_create(mc) != 0) {
        snprintf(err, sizeof err, "could not set the Metadata API version");
        mock_cluster_stop(mc);
        mc = NULL;
    }
    if (!mc) {
        fprintf(stderr, "kaffe mock: %s\n", err);
        rc = CLI_EXIT_FAILURE;
        goto out;
    }
    printf("%s\n", mock_cluster_bootstraps(mc));
    fflush(stdout);
    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0)
        ;
    mock_cluster_stop(mc);
out:
    for (size_t i = 0; i < topic_count; i++)
        free(names[i]);
    return rc;
}
