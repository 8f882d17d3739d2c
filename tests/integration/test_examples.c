/* The programs in examples/, run as a user would run them, against the
 * embedded cluster started here: each prints what the README says, stops
 * after COUNT messages or on SIGTERM, and leaves the cluster in the state
 * it describes (commits, partitions). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"
#include "support/subprocess.h"

#define LINE_TIMEOUT_MS 30000

static mock_cluster_t *cluster;
static char conf_path[64];

/* Starts a cluster with the given topics, and writes a KAFFE_CONF file with
 * group timings suited to the embedded cluster. */
static void start(const mock_topic_t *topics, size_t count) {
    cluster = test_mock_cluster_start(1, topics, count);
    snprintf(conf_path, sizeof conf_path, "/tmp/kaffe-examples-%d.conf", (int)getpid());
    FILE *f = fopen(conf_path, "w");
    cr_assert_not_null(f);
    fputs("# the embedded cluster: fast group timings\n"
          "commit_interval_ms = 100\n"
          "rdkafka.session.timeout.ms = 6000\n"
          "rdkafka.heartbeat.interval.ms = 200\n"
          "rdkafka.fetch.wait.max.ms = 20\n",
          f);
    fclose(f);
    setenv("KAFFE_CONF", conf_path, 1);
}

static void finish(void) {
    mock_cluster_stop(cluster);
    cluster = NULL;
    unlink(conf_path);
}

/* All stdout lines of a child until it exits. */
typedef struct output {
    char lines[512][160];
    size_t count;
} output_t;

static int run_to_end(char *const argv[], output_t *out) {
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    out->count = 0;
    char line[160];
    while (out->count < 512 && subprocess_read_line(&sp, line, sizeof line, LINE_TIMEOUT_MS) == 0)
        snprintf(out->lines[out->count++], sizeof out->lines[0], "%s", line);
    return subprocess_wait(&sp, LINE_TIMEOUT_MS);
}

static size_t count_lines_containing(const output_t *out, const char *needle) {
    size_t n = 0;
    for (size_t i = 0; i < out->count; i++)
        n += strstr(out->lines[i], needle) != NULL;
    return n;
}

static int has_line(const output_t *out, const char *line) {
    for (size_t i = 0; i < out->count; i++)
        if (strcmp(out->lines[i], line) == 0)
            return 1;
    return 0;
}

/* Each of value-first .. value-(first+n-1) (with prefix, e.g. ": value-3" at
 * the end of a line) is printed exactly once, and no other value. */
static void assert_values_once(const output_t *out, const char *fmt, int first, int n,
                               size_t expected_total) {
    for (int i = first; i < first + n; i++) {
        char want[64];
        snprintf(want, sizeof want, fmt, i);
        size_t seen = 0;
        for (size_t l = 0; l < out->count; l++) {
            size_t ll = strlen(out->lines[l]), wl = strlen(want);
            seen += ll >= wl && strcmp(out->lines[l] + ll - wl, want) == 0;
        }
        cr_assert_eq(seen, 1, "\"%s\" printed %zu times", want, seen);
    }
    cr_assert_eq(out->count, expected_total, "%zu lines", out->count);
}

static int64_t committed_total(const char *group, const char *topic, int partitions) {
    int64_t total = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t o = plain_committed(mock_cluster_bootstraps(cluster), group, topic, p, NULL);
        total += o < 0 ? 0 : o;
    }
    return total;
}

Test(examples, consumer_sync_prints_every_message_commits_and_resumes_after_them) {
    mock_topic_t topics[] = {{"interesting-topic", 3}};
    start(topics, 1);
    const char *b = mock_cluster_bootstraps(cluster);
    cr_assert_eq(plain_produce(b, "interesting-topic", RD_KAFKA_PARTITION_UA, 30, 0, 5), 30);
    setenv("KAFFE_GROUP", "example-sync", 1);

    char *argv[] = {EXAMPLE_CONSUMER_SYNC, (char *)b, "interesting-topic", "30", NULL};
    output_t *out = malloc(sizeof *out);
    cr_assert_eq(run_to_end(argv, out), 0);
    /* "interesting-topic/P@O key-K: value-I" for each, then the summary. */
    assert_values_once(out, ": value-%d", 0, 30, 31);
    cr_assert_eq(count_lines_containing(out, "interesting-topic/"), 30);
    cr_assert(has_line(out, "consumed 30 messages"));
    cr_assert_eq(committed_total("example-sync", "interesting-topic", 3), 30);

    /* A second run of the same group sees only what was produced since. */
    cr_assert_eq(plain_produce(b, "interesting-topic", RD_KAFKA_PARTITION_UA, 10, 30, 5), 10);
    char *again[] = {EXAMPLE_CONSUMER_SYNC, (char *)b, "interesting-topic", "10", NULL};
    cr_assert_eq(run_to_end(again, out), 0);
    assert_values_once(out, ": value-%d", 30, 10, 11);
    cr_assert(has_line(out, "consumed 10 messages"));
    cr_assert_eq(committed_total("example-sync", "interesting-topic", 3), 40);
    free(out);
    finish();
}

