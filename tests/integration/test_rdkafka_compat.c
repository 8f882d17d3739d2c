/* The close-before-first-assignment workaround, by librdkafka version
 * (src/common/rdkafka_compat.h, RDKAFKA_BUG_CLOSE_BEFORE_FIRST_ASSIGNMENT_ABORTS).
 *
 * librdkafka before 2.3.0 aborts when a consumer that has joined a
 * cooperative-sticky group but has not had its first assignment yet is
 * closed and destroyed (librdkafka issue #4312); kaffe's stop then waits for
 * that assignment. The window is made wide and certain: the embedded
 * cluster answers the member's SyncGroup SYNC_DELAY_MS late, so the member
 * has joined (its rebalance protocol is known) and has no assignment while
 * the test stops it.
 *
 * The consumer runs in a forked child, so that an abort is an exit status
 * the test reads, not the end of the test binary. The child is forked before
 * the cluster starts (no librdkafka thread runs in the parent at the fork)
 * and reads the bootstrap address from a pipe; it exits with _exit (the
 * parent's Criterion state is not the child's to report).
 *
 * without_the_workaround: stop with the workaround forced off. A fixed
 * librdkafka closes cleanly; one with the bug aborts, which shows the
 * workaround is needed there.
 * by_version: stop as the product does. It never aborts; with a librdkafka
 * that has the bug the stop waited for the assignment, with a fixed one it
 * closed without.
 *
 * compression_without_produce_v0: the compression limit of librdkafka
 * before 2.11.1 (RDKAFKA_BUG_COMPRESSION_NEEDS_PRODUCE_V0), shown with an
 * embedded cluster that advertises Produce v3-v7 only (as a broker that
 * drops the versions KIP-896 removed would): kaffe's producer with gzip
 * logs "not compressing batch" with such a librdkafka and not with a fixed
 * one (2.0.2 says it only in a debug line, rdkafka.debug=msg: the limit is
 * silent otherwise); the messages arrive intact either way. (A real broker's stored
 * batches: tests/broker/test_broker_compression.c.) */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "consumer_helpers.h"
#include "common/rdkafka_compat.h"
#include "consumer/internal.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"
#include "support/subprocess.h"

#define TOPIC "compat-close"
#define SYNC_DELAY_MS 5000
/* The rd_kafka_mock ApiKey of SyncGroup (not in its public headers). */
#define API_SYNC_GROUP 14

/* The child's exit statuses. */
enum {
    CHILD_CLOSED_UNASSIGNED = 0, /* stopped without an assignment */
    CHILD_CLOSED_ASSIGNED = 10,  /* the stop waited for the first assignment */
    CHILD_NO_BOOTSTRAPS = 20,
    CHILD_NO_CONSUMER,
    CHILD_NEVER_JOINED,
    CHILD_ASSIGNED_TOO_SOON,
    CHILD_STOP_FAILED,
};

static atomic_int assigned;

static void count_assigned(kaffe_consumer_t *c, int is_assigned, const char *topic,
                           int32_t partition, void *opaque) {
    (void)c;
    (void)topic;
    (void)partition;
    (void)opaque;
    if (is_assigned)
        atomic_fetch_add(&assigned, 1);
}

