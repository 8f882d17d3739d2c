/* One `kaffe bench` scenario, run in its own process (`kaffe bench --child`):
 * the bookkeeping every consumer under test reports into, the two phases
 * (drain, live) and the correctness check. See bench.h for the shape.
 *
 * Threads: the child's main thread runs the phases; the consumer under test
 * calls bench_child_handle() from any number of its threads. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "harness/bench.h"
#include "cli/cli.h"
#include "common/clock.h"

#define MAX_PARTITIONS 256
#define MAX_PROPS 64
#define LIVE_MAX_RATE 20000.0  /* messages/s offered in the live phase, at most */
#define LIVE_MAX_MB_PER_S 32.0 /* ... and bytes/s */
#define LIVE_MIN_RATE 50.0
#define PROGRESS_MS 200
#define STALL_MS 30000 /* no new message for this long: the scenario failed */

enum { DATA = 0, LIVE = 1 };

/* Which offsets of one topic were handled. Bits are set with fetch_or
 * (relaxed: each bit is its own fact; nothing else is published through
 * it) by handler threads; read after the consumer stopped. */
typedef struct tracked_topic {
    const char *name;
    int partitions;
    int64_t capacity[MAX_PARTITIONS]; /* offsets [0, capacity) have a bit */
    _Atomic uint64_t *bits[MAX_PARTITIONS];
    /* First-time handles. Incremented with release after the handler's
     * bookkeeping (first/last times, histograms); the main thread's acquire
     * load that sees the expected count therefore sees all of it (every
     * fetch_add continues the release sequence). */
    _Atomic long unique;
} tracked_topic_t;

struct bench_child {
    const bench_scenario_t *s;
    const char *brokers, *group;
    char **props;
    size_t prop_count;
    tracked_topic_t topic[2];
    _Atomic long handled;                   /* every handler start, duplicates included (relaxed) */
    _Atomic long duplicates;                /* relaxed: a count */
    _Atomic long unexpected;                /* offsets outside the tracked range, unknown topics */
    _Atomic uint64_t first_ns, last_ns;     /* first-time data handles; ordered by unique */
    histogram_t start_latency, e2e_latency; /* live topic, nanoseconds */
};

const bench_scenario_t *bench_child_scenario(const bench_child_t *ch) {
    return ch->s;
}
const char *bench_child_brokers(const bench_child_t *ch) {
    return ch->brokers;
}
const char *bench_child_group(const bench_child_t *ch) {
    return ch->group;
}
const char *bench_child_data_topic(const bench_child_t *ch) {
    return ch->topic[DATA].name;
}
const char *bench_child_live_topic(const bench_child_t *ch) {
    return ch->topic[LIVE].name;
}
char **bench_child_props(const bench_child_t *ch, size_t *count) {
    *count = ch->prop_count;
    return ch->props;
}

static void spin_us(int us) {
    uint64_t until = clock_now_ns() + (uint64_t)us * 1000u;
    while (clock_now_ns() < until)
        ;
}

