/* bench_group_protocol — rebalances under the classic protocol
 * (cooperative-sticky) and KIP-848's consumer protocol, on the same broker
 * in the same run: a rolling restart of a group's members. Prints figures;
 * asserts nothing.
 *
 *   bench_group_protocol [--bootstrap HOST:PORT] [--mock] [--rounds N]
 *                        [--members M] [--partitions P] [--handler-us U]
 *                        [--messages N] [--heartbeat-ms H]
 *   (defaults: the broker of $KAFFE_BROKER_ENV, 3 rounds, 3 members,
 *    12 partitions, a 1000 us handler, 3000000 messages)
 *
 * Setup: one topic of P partitions holding N 32-byte messages, written once.
 * Each round runs both protocols, one after the other, in an order that
 * alternates between rounds; each run is a fresh group reading the topic
 * from the start. M kaffe consumers (in this process, 8 workers each, sync
 * handler sleeping U microseconds: the rate is the handlers', not the
 * broker's) join; once every one consumes, the members are restarted one
 * after another: stop (drain, commit, leave), then a new member starts.
 *
 * Figures per run:
 *   - join: from a new member's kaffe_consumer_start until every member
 *     consumes again: each owns a partition, every partition is owned, and
 *     each has handled a message since its last assignment or revocation
 *     (the median and the slowest of the M joins);
 *   - leave: the same, from the leaving member's kaffe_consumer_stop;
 *   - rate: messages handled per second over the whole rolling restart
 *     (first stop to the last member consuming again), and the process's
 *     CPU time per message handled over the same window (every member's
 *     threads and librdkafka's; the handlers sleep).
 * The topic must not run out of messages during a run (each run reads it
 * from the start): --messages above the handlers' rate times the run.
 * Under the consumer protocol the broker's group.consumer.heartbeat.interval.ms
 * (Kafka's default 5000) paces every assignment change; the classic
 * protocol's rebalance is driven by JoinGroup/SyncGroup, which a member
 * learns of at its next heartbeat (heartbeat.interval.ms, librdkafka's
 * default 3000). --heartbeat-ms H sets the classic members'
 * heartbeat.interval.ms to H; for the same under the consumer protocol start
 * the broker with group.consumer.heartbeat.interval.ms=H (and
 * group.consumer.min.heartbeat.interval.ms <= H): KAFFE_KAFKA_SERVER_PROPERTIES
 * of scripts/kafka/start.sh. --mock runs on the
 * embedded cluster (librdkafka 2.12's mock serves both protocols; its
 * heartbeat interval is 3 s), for a quick check of the program only. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "common/clock.h"
#include "harness/bench.h"
#include "mock/mock_cluster.h"
#include "support/bench_support.h"

#define MAX_MEMBERS 16
#define SETTLE_TIMEOUT_MS 120000

typedef struct options {
    const char *bootstrap;
    bool mock;
    int rounds, members, partitions;
    long handler_us, messages;
    const char *heartbeat_ms; /* classic members' heartbeat.interval.ms, or NULL */
} options_t;

/* One member: its consumer and what its callbacks saw (written by its
 * workers and poll thread, read by the main thread: atomics, relaxed: the
 * main thread only compares times and counts). */
typedef struct member {
    kaffe_consumer_t *c;
    long handler_us;
    atomic_llong handled;
    atomic_llong last_handle_us;
    atomic_llong last_event_us;
    atomic_int owned;
} member_t;

static int handle(kaffe_message_t *m, void *opaque) {
    (void)m;
    member_t *mb = opaque;
    struct timespec ts = {0, mb->handler_us * 1000};
    nanosleep(&ts, NULL);
    atomic_fetch_add_explicit(&mb->handled, 1, memory_order_relaxed);
    atomic_store_explicit(&mb->last_handle_us, clock_now_us(), memory_order_relaxed);
    return KAFFE_OK;
}