Test(examples, consumer_sync_without_count_stops_cleanly_on_sigterm) {
    mock_topic_t topics[] = {{"interesting-topic", 2}};
    start(topics, 1);
    const char *b = mock_cluster_bootstraps(cluster);
    cr_assert_eq(plain_produce(b, "interesting-topic", RD_KAFKA_PARTITION_UA, 5, 0, 0), 5);
    unsetenv("KAFFE_GROUP");
    setenv("KAFFE_ENDPOINTS", b, 1); /* endpoints and topic from the environment */
    setenv("KAFFE_TOPIC", "interesting-topic", 1);

    char *argv[] = {EXAMPLE_CONSUMER_SYNC, NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    char line[160];
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(subprocess_read_line(&sp, line, sizeof line, LINE_TIMEOUT_MS), 0, "line %d",
                     i);
        cr_assert(strstr(line, ": value-"), "%s", line);
    }
    cr_assert_eq(kill(sp.pid, SIGTERM), 0);
    cr_assert_eq(subprocess_read_line(&sp, line, sizeof line, LINE_TIMEOUT_MS), 0);
    cr_assert_str_eq(line, "consumed 5 messages");
    cr_assert_eq(subprocess_wait(&sp, LINE_TIMEOUT_MS), 0);
    cr_assert_eq(committed_total("consumer-sync-example", "interesting-topic", 2), 5);
    finish();
}

Test(examples, consumer_async_workers_ack_every_message_and_all_are_committed) {
    mock_topic_t topics[] = {{"commitlog", 3}};
    start(topics, 1);
    const char *b = mock_cluster_bootstraps(cluster);
    cr_assert_eq(plain_produce(b, "commitlog", RD_KAFKA_PARTITION_UA, 60, 0, 7), 60);
    setenv("KAFFE_GROUP", "example-async", 1);

    char *argv[] = {EXAMPLE_CONSUMER_ASYNC, (char *)b, "commitlog", "60", NULL};
    output_t *out = malloc(sizeof *out);
    cr_assert_eq(run_to_end(argv, out), 0);
    /* "acked commitlog/P@O key-K: VALUE-I": processed (upper case), then acked. */
    assert_values_once(out, ": VALUE-%d", 0, 60, 61);
    cr_assert_eq(count_lines_containing(out, "acked commitlog/"), 60);
    cr_assert(has_line(out, "acked 60 messages"));
    cr_assert_eq(committed_total("example-async", "commitlog", 3), 60);
    free(out);
    finish();
}

Test(examples, consumer_async_on_sigterm_drains_its_workers_acks_and_commits) {
    mock_topic_t topics[] = {{"commitlog", 2}};
    start(topics, 1);
    const char *b = mock_cluster_bootstraps(cluster);
    cr_assert_eq(plain_produce(b, "commitlog", RD_KAFKA_PARTITION_UA, 20, 0, 3), 20);
    setenv("KAFFE_GROUP", "example-async-sigterm", 1);

    char *argv[] = {EXAMPLE_CONSUMER_ASYNC, (char *)b, "commitlog", NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    char line[160];
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(subprocess_read_line(&sp, line, sizeof line, LINE_TIMEOUT_MS), 0, "line %d",
                     i);
        cr_assert(strncmp(line, "acked commitlog/", 16) == 0, "%s", line);
    }
    cr_assert_eq(kill(sp.pid, SIGTERM), 0);
    cr_assert_eq(subprocess_read_line(&sp, line, sizeof line, LINE_TIMEOUT_MS), 0);
    cr_assert_str_eq(line, "acked 20 messages");
    cr_assert_eq(subprocess_wait(&sp, LINE_TIMEOUT_MS), 0);
    cr_assert_eq(committed_total("example-async-sigterm", "commitlog", 2), 20);
    finish();
}

