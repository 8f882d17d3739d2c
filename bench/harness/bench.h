/* bench/harness — the harness of `kaffe bench`, a library of its own
 * (kaffe_bench_harness) that the `kaffe` command and the benchmark programs
 * of bench/ link; this header is its door. cli_bench() (cli/cli.h) is its
 * entry point for the command; bench_produce() is the one data-set producer
 * of every benchmark.
 *
 * Shape of a run. The parent process (bench.c) starts the embedded cluster
 * (or uses --brokers), produces each scenario's data set once (bench_data.c),
 * and runs every scenario in a child process: `kaffe bench --child NAME ...`
 * (bench_child.c), so CPU seconds and peak RSS come from wait4() for exactly
 * that scenario and a scenario cannot disturb the next one. The child reports
 * progress and one result line on its stdout; the parent prints the table,
 * JSON and plots (bench_report.c).
 *
 * A scenario runs in two phases with one consumer (one group join):
 *  1. drain: the consumer, subscribed to the data topic and to an empty live
 *     topic, handles the pre-produced data set from the earliest offset.
 *     messages/s, MB/s, CPU seconds and peak RSS come from this phase.
 *  2. live: a producer in the child writes to the live topic at half the
 *     drained rate (capped), each payload carrying its send time, while the
 *     consumer keeps running. Latencies (poll -> handler start, produce ->
 *     handler start) come from this phase: latency at a moderate load, not
 *     the age of a backlog.
 * Then the consumer stops (final commit) and a separate plain client checks
 * that the committed offsets of both topics equal their log ends. */
#ifndef KAFFE_BENCH_HARNESS_BENCH_H
#define KAFFE_BENCH_HARNESS_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "metrics/histogram.h"

/* ---- Options (bench.c) ------------------------------------------------------ */

#define BENCH_MAX_PROPS 64
#define BENCH_MAX_ROUNDS 20

typedef struct bench_options {
    bool selected[64];
    bool any_selected;
    const char *brokers;
    double scale;
    long live_ms;
    const char *json_path;
    const char *plot_dir;
    int rounds; /* alternated rounds of every scenario (0 or 1: one) */
    char *props[BENCH_MAX_PROPS];
    size_t prop_count;
} bench_options_t;

/* Parses the parent's options into o (initialised by the caller: defaults
 * stay where no option says otherwise). Prints nothing; CLI_EXIT_OK (*help
 * set for -h, *list for -l) or CLI_EXIT_USAGE with a one-line message in
 * err. Every string in o points into argv. Not thread-safe (getopt). */
int cli_parse_bench_args(int argc, char **argv, bench_options_t *o, bool *list, bool *help,
                         char *err, size_t err_size);

/* ---- Scenarios (bench_scenarios.c) ---------------------------------------- */

typedef enum bench_kind {
    BENCH_RAW = 0,     /* plain librdkafka poll loop, handler inline */
    BENCH_KAFFE_SYNC,  /* kaffe consumer, handler's return acks */
    BENCH_KAFFE_ASYNC, /* kaffe consumer, acks from another thread after a random delay */
    BENCH_KAFFE_BATCH  /* kaffe consumer, sync batch handler (the return acks the batch) */
} bench_kind_t;

typedef enum bench_cost {
    BENCH_COST_NONE = 0,
    BENCH_COST_SPIN, /* busy-loop cost_us microseconds (CPU-bound handler) */
    BENCH_COST_SLEEP /* sleep cost_us microseconds (I/O-bound handler) */
} bench_cost_t;

typedef struct bench_scenario {
    const char *name;     /* unique; what --scenario selects */
    const char *family;   /* baseline, modes, workers, cost, size: groups the table and plots */
    const char *baseline; /* the raw scenario its "x raw" ratio is taken against */
    bench_kind_t kind;
    const char *ordering; /* partition | key | unordered (kaffe only) */
    int workers;          /* kaffe only */
    bench_cost_t cost;
    int cost_us;
    int ack_delay_max_us; /* async: each ack waits a random 0..max microseconds */
    int message_size;     /* bytes of value, >= BENCH_PAYLOAD_MIN */
    int partitions;
    int keys;      /* distinct keys, 0 for null keys */
    long messages; /* data set size at scale 1 */
    const char *summary;
} bench_scenario_t;