static void on_rebalance(kaffe_consumer_t *c, int assigned, const char *topic, int32_t partition,
                         void *opaque) {
    (void)c;
    (void)topic;
    (void)partition;
    member_t *mb = opaque;
    atomic_fetch_add_explicit(&mb->owned, assigned ? 1 : -1, memory_order_relaxed);
    atomic_store_explicit(&mb->last_event_us, clock_now_us(), memory_order_relaxed);
}

/* Errors the members report (commits refused while a classic group
 * rebalances, mostly): counted per run, the first few printed. */
static atomic_long errors;

static void on_error(int status, const char *reason, void *opaque) {
    (void)opaque;
    if (atomic_fetch_add_explicit(&errors, 1, memory_order_relaxed) < 3)
        fprintf(stderr, "bench_group_protocol: error %d: %s\n", status, reason);
}

static void member_start(member_t *mb, const options_t *o, const char *topic, const char *group,
                         const char *protocol) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512];
    const char *bootstrap = o->bootstrap;
    const char *settings[][2] = {{"endpoints", bootstrap},
                                 {"topics", topic},
                                 {"consumer_group", group},
                                 {"group_protocol", protocol},
                                 {"start_with_earliest_message", "true"},
                                 {"workers", "8"},
                                 {"ordering", "unordered"},
                                 {"commit_interval_ms", "1000"},
                                 {"drain_timeout_ms", "5000"},
                                 {"log_level", "error"}};
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (kaffe_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err) != KAFFE_OK)
            bench_die(err);
    if (o->heartbeat_ms && strcmp(protocol, "classic") == 0 &&
        kaffe_conf_set(conf, "rdkafka.heartbeat.interval.ms", o->heartbeat_ms, err, sizeof err) !=
            KAFFE_OK)
        bench_die(err);
    memset(mb, 0, sizeof *mb);
    mb->handler_us = o->handler_us;
    kaffe_conf_set_message_handler(conf, handle, mb);
    kaffe_conf_set_error_cb(conf, on_error, NULL);
    mb->c = kaffe_consumer_new(conf, err, sizeof err);
    if (!mb->c)
        bench_die(err);
    kaffe_consumer_set_rebalance_cb(mb->c, on_rebalance, mb);
    if (kaffe_consumer_start(mb->c) != KAFFE_OK)
        bench_die("kaffe_consumer_start failed");
}

static void member_stop(member_t *mb) {
    kaffe_status_t st = kaffe_consumer_stop(mb->c);
    if (st != KAFFE_OK)
        fprintf(stderr, "bench_group_protocol: stop: %s\n", kaffe_err_name(st));
    kaffe_consumer_destroy(mb->c);
    mb->c = NULL;
}

/* Every live member consumes: owns a partition, all partitions are owned,
 * and each handled a message after its last rebalance event. */
static bool all_consuming(member_t *ms, int n, int partitions) {
    int owned = 0;
    for (int i = 0; i < n; i++) {
        if (!ms[i].c)
            continue;
        int own = atomic_load_explicit(&ms[i].owned, memory_order_relaxed);
        long long event = atomic_load_explicit(&ms[i].last_event_us, memory_order_relaxed);
        long long handled = atomic_load_explicit(&ms[i].last_handle_us, memory_order_relaxed);
        if (own <= 0 || handled <= event)
            return false;
        owned += own;
    }
    return owned == partitions;
}

/* ms from since_us until all_consuming (SETTLE_TIMEOUT_MS: never). */
static long await_consuming(member_t *ms, int n, int partitions, int64_t since_us) {
    for (;;) {
        if (all_consuming(ms, n, partitions))
            return (long)((clock_now_us() - since_us) / 1000);
        if (clock_now_us() - since_us > (int64_t)SETTLE_TIMEOUT_MS * 1000) {
            fprintf(stderr,
                    "bench_group_protocol: the group did not settle within %d ms (did the "
                    "topic run out of messages? --messages)\n",
                    SETTLE_TIMEOUT_MS);
            return SETTLE_TIMEOUT_MS;
        }
        clock_sleep_ms(2);
    }
}