static int ignore_message(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

/* Whether c's client has joined its group: it knows the protocol the
 * group's assignor uses, which librdkafka learns from the JoinGroup answer. */
static bool joined(kaffe_consumer_t *c) {
    rd_kafka_t *rk = consumer_rdkafka_hold(c);
    const char *protocol = rk ? rd_kafka_rebalance_protocol(rk) : NULL;
    bool cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    consumer_rdkafka_release(c);
    return cooperative;
}

/* The child: joins, then stops and destroys the consumer while its
 * SyncGroup is still unanswered. Returns an exit status (above). */
static int child_main(int bootstraps_fd) {
    char bootstraps[256];
    ssize_t n = read(bootstraps_fd, bootstraps, sizeof bootstraps - 1);
    if (n <= 0)
        return CHILD_NO_BOOTSTRAPS;
    bootstraps[n] = '\0';
    kaffe_conf_t *conf = test_conf(bootstraps, TOPIC, "g-compat-close", ignore_message, NULL, NULL);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    if (!c || kaffe_consumer_set_rebalance_cb(c, count_assigned, NULL) != KAFFE_OK ||
        kaffe_consumer_start(c) != KAFFE_OK)
        return CHILD_NO_CONSUMER;
    int64_t deadline = clock_now_ms() + 30000;
    while (!joined(c)) {
        if (clock_now_ms() >= deadline)
            return CHILD_NEVER_JOINED;
        clock_sleep_ms(10);
    }
    if (atomic_load(&assigned) > 0)
        return CHILD_ASSIGNED_TOO_SOON;
    if (kaffe_consumer_stop(c) != KAFFE_OK)
        return CHILD_STOP_FAILED;
    /* The assignment the stop waited for reaches a drained consumer: taken
     * without the rebalance callback, so the consumer says whether it came. */
    bool waited = consumer_test_waited_for_first_assignment(c);
    kaffe_consumer_destroy(c);
    return waited ? CHILD_CLOSED_ASSIGNED : CHILD_CLOSED_UNASSIGNED;
}

/* Forks the child (with the workaround assumed `workaround`: 1 on, 0 off,
 * -1 by version), serves it the cluster, and returns its status as
 * subprocess_wait does (128 + signal if it died of one). */
static int run_child(int workaround) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork");
    if (pid == 0) {
        close(fds[1]);
        rdkafka_bug_assume(RDKAFKA_BUG_CLOSE_BEFORE_FIRST_ASSIGNMENT_ABORTS, workaround);
        _exit(child_main(fds[0]));
    }
    close(fds[0]);
    mock_topic_t topic = {TOPIC, 2};
    mock_cluster_t *mc = test_mock_cluster_start(1, &topic, 1);
    cr_assert_eq(
        rd_kafka_mock_broker_push_request_error_rtts(mock_cluster_handle(mc), 1, API_SYNC_GROUP, 1,
                                                     RD_KAFKA_RESP_ERR_NO_ERROR, SYNC_DELAY_MS),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    const char *b = mock_cluster_bootstraps(mc);
    cr_assert_eq(write(fds[1], b, strlen(b)), (ssize_t)strlen(b));
    close(fds[1]);
    subprocess_t child = {.pid = pid};
    int status = subprocess_wait(&child, 90000);
    mock_cluster_stop(mc);
    return status;
}

static const char *status_str(int status) {
    switch (status) {
        case CHILD_CLOSED_UNASSIGNED:
            return "closed before its first assignment";
        case CHILD_CLOSED_ASSIGNED:
            return "closed after waiting for its first assignment";
        case CHILD_NO_BOOTSTRAPS:
            return "child: no bootstrap address";
        case CHILD_NO_CONSUMER:
            return "child: the consumer did not start";
        case CHILD_NEVER_JOINED:
            return "child: the consumer never joined its group";
        case CHILD_ASSIGNED_TOO_SOON:
            return "child: assigned before the stop (SyncGroup not delayed?)";
        case CHILD_STOP_FAILED:
            return "child: kaffe_consumer_stop failed";
        case -1:
            return "child: did not exit in time (killed)";
        case 128 + SIGABRT:
            return "child: aborted (SIGABRT)";
        case 128 + SIGSEGV:
            return "child: crashed (SIGSEGV)";
        default:
            return "child: unexpected status";
    }
}

TestSuite(rdkafka_compat, .timeout = 120);

Test(rdkafka_compat, without_the_workaround) {
    bool buggy = rdkafka_close_before_first_assignment_aborts();
    int status = run_child(0);
    fprintf(stderr, "without_the_workaround: librdkafka %s, %s: status %d, %s\n",
            rd_kafka_version_str(),
            rdkafka_bug_str(RDKAFKA_BUG_CLOSE_BEFORE_FIRST_ASSIGNMENT_ABORTS), status,
            status_str(status));
    if (buggy)
        cr_assert(status == 128 + SIGABRT || status == 128 + SIGSEGV,
                  "librdkafka %s should abort when a consumer is closed before its first "
                  "assignment (%s); the child: %s (status %d)",
                  rd_kafka_version_str(),
                  rdkafka_bug_str(RDKAFKA_BUG_CLOSE_BEFORE_FIRST_ASSIGNMENT_ABORTS),
                  status_str(status), status);
    else
        cr_assert_eq(status, CHILD_CLOSED_UNASSIGNED, "librdkafka %s: %s (status %d)",
                     rd_kafka_version_str(), status_str(status), status);
}

Test(rdkafka_compat, by_version) {
    bool buggy = rdkafka_close_before_first_assignment_aborts();
    int status = run_child(-1);
    fprintf(stderr, "by_version: librdkafka %s, workaround %s: status %d, %s\n",
            rd_kafka_version_str(), buggy ? "on" : "off", status, status_str(status));
    cr_assert_eq(status, buggy ? CHILD_CLOSED_ASSIGNED : CHILD_CLOSED_UNASSIGNED,
                 "librdkafka %s, workaround %s: %s (status %d)", rd_kafka_version_str(),
                 buggy ? "on" : "off", status_str(status), status);
}

/* The rd_kafka_mock ApiKey of Produce. */
#define API_PRODUCE 0

static atomic_int not_compressing; /* librdkafka's "not compressing batch" lines */

static void count_not_compressing(int level, const char *facility, const char *message,
                                  void *opaque) {
    (void)level;
    (void)facility;
    (void)opaque;
    if (strstr(message, "not compressing batch"))
        atomic_fetch_add(&not_compressing, 1);
}

Test(rdkafka_compat, compression_without_produce_v0) {
    enum { N = 200 };
    mock_topic_t topic = {"compat-compress", 1};
    mock_cluster_t *mc = test_mock_cluster_start(1, &topic, 1);
    cr_assert_eq(rd_kafka_mock_set_apiversion(mock_cluster_handle(mc), API_PRODUCE, 3, 7),
                 RD_KAFKA_RESP_ERR_NO_ERROR);
    const char *b = mock_cluster_bootstraps(mc);
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", b, err, sizeof err), KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "topics", "compat-compress", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "compression", "gzip", err, sizeof err), KAFFE_OK);
    kaffe_conf_set_log_cb(conf, count_not_compressing, NULL);
    /* librdkafka 2.0.2 says it only in a "msg" debug line. */
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.debug", "msg", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "log_level", "debug", err, sizeof err), KAFFE_OK);
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    kaffe_produce_msg_t msgs[N];
    kaffe_produce_result_t results[N];
    char values[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(values[i], sizeof values[i], "value-%d: compress me, compress me", i);
        msgs[i] = (kaffe_produce_msg_t)KAFFE_PRODUCE_MSG_INIT;
        msgs[i].partition = 0;
        msgs[i].value = values[i];
        msgs[i].value_len = strlen(values[i]);
    }
    cr_assert_eq(kaffe_produce_sync_batch(p, msgs, N, results), KAFFE_OK);
    kaffe_producer_destroy(p);
    plain_message_t *got = NULL;
    size_t n = plain_consume_all(b, "compat-compress", N, 2000, &got);
    cr_assert_eq(n, N, "read back %zu of %d", n, N);
    for (size_t i = 0; i < n; i++)
        cr_assert(got[i].value_len == strlen(values[i]) &&
                      memcmp(got[i].value, values[i], got[i].value_len) == 0,
                  "offset %zu", i);
    plain_messages_free(got, n);
    mock_cluster_stop(mc);
    bool buggy = rdkafka_compression_needs_produce_v0();
    int lines = atomic_load(&not_compressing);
    fprintf(stderr,
            "compression_without_produce_v0: librdkafka %s, %s: %d \"not compressing "
            "batch\" log lines\n",
            rd_kafka_version_str(), rdkafka_bug_str(RDKAFKA_BUG_COMPRESSION_NEEDS_PRODUCE_V0),
            lines);
    if (buggy)
        cr_assert_gt(lines, 0, "librdkafka %s compressed without Produce v0 (%s)",
                     rd_kafka_version_str(),
                     rdkafka_bug_str(RDKAFKA_BUG_COMPRESSION_NEEDS_PRODUCE_V0));
    else
        cr_assert_eq(lines, 0, "librdkafka %s: gzip not used with Produce v3-v7",
                     rd_kafka_version_str());
}
