/* fault_consumer — a kaffe consumer process for the fault suite
 * (tests/integration/test_faults_kill.c, test_faults_churn.c) and the
 * real-cluster tier (tests/cluster/test_cluster_faults.c).
 *
 *   fault_consumer BOOTSTRAPS TOPIC GROUP LOGFILE SEED [MAX_IN_FLIGHT] [ACKS_PER_SEC]
 *
 * Consumes TOPIC in GROUP with async acks, unordered, and acks out of order:
 * an acker thread picks a random message among the ones handled and not yet
 * acked (it waits for a few to gather first), so acks land well above the
 * watermark. Every handled message and every ack is appended to LOGFILE as
 * one write(2) of one line, before anything else happens to the message:
 *
 *   H <partition> <offset> <monotonic us>    the handler ran for it
 *   A <partition> <offset> <monotonic us>    about to call kaffe_consumer_ack
 *   C <partition> <committed> <monotonic us> <metadata or ->
 *                                            the partition was just assigned;
 *                                            its committed state, read with a
 *                                            plain client before any of its
 *                                            messages is handled
 *
 * A write(2) is in the kernel once it returns, so the log survives SIGKILL
 * (which is all the suite does to this process; no fsync needed). The test
 * reads the log with the committed offsets and metadata to tell what was
 * acked-and-committed before a kill and must not be handled again.
 *
 * SIGTERM/SIGINT stop the consumer gracefully (drain, commit, leave); exit
 * status 0 when kaffe_consumer_stop() returned KAFFE_OK, 1 otherwise.
 *
 * KAFFE_FAULT_CONSUMER_CONF="key=value;key=value" sets further kaffe
 * properties after the defaults below (the real-cluster tier raises the
 * session timeout to the broker's minimum, for instance; group_protocol=
 * consumer selects KIP-848's protocol, and then the classic session
 * defaults are left out).
 *
 * KAFFE_FAULTS_DEBUG=cgrp,... turns on librdkafka's debug contexts; the log
 * lines go to LOGFILE.debug, each stamped with the wall clock (as librdkafka's
 * own stderr logger, e.g. the mock cluster's, stamps them). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <kaffe/kaffe.h>

#include "support/plain_client.h"
#include "common/clock.h"

static kaffe_consumer_t *consumer;
static int log_fd = -1;

/* Messages handled and not yet acked; handler threads push, the acker pops. */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static kaffe_message_t **pending;
static size_t pending_count, pending_cap;
static atomic_int acker_stop;
static long acks_per_sec;
static unsigned seed;

static void log_line(char kind, const kaffe_message_t *m) {
    char line[96];
    int n = snprintf(line, sizeof line, "%c %d %lld %lld\n", kind, (int)kaffe_message_partition(m),
                     (long long)kaffe_message_offset(m), (long long)clock_now_us());
    if (write(log_fd, line, (size_t)n) != n) {
        perror("fault_consumer: log write");
        _exit(3);
    }
}