static void sleep_us(int us) {
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void atomic_max(_Atomic uint64_t *a, uint64_t v) {
    uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    /* relaxed: published through topic.unique's release increment. */
    while (cur < v && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

void bench_child_handle(bench_child_t *ch, const char *topic, int32_t partition, int64_t offset,
                        const void *payload, size_t len, uint64_t poll_ns) {
    uint64_t now = clock_now_ns();
    atomic_fetch_add_explicit(&ch->handled, 1, memory_order_relaxed);
    int t = strcmp(topic, ch->topic[DATA].name) == 0   ? DATA
            : strcmp(topic, ch->topic[LIVE].name) == 0 ? LIVE
                                                       : -1;
    tracked_topic_t *tt = t >= 0 ? &ch->topic[t] : NULL;
    if (!tt || partition < 0 || partition >= tt->partitions || offset < 0 ||
        offset >= tt->capacity[partition]) {
        atomic_fetch_add_explicit(&ch->unexpected, 1, memory_order_relaxed);
    } else {
        uint64_t bit = UINT64_C(1) << (offset % 64);
        uint64_t old =
            atomic_fetch_or_explicit(&tt->bits[partition][offset / 64], bit, memory_order_relaxed);
        if (old & bit) {
            atomic_fetch_add_explicit(&ch->duplicates, 1, memory_order_relaxed);
        } else {
            if (t == DATA) {
                uint64_t zero = 0;
                atomic_compare_exchange_strong_explicit(&ch->first_ns, &zero, now,
                                                        memory_order_relaxed, memory_order_relaxed);
                atomic_max(&ch->last_ns, now);
            } else {
                uint64_t sent = bench_payload_sent_ns(payload, len);
                if (sent && sent <= now)
                    histogram_record(&ch->e2e_latency, now - sent);
                if (poll_ns && poll_ns <= now)
                    histogram_record(&ch->start_latency, now - poll_ns);
            }
            /* release: pairs with the acquire in wait_for() (see tracked_topic_t). */
            atomic_fetch_add_explicit(&tt->unique, 1, memory_order_release);
        }
    }
    if (ch->s->cost == BENCH_COST_SPIN)
        spin_us(ch->s->cost_us);
    else if (ch->s->cost == BENCH_COST_SLEEP)
        sleep_us(ch->s->cost_us);
}

static int track_topic(tracked_topic_t *tt, const char *name, int partitions,
                       const int64_t *capacity) {
    tt->name = name;
    tt->partitions = partitions;
    for (int p = 0; p < partitions; p++) {
        tt->capacity[p] = capacity[p];
        tt->bits[p] = calloc((size_t)(capacity[p] / 64 + 1), sizeof(uint64_t));
        if (!tt->bits[p])
            return -1;
    }
    return 0;
}

static void untrack_topic(tracked_topic_t *tt) {
    for (int p = 0; p < tt->partitions; p++)
        free(tt->bits[p]);
}

/* Offsets in [0, ends[p]) never handled. */
static long missing(const tracked_topic_t *tt, const int64_t *ends) {
    long n = 0;
    for (int p = 0; p < tt->partitions; p++)
        for (int64_t o = 0; o < ends[p] && o < tt->capacity[p]; o++)
            if (!(atomic_load_explicit(&tt->bits[p][o / 64], memory_order_relaxed) &
                  (UINT64_C(1) << (o % 64))))
                n++;
    return n;
}

static long sum(const int64_t *v, int n) {
    long s = 0;
    for (int i = 0; i < n; i++)
        s += (long)v[i];
    return s;
}

/* Waits until topic t has expected first-time handles, printing progress
 * lines. Fails when nothing new arrives for STALL_MS. 0 or -1. */
static int wait_for(bench_child_t *ch, int t, long expected, const char *phase) {
    long last = -1;
    uint64_t last_change = clock_now_ns();
    for (;;) {
        /* acquire: pairs with the release increment in bench_child_handle. */
        long n = atomic_load_explicit(&ch->topic[t].unique, memory_order_acquire);
        if (t == DATA || n != last) {
            printf("progress %s %ld %ld\n", phase, n, expected);
            fflush(stdout);
        }
        if (n >= expected)
            return 0;
        uint64_t now = clock_now_ns();
        if (n != last) {
            last = n;
            last_change = now;
        } else if (now - last_change > (uint64_t)STALL_MS * 1000000u) {
            return -1;
        }
        struct timespec ts = {0, PROGRESS_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Peak resident set so far, from VmHWM (MiB), or 0 when unreadable. */
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    double mb = 0;
    while (fgets(line, sizeof line, f)) {
        long kb;
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) {
            mb = (double)kb / 1024.0;
            break;
        }
    }
    fclose(f);
    return mb;
}

/* Compares the group's committed offsets with the log ends, with a client
 * of its own (not the consumer under test). Fills r->committed_ok/detail. */
static void check_committed(bench_child_t *ch, const int64_t *ends[2], bench_result_t *r) {
    char err[512];
    static const char *const defaults[] = {"enable.auto.commit", "false", NULL};
    rd_kafka_conf_t *conf =
        bench_rdkafka_conf(ch->brokers, defaults, ch->props, ch->prop_count, err, sizeof err);
    r->committed_ok = false;
    if (!conf || rd_kafka_conf_set(conf, "group.id", ch->group, err, sizeof err)) {
        snprintf(r->committed_detail, sizeof r->committed_detail, "checker: %.100s", err);
        return;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(r->committed_detail, sizeof r->committed_detail, "checker: %.100s", err);
        return;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(0);
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < ch->topic[t].partitions; p++)
            rd_kafka_topic_partition_list_add(parts, ch->topic[t].name, p);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, parts, 10000);
    if (e) {
        snprintf(r->committed_detail, sizeof r->committed_detail, "committed: %s",
                 rd_kafka_err2str(e));
    } else {
        int bad = 0;
        for (int i = 0; i < parts->cnt; i++) {
            const rd_kafka_topic_partition_t *tp = &parts->elems[i];
            int t = strcmp(tp->topic, ch->topic[DATA].name) == 0 ? DATA : LIVE;
            int64_t end = ends[t][tp->partition];
            /* An empty partition has nothing to commit. */
            if (tp->offset != end && !(end == 0 && tp->offset < 0)) {
                if (!bad++)
                    snprintf(r->committed_detail, sizeof r->committed_detail,
                             "%s[%d] committed %lld, log end %lld", tp->topic, tp->partition,
                             (long long)tp->offset, (long long)end);
            }
        }
        r->committed_ok = bad == 0;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
}

static int child_usage(const char *msg) {
    return cli_usage_error("bench", "--child: %s", msg);
}

int bench_child_main(int argc, char **argv) {
    static const struct option options[] = {{"child", required_argument, NULL, 'C'},
                                            {"brokers", required_argument, NULL, 'b'},
                                            {"data-topic", required_argument, NULL, 'd'},
                                            {"live-topic", required_argument, NULL, 'l'},
                                            {"group", required_argument, NULL, 'g'},
                                            {"live-ms", required_argument, NULL, 'L'},
                                            {NULL, 0, NULL, 0}};
    bench_child_t *ch = calloc(1, sizeof *ch);
    static char *props[MAX_PROPS];
    const char *data_topic = NULL, *live_topic = NULL;
    long live_ms = 1000;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "X:", options, NULL)) != -1) {
        switch (opt) {
            case 'C':
                ch->s = bench_scenario_find(optarg);
                break;
            case 'b':
                ch->brokers = optarg;
                break;
            case 'd':
                data_topic = optarg;
                break;
            case 'l':
                live_topic = optarg;
                break;
            case 'g':
                ch->group = optarg;
                break;
            case 'L':
                live_ms = atol(optarg);
                break;
            case 'X':
                if (ch->prop_count < MAX_PROPS)
                    props[ch->prop_count++] = optarg;
                break;
            default:
                return CLI_EXIT_USAGE;
        }
    }
    if (!ch->s || !ch->brokers || !data_topic || !live_topic || !ch->group || live_ms <= 0)
        return child_usage("needs a known scenario, --brokers, --data-topic, --live-topic, "
                           "--group and --live-ms");
    ch->props = props;
    const bench_scenario_t *s = ch->s;
    bench_result_t r = {.scenario = s};
    int partitions = s->partitions;
    if (partitions > MAX_PARTITIONS)
        return child_usage("too many partitions");

    const bench_consumer_ops_t *ops = s->kind == BENCH_RAW ? &bench_raw_ops : &bench_kaffe_ops;
    char err[512] = "";
    static int64_t data_ends[MAX_PARTITIONS], live_ends[MAX_PARTITIONS], live_cap[MAX_PARTITIONS];

    /* The data set's log ends, read with a plain client. */
    rd_kafka_conf_t *conf =
        bench_rdkafka_conf(ch->brokers, NULL, props, ch->prop_count, err, sizeof err);
    rd_kafka_t *meta = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err) : NULL;
    if (!meta) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        snprintf(r.error, sizeof r.error, "%s", err);
        goto report;
    }
    if (bench_log_ends(meta, data_topic, partitions, data_ends) != 0) {
        snprintf(r.error, sizeof r.error, "could not read the log ends of %s", data_topic);
        goto report;
    }
    /* The live phase's ceiling: its rate caps, and half the mock's
     * retention per partition (the data set has the other half). */
    double max_rate = LIVE_MAX_RATE;
    if (max_rate > LIVE_MAX_MB_PER_S * 1024 * 1024 / s->message_size)
        max_rate = LIVE_MAX_MB_PER_S * 1024 * 1024 / s->message_size;
    long live_max = (long)(max_rate * (double)live_ms / 1000.0) + 1;
    long live_retained = BENCH_MOCK_MAX_BYTES / 2 / (s->message_size + 64) * partitions;
    if (live_max > live_retained)
        live_max = live_retained;
    for (int p = 0; p < partitions; p++)
        live_cap[p] = live_max / partitions + 1;
    if (track_topic(&ch->topic[DATA], data_topic, partitions, data_ends) ||
        track_topic(&ch->topic[LIVE], live_topic, partitions, live_cap)) {
        snprintf(r.error, sizeof r.error, "out of memory");
        goto report;
    }
    r.expected = sum(data_ends, partitions);
    if (!ops->start) {
        snprintf(r.error, sizeof r.error, "not built yet: this kaffe has no consumer");
        goto report;
    }

    /* Phase 1: drain. */
    double cpu0 = cpu_seconds();
    uint64_t started = clock_now_ns();
    void *state = ops->start(ch, err, sizeof err);
    if (!state) {
        snprintf(r.error, sizeof r.error, "start: %s", err);
        goto report;
    }
    int drained = wait_for(ch, DATA, r.expected, "drain");
    r.cpu_s = cpu_seconds() - cpu0;
    r.rss_mb = peak_rss_mb();
    r.messages = atomic_load_explicit(&ch->topic[DATA].unique, memory_order_acquire);
    uint64_t first = atomic_load_explicit(&ch->first_ns, memory_order_relaxed);
    uint64_t last = atomic_load_explicit(&ch->last_ns, memory_order_relaxed);
    r.seconds = last > first ? (double)(last - first) / 1e9 : 0;
    r.startup_s = first > started ? (double)(first - started) / 1e9 : 0;
    if (r.seconds > 0) {
        r.msgs_per_s = (double)r.messages / r.seconds;
        r.mb_per_s = r.msgs_per_s * s->message_size / (1024.0 * 1024.0);
    }

    /* Phase 2: live, at half the drained rate. */
    if (drained == 0) {
        double rate = r.msgs_per_s / 2;
        rate = rate > max_rate ? max_rate : rate < LIVE_MIN_RATE ? LIVE_MIN_RATE : rate;
        long n = (long)(rate * (double)live_ms / 1000.0);
        n = n < 20 ? 20 : n > live_max ? live_max : n;
        r.live_rate = rate;
        r.live_messages = bench_produce(ch->brokers, props, ch->prop_count, live_topic, partitions,
                                        s->keys, s->message_size, n, rate, err, sizeof err);
        if (r.live_messages < 0)
            snprintf(r.error, sizeof r.error, "live phase: %s", err);
        else if (wait_for(ch, LIVE, r.live_messages, "live") != 0)
            snprintf(r.error, sizeof r.error, "live phase: stalled");
    } else {
        snprintf(r.error, sizeof r.error, "drain stalled at %ld of %ld messages", r.messages,
                 r.expected);
    }

    if (ops->stop(state, err, sizeof err) != 0 && !r.error[0])
        snprintf(r.error, sizeof r.error, "stop: %s", err);

    /* Correctness, from this process's bookkeeping and a separate client. */
    if (bench_log_ends(meta, live_topic, partitions, live_ends) != 0 && !r.error[0])
        snprintf(r.error, sizeof r.error, "could not read the log ends of %s", live_topic);
    r.expected += sum(live_ends, partitions);
    r.unique = atomic_load_explicit(&ch->topic[DATA].unique, memory_order_acquire) +
               atomic_load_explicit(&ch->topic[LIVE].unique, memory_order_acquire);
    r.duplicates = atomic_load_explicit(&ch->duplicates, memory_order_relaxed);
    r.missing = missing(&ch->topic[DATA], data_ends) + missing(&ch->topic[LIVE], live_ends);
    const int64_t *ends[2] = {data_ends, live_ends};
    check_committed(ch, ends, &r);
    if (histogram_count(&ch->start_latency)) {
        r.start_p50_us = (double)histogram_percentile(&ch->start_latency, 50) / 1e3;
        r.start_p99_us = (double)histogram_percentile(&ch->start_latency, 99) / 1e3;
    } else {
        r.start_p50_us = r.start_p99_us = -1;
    }
    if (histogram_count(&ch->e2e_latency)) {
        r.e2e_p50_us = (double)histogram_percentile(&ch->e2e_latency, 50) / 1e3;
        r.e2e_p99_us = (double)histogram_percentile(&ch->e2e_latency, 99) / 1e3;
    } else {
        r.e2e_p50_us = r.e2e_p99_us = -1;
    }
    r.ran = true;
    if (atomic_load_explicit(&ch->unexpected, memory_order_relaxed) && !r.error[0])
        snprintf(r.error, sizeof r.error, "%ld messages outside the data set",
                 atomic_load_explicit(&ch->unexpected, memory_order_relaxed));

report:
    bench_result_print(&r, stdout);
    fflush(stdout);
    if (meta)
        rd_kafka_destroy(meta);
    untrack_topic(&ch->topic[DATA]);
    untrack_topic(&ch->topic[LIVE]);
    free(ch);
    return r.ran && !r.error[0] ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}
