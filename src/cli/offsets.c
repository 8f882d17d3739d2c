/* kaffe offsets -b BROKERS -g GROUP -t TOPIC[,TOPIC...] [-c FILE] [-X name=value]...
 * Prints a consumer group's committed offset, the log end and the lag of
 * every partition of the topics, without joining the group: an OffsetFetch
 * to the group's coordinator (rd_kafka_committed on a handle that never
 * subscribes), so running members are not disturbed. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include <kaffe/kaffe.h>

#include "cli/cli.h"
#include "conf/conf.h"

#define TIMEOUT_MS 10000

static void offsets_help(void) {
    printf("usage: kaffe offsets -b BROKERS -g GROUP -t TOPIC[,TOPIC...] [options]\n"
           "\n"
           "Prints the group's committed offset, the log end offset and the lag of every\n"
           "partition of the topics, one line each (tab-separated, after a header line),\n"
           "without joining the group: the group's members are not disturbed, and the\n"
           "group need not be running. \"-\" marks a partition without a committed offset.\n"
           "kaffe commits the offset of the next message to handle, so a caught-up group\n"
           "has committed = log_end and lag 0.\n"
           "\n"
           "  -b, --brokers LIST     host:port[,host:port...] (may be omitted with\n"
           "                         heroku_kafka_env=true or endpoints in -c/-X)\n"
           "  -g, --group GROUP      the consumer group\n"
           "  -t, --topic TOPICS     comma-separated topics\n"
           "  -c, --config FILE      kaffe properties, name = value per line (TLS, SASL, ...)\n"
           "  -X name=value          a kaffe property, or rdkafka.<property> (repeatable)\n"
           "  -h, --help             this help\n"
           "\n"
           "Exit status: 0, 1 if the offsets could not be read, 2 on bad usage.\n");
}

/* Reads the committed offsets and log ends of parts' partitions and prints
 * them. CLI_EXIT_OK or CLI_EXIT_FAILURE (message printed). */
static int print_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts) {
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, parts, TIMEOUT_MS);
    if (err) {
        fprintf(stderr, "kaffe offsets: committed offsets: %s\n", rd_kafka_err2str(err));
        return CLI_EXIT_FAILURE;
    }
    printf("topic\tpartition\tcommitted\tlog_end\tlag\n");
    int rc = CLI_EXIT_OK;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t low = -1, high = -1;
        err = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &low, &high, TIMEOUT_MS);
        if (err || p->err) {
            fprintf(stderr, "kaffe offsets: %s [%" PRId32 "]: %s\n", p->topic, p->partition,
                    rd_kafka_err2str(err ? err : p->err));
            rc = CLI_EXIT_FAILURE;
            continue;
        }
        if (p->offset < 0)
            printf("%s\t%" PRId32 "\t-\t%" PRId64 "\t-\n", p->topic, p->partition, high);
        else
            printf("%s\t%" PRId32 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\n", p->topic,
                   p->partition, p->offset, high, high - p->offset);
    }
    return rc;
}

/* Adds every partition of topic (from the cluster's metadata) to parts. */
static int add_partitions(rd_kafka_t *rk, const char *topic,
                          rd_kafka_topic_partition_list_t *parts) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err =
        rkt ? rd_kafka_metadata(rk, 0, rkt, &md, TIMEOUT_MS) : rd_kafka_last_error();
    if (!err && (md->topic_cnt != 1 || md->topics[0].err))
        err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (!err)
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (err) {
        fprintf(stderr, "kaffe offsets: %s: %s\n", topic, rd_kafka_err2str(err));
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

/* Never called: a consumer configuration must name a handler, and this one
 * only builds the librdkafka configuration (security, endpoints, group). */
static int no_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

static int sort_by_topic_partition(const void *a, const void *b) {
    const rd_kafka_topic_partition_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

int cli_offsets(int argc, char **argv) {
    static const struct option options[] = {{"group", required_argument, NULL, 'g'},
                                            {"topic", required_argument, NULL, 't'},
                                            CLI_CLIENT_LONG_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    cli_client_args_t client = {0};
    const char *group = NULL, *topics = NULL;
    char usage[512];
    int opt;
    optind = 0;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":g:t:" CLI_CLIENT_OPTSTRING, options, NULL)) != -1) {
        if (opt == 'g')
            group = optarg;
        else if (opt == 't')
            topics = optarg;
        else if (cli_parse_client_option(opt, argv, &client, usage, sizeof usage) != CLI_EXIT_OK)
            return cli_usage_error("offsets", "%s", usage);
    }
    if (client.help) {
        offsets_help();
        return CLI_EXIT_OK;
    }
    if (optind < argc)
        return cli_usage_error("offsets", "unexpected argument \"%s\"", argv[optind]);
    if (!group || !*group)
        return cli_usage_error("offsets", "-g GROUP is required");
    if (!topics || !*topics)
        return cli_usage_error("offsets", "-t TOPIC is required");

    kaffe_conf_t *conf = kaffe_conf_new();
    kaffe_conf_set_message_handler(conf, no_handler, NULL);
    int rc = cli_conf_apply("offsets", conf, client.config, client.props, client.prop_count);
    if (rc == CLI_EXIT_OK && client.brokers)
        rc = cli_conf_set("offsets", conf, "endpoints", client.brokers);
    if (rc == CLI_EXIT_OK)
        rc = cli_conf_set("offsets", conf, "topics", topics);
    if (rc == CLI_EXIT_OK)
        rc = cli_conf_set("offsets", conf, "consumer_group", group);
    if (rc == CLI_EXIT_OK && !cli_conf_has_brokers(conf))
        rc = cli_usage_error("offsets", "-b BROKERS is required (or endpoints or "
                                        "heroku_kafka_env=true in -c/-X)");
    char err[512];
    rd_kafka_conf_t *rdconf = NULL;
    if (rc == CLI_EXIT_OK && !(rdconf = conf_to_rdkafka(conf, CONF_ROLE_CONSUMER, err, sizeof err)))
        rc = cli_usage_error("offsets", "%s", err);
    if (rc != CLI_EXIT_OK) {
        kaffe_conf_destroy(conf);
        return rc;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, rdconf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(rdconf);
        kaffe_conf_destroy(conf);
        return cli_usage_error("offsets", "%s", err);
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
    char **names;
    size_t count = conf_list(conf, "topics", &names);
    for (size_t i = 0; i < count && rc == CLI_EXIT_OK; i++)
        rc = add_partitions(rk, names[i], parts);
    conf_list_free(names);
    if (rc == CLI_EXIT_OK) {
        qsort(parts->elems, (size_t)parts->cnt, sizeof parts->elems[0], sort_by_topic_partition);
        rc = print_offsets(rk, parts);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
    kaffe_conf_destroy(conf);
    return rc;
}