Test(examples, consumer_topics_adds_a_topic_and_a_pattern_while_running) {
    mock_topic_t topics[] = {{"first", 2}, {"second", 2}, {"orders.eu", 1}, {"other", 1}};
    start(topics, 4);
    const char *b = mock_cluster_bootstraps(cluster);
    cr_assert_eq(plain_produce(b, "first", RD_KAFKA_PARTITION_UA, 5, 0, 3), 5);
    cr_assert_eq(plain_produce(b, "second", RD_KAFKA_PARTITION_UA, 5, 5, 3), 5);
    cr_assert_eq(plain_produce(b, "orders.eu", 0, 5, 10, 3), 5);
    cr_assert_eq(plain_produce(b, "other", 0, 5, 15, 3), 5);
    setenv("KAFFE_GROUP", "example-topics", 1);

    char *argv[] = {EXAMPLE_CONSUMER_TOPICS, (char *)b, "first", "second,^orders\\..*", "15", NULL};
    output_t *out = malloc(sizeof *out);
    cr_assert_eq(run_to_end(argv, out), 0);
    /* The 15 messages of first, second and orders.eu (not other), the
     * subscription line and the summary. */
    assert_values_once(out, ": value-%d", 0, 15, 17);
    cr_assert_eq(count_lines_containing(out, "other/"), 0);
    cr_assert(has_line(out, "subscribed to second,^orders\\..*"));
    cr_assert(has_line(out, "consumed 15 messages"));
    cr_assert_eq(committed_total("example-topics", "first", 2), 5);
    cr_assert_eq(committed_total("example-topics", "second", 2), 5);
    cr_assert_eq(committed_total("example-topics", "orders.eu", 1), 5);
    free(out);
    finish();
}

/* One message with this value (key "k"), delivered before it returns. */
static void produce_value(const char *topic, int32_t partition, const char *value) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", mock_cluster_bootstraps(cluster), err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    cr_assert_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                   RD_KAFKA_V_KEY("k", 1),
                                   RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                 RD_KAFKA_RESP_ERR_NO_ERROR);
    cr_assert_eq(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

Test(examples, consumer_batch_stores_batches_and_fails_only_the_poison_message) {
    mock_topic_t topics[] = {{"batched", 2}};
    start(topics, 1);
    const char *b = mock_cluster_bootstraps(cluster);
    cr_assert_eq(plain_produce(b, "batched", 0, 10, 0, 3), 10);
    produce_value("batched", 0, "poison");
    cr_assert_eq(plain_produce(b, "batched", 0, 10, 10, 3), 10);
    cr_assert_eq(plain_produce(b, "batched", 1, 20, 20, 3), 20);
    setenv("KAFFE_GROUP", "example-batch", 1);

    char *argv[] = {EXAMPLE_CONSUMER_BATCH, (char *)b, "batched", "41", NULL};
    output_t *out = malloc(sizeof *out);
    cr_assert_eq(run_to_end(argv, out), 0);
    /* Each of the 40 values once; the poison message failed twice (retried
     * alone: batches of one) and skipped the third time; batch lines of one
     * partition each; the summary. */
    size_t batch_lines = count_lines_containing(out, "batch of ");
    /* Its two retries (its first attempt too, if it was fetched alone). */
    size_t alone = count_lines_containing(out, "batch of 1: batched/0@10..10");
    cr_assert(alone == 2 || alone == 3, "the poison message alone in %zu batches", alone);
    cr_assert_lt(batch_lines, 41, "%zu batches for 40 messages", batch_lines);
    cr_assert(has_line(out, "  10 skipped after 3 attempts"));
    assert_values_once(out, ": value-%d", 0, 40, 40 + 1 + batch_lines + 1);
    char summary[64];
    snprintf(summary, sizeof summary, "consumed 41 messages in %zu batches", batch_lines);
    cr_assert(has_line(out, summary), "no line \"%s\"", summary);
    /* Everything is committed: 21 messages on partition 0, 20 on 1. */
    cr_assert_eq(committed_total("example-batch", "batched", 2), 41);
    free(out);
    finish();
}

Test(examples, producer_uses_the_three_forms_and_the_partition_function) {
    mock_topic_t topics[] = {{"kafka-topic", 3}, {"whitelist", 2}};
    start(topics, 2);
    const char *b = mock_cluster_bootstraps(cluster);

    char *argv[] = {EXAMPLE_PRODUCER, (char *)b, "kafka-topic", "whitelist", "9", NULL};
    output_t *out = malloc(sizeof *out);
    cr_assert_eq(run_to_end(argv, out), 0);
    for (int i = 0; i < 9; i++) {
        char want[64];
        snprintf(want, sizeof want, "form 1: user-%d -> OK", i);
        cr_assert(has_line(out, want), "missing \"%s\"", want);
    }
    cr_assert(has_line(out, "form 2: user-7 -> OK"));
    cr_assert(has_line(out, "form 3: user-8 -> OK"));
    cr_assert(has_line(out, "produced 11 messages"));
    cr_assert_eq(out->count, 12);
    free(out);

    /* Form 1 with the function: user-n on partition n mod 3, three each. */
    for (int p = 0; p < 3; p++)
        cr_assert_eq(plain_log_end(b, "kafka-topic", p), 3, "partition %d", p);
    plain_message_t *msgs;
    size_t n = plain_consume_all(b, "kafka-topic", 100, 1500, &msgs);
    cr_assert_eq(n, 9);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(atoi(msgs[i].key + 5) % 3, msgs[i].partition, "%s on %d", msgs[i].key,
                     msgs[i].partition);
    plain_messages_free(msgs, n);
    /* Form 2: user-7 -> 7 mod 2 = partition 1; form 3: pinned to partition 0. */
    n = plain_consume_all(b, "whitelist", 100, 1500, &msgs);
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
        int pinned = strcmp(msgs[i].key, "user-8") == 0;
        cr_assert_eq(msgs[i].partition, pinned ? 0 : 1, "%s on %d", msgs[i].key, msgs[i].partition);
    }
    plain_messages_free(msgs, n);
    finish();
}