size_t bench_scenario_count(void);
const bench_scenario_t *bench_scenario_at(size_t i);
const bench_scenario_t *bench_scenario_find(const char *name);
const char *bench_kind_name(bench_kind_t kind);
const char *bench_cost_name(bench_cost_t cost);

/* ---- Data (bench_data.c) ----------------------------------------------------- */

/* Payload layout: 8 bytes of CLOCK_MONOTONIC send time (ns, host order),
 * then filler. The clock is system-wide, so producer and consumer may be
 * different processes on this host. */
#define BENCH_PAYLOAD_MIN 8

/* Per-partition limits of the embedded cluster (librdkafka's mock keeps
 * ~100k messages or ~5 MB per partition and drops older data silently);
 * the bench stays under 80% of both. */
#define BENCH_MOCK_MAX_MESSAGES 80000L
#define BENCH_MOCK_MAX_BYTES (4L * 1024 * 1024)

uint64_t bench_payload_sent_ns(const void *payload, size_t len);

/* The number of messages a scenario runs at this scale (at least 100),
 * clamped when embedded so no partition exceeds the mock's retention. */
long bench_messages(const bench_scenario_t *s, double scale, bool embedded);

/* The data topic of a scenario: scenarios with the same size, partitions,
 * keys and count share it. Written into buf. */
void bench_data_topic(const bench_scenario_t *s, long messages, const char *run_id, char *buf,
                      size_t size);
void bench_live_topic(const bench_scenario_t *s, const char *run_id, char *buf, size_t size);

/* A librdkafka configuration with bootstrap.servers, quiet logs, then the
 * NULL-terminated name, value pairs of defaults (may be NULL), then every
 * "-X rdkafka.<prop>=value" of the command line (which win). NULL with err
 * set. */
rd_kafka_conf_t *bench_rdkafka_conf(const char *brokers, const char *const *defaults, char **props,
                                    size_t prop_count, char *err, size_t err_size);

/* What every consumer under test gets unless -X says otherwise (name, value
 * pairs, NULL-terminated). The mock answers an empty fetch only after
 * fetch.wait.max.ms even when data arrives meanwhile (real brokers answer at
 * once), so it is kept short; see bench_data.c for queued.min.messages. */
extern const char *const bench_consumer_defaults[];

/* Creates a topic: through the mock's API when mock is non-NULL, else with
 * the Admin API. 0 or -1 with err set. */
struct mock_cluster;
int bench_create_topic(struct mock_cluster *mock, const char *brokers, const char *topic,
                       int partitions, char *err, size_t err_size);

/* Produces messages to topic: partition i % partitions, key "k<i % keys>"
 * (NULL when keys == 0), value of size bytes stamped with its send time.
 * rate_per_s > 0 paces the sends (live phase); 0 is as fast as possible.
 * Waits for every delivery.
 * Returns the number delivered, or -1 with err set. */
long bench_produce(const char *brokers, char **props, size_t prop_count, const char *topic,
                   int partitions, int keys, int size, long messages, double rate_per_s, char *err,
                   size_t err_size);

/* Log ends of every partition of topic into ends[0..partitions). 0 or -1. */
int bench_log_ends(rd_kafka_t *rk, const char *topic, int partitions, int64_t *ends);

/* ---- Child measurement (bench_child.c) ------------------------------------- */

/* What a consumer under test sees of the child's bookkeeping. */
typedef struct bench_child bench_child_t;

/* Records that a handler started on a message. topic is the message's topic
 * name, poll_ns the CLOCK_MONOTONIC time the poll loop received it (0 when
 * unknown). Runs the scenario's handler cost afterwards. Any thread. */