static long long total_handled(member_t *ms, int n, long long retired) {
    long long sum = retired;
    for (int i = 0; i < n; i++)
        if (ms[i].c)
            sum += atomic_load_explicit(&ms[i].handled, memory_order_relaxed);
    return sum;
}

typedef struct figures {
    long join_ms[MAX_MEMBERS], leave_ms[MAX_MEMBERS];
    double rate;
    double cpu_us_each; /* process CPU us per message handled during the restart */
} figures_t;

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static long median(const long *v, int n) {
    long s[MAX_MEMBERS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_long);
    return s[n / 2];
}

static long slowest(const long *v, int n) {
    long m = 0;
    for (int i = 0; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

/* One run: a fresh group of o->members under protocol, then its rolling
 * restart. */
static figures_t run(const options_t *o, const char *topic, const char *protocol, int round) {
    char group[160];
    snprintf(group, sizeof group, "bench-gp-%s-%d-%lld", protocol, round,
             (long long)clock_now_ms());
    member_t ms[MAX_MEMBERS];
    atomic_store_explicit(&errors, 0, memory_order_relaxed);
    for (int i = 0; i < o->members; i++)
        member_start(&ms[i], o, topic, group, protocol);
    await_consuming(ms, o->members, o->partitions, clock_now_us());
    clock_sleep_ms(1000); /* steady before the restarts */

    figures_t f = {0};
    long long retired = 0;
    int64_t t0 = clock_now_us(), cpu0 = bench_cpu_ns();
    long long h0 = total_handled(ms, o->members, retired);
    for (int i = 0; i < o->members; i++) {
        int64_t leave = clock_now_us();
        long long h = atomic_load_explicit(&ms[i].handled, memory_order_relaxed);
        member_stop(&ms[i]);
        retired += h;
        f.leave_ms[i] = await_consuming(ms, o->members, o->partitions, leave);
        int64_t join = clock_now_us();
        member_start(&ms[i], o, topic, group, protocol);
        f.join_ms[i] = await_consuming(ms, o->members, o->partitions, join);
    }
    long long h1 = total_handled(ms, o->members, retired);
    f.rate = (double)(h1 - h0) / ((double)(clock_now_us() - t0) / 1e6);
    f.cpu_us_each = h1 > h0 ? (double)(bench_cpu_ns() - cpu0) / 1e3 / (double)(h1 - h0) : 0;
    for (int i = 0; i < o->members; i++)
        member_stop(&ms[i]);
    printf("round %d  %-8s  join median %5ld ms, slowest %5ld ms   leave median %5ld ms, slowest "
           "%5ld ms   %8.0f msgs/s during the restart (%.1f CPU us/msg)   %ld errors reported\n",
           round, protocol, median(f.join_ms, o->members), slowest(f.join_ms, o->members),
           median(f.leave_ms, o->members), slowest(f.leave_ms, o->members), f.rate, f.cpu_us_each,
           atomic_load_explicit(&errors, memory_order_relaxed));
    fflush(stdout);
    return f;
}

/* The broker of $KAFFE_BROKER_ENV (KAFFE_BROKER_PLAINTEXT=...), or NULL. */
static const char *env_bootstrap(void) {
    const char *path = getenv("KAFFE_BROKER_ENV");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return NULL;
    static char line[512];
    const char *found = NULL;
    while (!found && fgets(line, sizeof line, f))
        if (strncmp(line, "KAFFE_BROKER_PLAINTEXT=", 23) == 0) {
            line[strcspn(line, "\n")] = '\0';
            found = line + 23;
        }
    fclose(f);
    return found;
}

static options_t parse(int argc, char **argv) {
    options_t o = {
        .rounds = 3, .members = 3, .partitions = 12, .handler_us = 1000, .messages = 3000000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--mock") == 0) {
            o.mock = true;
            continue;
        }
        if (!v)
            bench_die("usage: bench_group_protocol [--bootstrap HOST:PORT] [--mock] [--rounds N] "
                      "[--members M] [--partitions P] [--handler-us U] [--messages N] "
                      "[--heartbeat-ms H]");
        i++;
        if (strcmp(a, "--bootstrap") == 0)
            o.bootstrap = v;
        else if (strcmp(a, "--rounds") == 0)
            o.rounds = atoi(v);
        else if (strcmp(a, "--members") == 0)
            o.members = atoi(v);
        else if (strcmp(a, "--partitions") == 0)
            o.partitions = atoi(v);
        else if (strcmp(a, "--handler-us") == 0)
            o.handler_us = atol(v);
        else if (strcmp(a, "--messages") == 0)
            o.messages = atol(v);
        else if (strcmp(a, "--heartbeat-ms") == 0)
            o.heartbeat_ms = v;
        else
            bench_die(a);
    }
    if (o.members < 1 || o.members > MAX_MEMBERS || o.rounds < 1 || o.partitions < o.members)
        bench_die("need 1 <= members <= 16, members <= partitions, rounds >= 1");
    return o;
}

int main(int argc, char **argv) {
    options_t o = parse(argc, argv);
    if (rd_kafka_version() < 0x020c0000) {
        fprintf(stderr,
                "bench_group_protocol: librdkafka %s has no KIP-848 consumer protocol (>= 2.12.0): "
                "configure with -DKAFFE_RDKAFKA_PREFIX=$(bash scripts/rdkafka.sh)\n",
                rd_kafka_version_str());
        return 2;
    }
    mock_cluster_t *mc = NULL;
    char err[512];
    if (o.mock) {
        if (!(mc = mock_cluster_start(1, NULL, 0, err, sizeof err)))
            bench_die(err);
        o.bootstrap = mock_cluster_bootstraps(mc);
    } else if (!o.bootstrap && !(o.bootstrap = env_bootstrap())) {
        bench_die("no broker: --bootstrap HOST:PORT, KAFFE_BROKER_ENV, or --mock");
    }
    char topic[96];
    snprintf(topic, sizeof topic, "bench-group-protocol-%lld", (long long)clock_now_ms());
    if (bench_create_topic(mc, o.bootstrap, topic, o.partitions, err, sizeof err) != 0)
        bench_die(err);
    bench_produce_spread(o.bootstrap, topic, o.partitions, o.messages, 0);
    printf("bench_group_protocol: librdkafka %s, %s, %d members x 8 workers, %d partitions, "
           "%ld us handler, %d rounds (the order alternates), classic heartbeat.interval.ms %s\n",
           rd_kafka_version_str(), o.mock ? "embedded cluster" : o.bootstrap, o.members,
           o.partitions, o.handler_us, o.rounds,
           o.heartbeat_ms ? o.heartbeat_ms : "3000 (default)");
    static const char *const protocols[2] = {"classic", "consumer"};
    figures_t all[2][64];
    for (int r = 0; r < o.rounds && r < 64; r++)
        for (int k = 0; k < 2; k++) {
            int p = (r + k) % 2;
            all[p][r] = run(&o, topic, protocols[p], r + 1);
        }
    printf("\n| protocol | round | join median ms | join slowest ms | leave median ms | "
           "msgs/s during the rolling restart | CPU us/msg |\n|---|---|---|---|---|---|---|\n");
    for (int p = 0; p < 2; p++)
        for (int r = 0; r < o.rounds && r < 64; r++)
            printf("| %s | %d | %ld | %ld | %ld | %.0f | %.1f |\n", protocols[p], r + 1,
                   median(all[p][r].join_ms, o.members), slowest(all[p][r].join_ms, o.members),
                   median(all[p][r].leave_ms, o.members), all[p][r].rate, all[p][r].cpu_us_each);
    mock_cluster_stop(mc);
    return 0;
}