/* "kafka://host:port,kafka://host:port" from the cluster's bootstrap list. */
static void set_plaintext_kafka_url(const char *bootstraps) {
    char url[512] = "", copy[256];
    snprintf(copy, sizeof copy, "%s", bootstraps);
    for (char *save, *hp = strtok_r(copy, ",", &save); hp; hp = strtok_r(NULL, ",", &save)) {
        if (*url)
            strncat(url, ",", sizeof url - strlen(url) - 1);
        strncat(url, "kafka://", sizeof url - strlen(url) - 1);
        strncat(url, hp, sizeof url - strlen(url) - 1);
    }
    setenv("KAFKA_URL", url, 1);
}

Test(examples, heroku_reads_kafka_url_then_produces_and_consumes) {
    mock_topic_t topics[] = {{"interesting-topic", 2}};
    start(topics, 1);
    set_plaintext_kafka_url(mock_cluster_bootstraps(cluster));
    setenv("KAFFE_GROUP", "example-heroku", 1);

    char *argv[] = {EXAMPLE_HEROKU, "interesting-topic", "5", NULL};
    output_t *out = malloc(sizeof *out);
    cr_assert_eq(run_to_end(argv, out), 0);
    cr_assert_str_eq(out->lines[0], "brokers from KAFKA_URL (plaintext)");
    cr_assert_str_eq(out->lines[1], "produced 5 messages");
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, " hello from heroku mode #%d", i);
        cr_assert_eq(count_lines_containing(out, want), 1, "%s", want);
    }
    cr_assert(has_line(out, "consumed 5 messages"));
    cr_assert_eq(out->count, 8);
    free(out);
    finish();
}

Test(examples, heroku_with_a_bad_environment_exits_2_before_connecting) {
    output_t *out = malloc(sizeof *out);
    char *argv[] = {EXAMPLE_HEROKU, "interesting-topic", "1", NULL};
    unsetenv("KAFKA_URL");
    cr_assert_eq(run_to_end(argv, out), 2);
    cr_assert_str_eq(out->lines[0], "brokers from KAFKA_URL (not set)");
    /* Certificates with a plaintext URL would silently go unused: refused. */
    setenv("KAFKA_URL", "kafka://127.0.0.1:1", 1);
    setenv("KAFKA_CLIENT_CERT", "-----BEGIN CERTIFICATE-----", 1);
    cr_assert_eq(run_to_end(argv, out), 2);
    setenv("KAFKA_URL", "https://127.0.0.1:1", 1);
    unsetenv("KAFKA_CLIENT_CERT");
    cr_assert_eq(run_to_end(argv, out), 2);
    free(out);
}