static int handler(kaffe_message_t *m, void *opaque) {
    (void)opaque;
    log_line('H', m);
    pthread_mutex_lock(&pending_lock);
    if (pending_count == pending_cap) {
        pending_cap = pending_cap ? pending_cap * 2 : 1024;
        pending = realloc(pending, pending_cap * sizeof *pending);
        if (!pending)
            abort();
    }
    pending[pending_count++] = m;
    pthread_mutex_unlock(&pending_lock);
    return KAFFE_OK;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Acks a random pending message; waits until 16 are pending (or 20 ms pass
 * with fewer) so the order is thoroughly shuffled. Paced to acks_per_sec. */
static void *acker_main(void *arg) {
    (void)arg;
    int64_t started = clock_now_us();
    long acked = 0;
    int64_t waiting_since = 0;
    /* relaxed: a stop flag; the messages it guards are under pending_lock. */
    while (!atomic_load_explicit(&acker_stop, memory_order_relaxed)) {
        pthread_mutex_lock(&pending_lock);
        kaffe_message_t *m = NULL;
        int64_t now = clock_now_us();
        if (pending_count > 0 && !waiting_since)
            waiting_since = now;
        if (pending_count >= 16 || (pending_count > 0 && now - waiting_since > 20000)) {
            size_t i = (size_t)rand_r(&seed) % pending_count;
            m = pending[i];
            pending[i] = pending[--pending_count];
            if (pending_count == 0)
                waiting_since = 0;
        }
        pthread_mutex_unlock(&pending_lock);
        if (!m) {
            sleep_us(1000);
            /* Idle: the pace starts again from here (no burst to catch up
             * after the group join or a pause). */
            started = clock_now_us();
            acked = 0;
            continue;
        }
        log_line('A', m);
        kaffe_consumer_ack(consumer, m); /* REVOKED/STOPPED: redelivered, fine */
        acked++;
        int64_t due = started + acked * 1000000 / acks_per_sec;
        if (due > clock_now_us())
            sleep_us((long)(due - clock_now_us()));
    }
    return NULL;
}

static const char *bootstraps, *group;
/* The plain client reading committed states at assignments (poll thread
 * only), made at the first one and kept: one bootstrap and coordinator
 * lookup instead of one per partition. */
static rd_kafka_t *committed_reader;

/* Poll thread, before any message of the partition is handled. */
static void on_rebalance(kaffe_consumer_t *c, int assigned, const char *topic, int32_t partition,
                         void *opaque) {
    (void)c;
    (void)opaque;
    if (!assigned)
        return;
    char *metadata = NULL;
    if (!committed_reader)
        committed_reader = plain_group_client(bootstraps, group);
    int64_t committed = committed_reader
                            ? plain_committed_rk(committed_reader, topic, partition, &metadata)
                            : plain_committed(bootstraps, group, topic, partition, &metadata);
    size_t size = 128 + (metadata ? strlen(metadata) : 0);
    char *line = malloc(size);
    if (!line)
        abort();
    int n = snprintf(line, size, "C %d %lld %lld %s\n", (int)partition, (long long)committed,
                     (long long)clock_now_us(), metadata && *metadata ? metadata : "-");
    if (write(log_fd, line, (size_t)n) != n) {
        perror("fault_consumer: log write");
        _exit(3);
    }
    free(line);
    free(metadata);
}

static void on_signal(int sig) {
    (void)sig;
    kaffe_consumer_request_stop(consumer); /* async-signal-safe */
}

/* KAFFE_FAULTS_DEBUG: one line per log line, any librdkafka thread. */
static FILE *debug_log;

static void on_log(int level, const char *facility, const char *message, void *opaque) {
    (void)opaque;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(debug_log, "%lld.%03ld|%d|%s| %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000, level,
            facility, message);
}

static void on_error(int status, const char *reason, void *opaque) {
    (void)opaque;
    fprintf(stderr, "fault_consumer[%d]: error %d: %s\n", (int)getpid(), status, reason);
}

/* A short session, so a killed member's partitions move soon: under the
 * classic protocol only (the consumer protocol's session is the broker's
 * group.consumer.session.timeout.ms, and kaffe refuses these with it), and
 * only where KAFFE_FAULT_CONSUMER_CONF did not set them. */
static kaffe_status_t set_classic_session(kaffe_conf_t *conf, char *err, size_t err_size) {
    char value[32];
    size_t size = sizeof value;
    if (kaffe_conf_get(conf, "group_protocol", value, &size) == KAFFE_OK &&
        strcmp(value, "consumer") == 0)
        return KAFFE_OK;
    size = sizeof value;
    if (kaffe_conf_get(conf, "rdkafka.group.protocol", value, &size) == KAFFE_OK &&
        strcmp(value, "consumer") == 0)
        return KAFFE_OK;
    static const char *const session[][2] = {{"rdkafka.session.timeout.ms", "3000"},
                                             {"rdkafka.heartbeat.interval.ms", "200"}};
    for (size_t i = 0; i < 2; i++) {
        size = sizeof value;
        if (kaffe_conf_get(conf, session[i][0], value, &size) == KAFFE_OK)
            continue;
        kaffe_status_t st = kaffe_conf_set(conf, session[i][0], session[i][1], err, err_size);
        if (st != KAFFE_OK)
            return st;
    }
    return KAFFE_OK;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr,
                "usage: %s BOOTSTRAPS TOPIC GROUP LOGFILE SEED [MAX_IN_FLIGHT] [ACKS_PER_SEC]\n",
                argv[0]);
        return 2;
    }
    /* Die with the test process (a failed or timed-out test must not leave
     * consumers behind). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 2;
    seed = (unsigned)strtoul(argv[5], NULL, 10);
    bootstraps = argv[1];
    group = argv[3];
    const char *max_in_flight = argc > 6 ? argv[6] : "100";
    acks_per_sec = argc > 7 ? strtol(argv[7], NULL, 10) : 5000;
    if (acks_per_sec <= 0)
        acks_per_sec = 5000;
    log_fd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        perror(argv[4]);
        return 2;
    }
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    const char *settings[][2] = {
        {"endpoints", argv[1]},
        {"topics", argv[2]},
        {"consumer_group", argv[3]},
        {"start_with_earliest_message", "true"},
        {"async_message_ack", "true"},
        {"ordering", "unordered"},
        {"workers", "4"},
        {"max_in_flight_messages", max_in_flight},
        {"commit_interval_ms", "50"},
        {"drain_timeout_ms", "3000"},
        {"rdkafka.fetch.wait.max.ms", "20"},
        {"rdkafka.log_level", "2"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (kaffe_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err) != KAFFE_OK) {
            fprintf(stderr, "fault_consumer: %s\n", err);
            return 2;
        }
    const char *extra = getenv("KAFFE_FAULT_CONSUMER_CONF");
    if (extra && *extra) {
        char *copy = strdup(extra), *save = NULL;
        for (char *kv = strtok_r(copy, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
            char *eq = strchr(kv, '=');
            if (!eq ||
                (*eq = '\0', kaffe_conf_set(conf, kv, eq + 1, err, sizeof err)) != KAFFE_OK) {
                fprintf(stderr, "fault_consumer: KAFFE_FAULT_CONSUMER_CONF: %s\n",
                        eq ? err : "expected key=value");
                return 2;
            }
        }
        free(copy);
    }
    if (set_classic_session(conf, err, sizeof err) != KAFFE_OK) {
        fprintf(stderr, "fault_consumer: %s\n", err);
        return 2;
    }
    const char *debug = getenv("KAFFE_FAULTS_DEBUG");
    if (debug && *debug) {
        char path[512];
        snprintf(path, sizeof path, "%s.debug", argv[4]);
        debug_log = fopen(path, "a");
        if (!debug_log || kaffe_conf_set(conf, "rdkafka.debug", debug, err, sizeof err) ||
            kaffe_conf_set(conf, "rdkafka.log_level", "7", err, sizeof err)) {
            fprintf(stderr, "fault_consumer: debug log: %s\n", debug_log ? err : path);
            return 2;
        }
        setvbuf(debug_log, NULL, _IOLBF, 0);
        kaffe_conf_set_log_cb(conf, on_log, NULL);
    }
    kaffe_conf_set_message_handler(conf, handler, NULL);
    kaffe_conf_set_error_cb(conf, on_error, NULL);
    consumer = kaffe_consumer_new(conf, err, sizeof err);
    if (!consumer) {
        fprintf(stderr, "fault_consumer: %s\n", err);
        kaffe_conf_destroy(conf);
        return 2;
    }
    kaffe_consumer_set_rebalance_cb(consumer, on_rebalance, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_t acker;
    if (kaffe_consumer_start(consumer) != KAFFE_OK ||
        pthread_create(&acker, NULL, acker_main, NULL) != 0) {
        fprintf(stderr, "fault_consumer: start failed\n");
        kaffe_consumer_destroy(consumer);
        return 2;
    }
    kaffe_consumer_wait(consumer, -1);
    /* The acker keeps acking while stop drains; it ends after. */
    kaffe_status_t st = kaffe_consumer_stop(consumer);
    atomic_store_explicit(&acker_stop, 1, memory_order_relaxed);
    pthread_join(acker, NULL);
    kaffe_consumer_destroy(consumer);
    if (committed_reader)
        rd_kafka_destroy(committed_reader);
    free(pending);
    close(log_fd);
    if (st != KAFFE_OK)
        fprintf(stderr, "fault_consumer: stopped with %d\n", (int)st);
    return st == KAFFE_OK ? 0 : 1;
}