void bench_child_handle(bench_child_t *ch, const char *topic, int32_t partition, int64_t offset,
                        const void *payload, size_t len, uint64_t poll_ns);

/* The scenario, brokers and group the consumer under test must use. */
const bench_scenario_t *bench_child_scenario(const bench_child_t *ch);
const char *bench_child_brokers(const bench_child_t *ch);
const char *bench_child_group(const bench_child_t *ch);
const char *bench_child_data_topic(const bench_child_t *ch);
const char *bench_child_live_topic(const bench_child_t *ch);
/* The command line's -X name=value strings. */
char **bench_child_props(const bench_child_t *ch, size_t *count);

/* A consumer under test: start subscribes to both topics from the earliest
 * offset and begins handling (calling bench_child_handle); stop stops
 * fetching, lets in-flight messages finish, commits what was handled and
 * leaves the group. Both on the child's main thread. */
typedef struct bench_consumer_ops {
    void *(*start)(bench_child_t *ch, char *err, size_t err_size);
    int (*stop)(void *state, char *err, size_t err_size); /* 0 or -1 */
} bench_consumer_ops_t;

extern const bench_consumer_ops_t bench_raw_ops;   /* bench_raw.c */
extern const bench_consumer_ops_t bench_kaffe_ops; /* bench_kaffe.c; NULL start when absent */

/* Runs one scenario (the child's whole life); returns the exit code. */
int bench_child_main(int argc, char **argv);

/* ---- Results (bench_report.c) ---------------------------------------------- */

typedef struct bench_result {
    const bench_scenario_t *scenario;
    bool ran;         /* the child produced a result line */
    char error[640];  /* why not, or a failure inside the run */
    long messages;    /* drained */
    double seconds;   /* first to last handled, drain phase */
    double startup_s; /* consumer start to first message handled (group join) */
    double msgs_per_s, mb_per_s;
    double ratio;                      /* msgs/s over the baseline's, 0 when no baseline ran */
    double start_p50_us, start_p99_us; /* poll -> handler start (live); < 0 unknown */
    double e2e_p50_us, e2e_p99_us;     /* produce -> handler start (live) */
    long live_messages;
    double live_rate;
    double cpu_s;  /* user + system, whole child */
    double rss_mb; /* peak resident set, whole child */
    long expected, unique, duplicates, missing;
    bool committed_ok; /* committed offset == log end on every partition */
    char committed_detail[128];
    /* Every round of the scenario (--rounds), in round order; the fields
     * above are the best correct round's (the first failing one's if any). */
    int rounds;
    struct bench_round {
        double msgs_per_s, cpu_s, cpu_us_per_msg;
        bool correct;
    } round[BENCH_MAX_ROUNDS];
} bench_result_t;

/* CPU microseconds per message handled (drained and live) of a child. */
double bench_result_cpu_us_per_msg(const bench_result_t *r);

bool bench_result_correct(const bench_result_t *r);

/* Parses one "result key=value ..." line of a child into r. 0 or -1. */
int bench_result_parse(const char *line, bench_result_t *r);

/* Formats r as a "result key=value ..." line (the child's side). */
void bench_result_print(const bench_result_t *r, FILE *out);

void bench_report_table(const bench_result_t *results, size_t count, FILE *out);
int bench_report_json(const bench_result_t *results, size_t count, const char *path,
                      const char *command, const char *brokers, double elapsed_s);
/* Writes PNGs (and their data and gnuplot scripts) into dir. Returns the
 * number of plots written, or -1 when gnuplot is missing (said on stderr). */
int bench_report_plots(const bench_result_t *results, size_t count, const char *dir);

/* Progress on stderr: a bar redrawn in place when stderr is a terminal,
 * plain lines otherwise. */
void bench_progress_scenario(size_t index, size_t total, const char *name);
void bench_progress_update(size_t index, size_t total, const char *name, long done, long of);
void bench_progress_done(size_t index, size_t total, const bench_result_t *r);

#endif
