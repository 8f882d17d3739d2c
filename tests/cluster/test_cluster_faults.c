/* The real-cluster fault tier: kaffe against a 3-node Apache Kafka (KRaft)
 * cluster that scripts/kafka/cluster.sh runs behind Toxiproxy
 * (KAFFE_CLUSTER_ENV; scripts/test.sh starts and stops it).
 *
 * Every scenario creates its own topic (6 partitions, replication factor 3,
 * min.insync.replicas 2), produces to it during the whole scenario with the
 * kaffe producer (acks=all, idempotence on, kaffe_produce_sync_batch, every
 * message's status kept), and consumes it with MEMBERS
 * tests/faults/fault_consumer processes in one group (async acks, acked out
 * of order, each logging every handle, ack and assignment). The fault
 * happens under that load. Then, with every broker serving and every toxic
 * gone, the checker (support/fault_check.h; plain librdkafka clients, not
 * kaffe) reads the whole log and the committed offsets and asserts:
 *   - producer loss 0: every message whose produce returned OK is in the
 *     log, exactly once (idempotence), at the offset the producer was told;
 *   - the committed offsets reach the log end (with the consumers running);
 *   - consumer loss 0: every offset below the log end was handled;
 *   - replays of acked 0: no offset is handled after a moment at which it
 *     was committed as done (checkpoints read after each fault, and the
 *     states the members logged at each assignment);
 *   - committed-but-never-acked 0;
 *   - duplicates within the bound: per assignment, the offsets handled
 *     before it and not done in the committed state it was assigned with.
 * Each scenario records a row (KAFFE_CLUSTER_RESULTS, for
 * scripts/reliability.sh cluster): produced, handled, the figures above,
 * and recovery, from the end of the fault (broker serving again, toxic
 * removed, last restart) to the first message handled after it.
 *
 * Every wait is for a state (a node serves: scripts/kafka/cluster.sh wait;
 * members handle; committed offsets reach the log end), bounded. The fixed
 * durations are the faults' own (a broker down 10 s, frozen or blackholed
 * longer than the session timeout). KAFFE_REAL_FAULTS_SOAK=1 adds a soak:
 * random faults for KAFFE_REAL_FAULTS_SOAK_MINUTES (default 30), checked the
 * same way (run it with scripts/test.sh soak). */
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/cluster_env.h"
#include "support/fault_check.h"

enum {
    PARTITIONS = 6,
    MEMBERS = 3,
    MAX_MEMBERS = 6,
    MAX_LOGS = 512,            /* member processes a scenario may start (the soak's restarts) */
    MAX_CHECKPOINTS = 512,     /* faults and kills a scenario may check against */
    SESSION_TIMEOUT_MS = 6000, /* the broker's group.min.session.timeout.ms */
};

/* The members' settings beyond fault_consumer's defaults: a session the
 * broker accepts, and reconnects that do not back off for 10 s. */
static const char member_conf[] = "rdkafka.session.timeout.ms=6000;"
                                  "rdkafka.heartbeat.interval.ms=500;"
                                  "rdkafka.reconnect.backoff.max.ms=1000;"
                                  "rdkafka.topic.metadata.refresh.interval.ms=2000";

static void load_cluster(void) {
    char err[512];
    cr_assert(cluster_env_load(err, sizeof err), "%s", err);
    cr_assert_geq(cluster_nodes(), 3, "the tier needs 3 nodes");
    setenv("KAFFE_FAULT_CONSUMER_CONF", member_conf, 1);
}

TestSuite(cluster, .init = load_cluster);

/* --- control ---------------------------------------------------------------- */

static void ctl(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl(const char *command, const char *fmt, ...) {
    char args[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int64_t t0 = clock_now_ms();
    int rc = cluster_ctl(NULL, 0, command, "%s", args);
    fprintf(stderr, "cluster: %s %s: %d (%lld ms)\n", command, args, rc,
            (long long)(clock_now_ms() - t0));
    cr_assert_eq(rc, 0, "scripts/kafka/cluster.sh %s %s failed (%d)", command, args, rc);
}

/* Every node running, thawed and serving (full ISR), every toxic gone. */
static void cluster_all_up(void) {
    ctl("restore", "%d", 180);
}

/* --- the producer under load ------------------------------------------------ */

typedef struct produced {
    kaffe_status_t status;
    int32_t partition;
    int64_t offset;
} produced_t;

enum { LOAD_BATCH = 25 };

typedef struct loader {
    kaffe_producer_t *producer;
    pthread_t thread;
    atomic_int stop;
    long rate; /* messages per second */
    /* Written by the loader thread only; read after the join. */
    produced_t *msgs;
    long count, cap;
    atomic_long ok, failed; /* progress, read while it runs */
} loader_t;

/* Values are "m-<index>": the checker finds each message by its index. */
static void *loader_main(void *arg) {
    loader_t *l = arg;
    int64_t started = clock_now_us();
    char values[LOAD_BATCH][24];
    kaffe_produce_msg_t msgs[LOAD_BATCH];
    kaffe_produce_result_t results[LOAD_BATCH];
    while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
        for (int i = 0; i < LOAD_BATCH; i++) {
            int n = snprintf(values[i], sizeof values[i], "m-%ld", l->count + i);
            msgs[i] = (kaffe_produce_msg_t)KAFFE_PRODUCE_MSG_INIT;
            msgs[i].value = values[i];
            msgs[i].value_len = (size_t)n;
        }
        kaffe_produce_sync_batch(l->producer, msgs, LOAD_BATCH, results);
        if (l->count + LOAD_BATCH > l->cap) {
            l->cap = l->cap ? l->cap * 2 : 16384;
            l->msgs = realloc(l->msgs, (size_t)l->cap * sizeof *l->msgs);
            cr_assert_not_null(l->msgs);
        }
        for (int i = 0; i < LOAD_BATCH; i++) {
            l->msgs[l->count + i] =
                (produced_t){results[i].status, results[i].partition, results[i].offset};
            if (results[i].status == KAFFE_OK)
                atomic_fetch_add_explicit(&l->ok, 1, memory_order_relaxed);
            else
                atomic_fetch_add_explicit(&l->failed, 1, memory_order_relaxed);
        }
        l->count += LOAD_BATCH;
        int64_t due = started + l->count * 1000000 / l->rate;
        int64_t now = clock_now_us();
        if (due > now)
            clock_sleep_ms((due - now) / 1000);
    }
    return NULL;
}

static void loader_start(loader_t *l, const char *topic, long rate, int produce_timeout_ms) {
    memset(l, 0, sizeof *l);
    l->rate = rate;
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[512], timeout[24];
    snprintf(timeout, sizeof timeout, "%d", produce_timeout_ms);
    const char *settings[][2] = {
        {"endpoints", cluster_bootstrap()},
        {"topics", topic},
        {"produce_timeout_ms", timeout},
        {"rdkafka.acks", "all"},
        {"rdkafka.enable.idempotence", "true"},
        {"rdkafka.linger.ms", "5"},
        {"rdkafka.reconnect.backoff.max.ms", "1000"},
        {"rdkafka.topic.metadata.refresh.interval.ms", "2000"},
        {"rdkafka.log_level", "2"},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        cr_assert_eq(kaffe_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err),
                     KAFFE_OK, "%s", err);
    l->producer = kaffe_producer_new(conf, err, sizeof err);
    cr_assert_not_null(l->producer, "%s", err);
    cr_assert_eq(pthread_create(&l->thread, NULL, loader_main, l), 0);
}

static void loader_stop(loader_t *l) {
    atomic_store(&l->stop, 1);
    pthread_join(l->thread, NULL);
    kaffe_producer_destroy(l->producer);
    l->producer = NULL;
}

/* Waits until n more messages than now were acknowledged (the load goes on). */
static void loader_wait_ok(loader_t *l, long n, int timeout_ms) {
    long target = atomic_load(&l->ok) + n;
    int64_t deadline = clock_now_ms() + timeout_ms;
    while (atomic_load(&l->ok) < target) {
        cr_assert(clock_now_ms() < deadline, "the producer acknowledged %ld of %ld in %d ms",
                  atomic_load(&l->ok), target, timeout_ms);
        clock_sleep_ms(20);
    }
}

/* --- a scenario --------------------------------------------------------------- */

typedef struct scenario {
    const char *title;
    char topic[96], group[100], dir[128];
    unsigned seed;
    loader_t load;
    subprocess_t members[MAX_MEMBERS];
    int member_log[MAX_MEMBERS]; /* index into logs; -1: not running */
    char logs[MAX_LOGS][192];
    int log_count;
    fault_checkpoint_t cps[MAX_CHECKPOINTS];
    int cp_count;
    int64_t fault_start_us; /* the first fault's start */
    int64_t fault_end_us;   /* the last fault's end */
    long recovery_ms;       /* the slowest recovery over the faults */
    int expect_produce_errors;
} scenario_t;

static int member_count(const scenario_t *s) {
    int n = 0;
    for (int i = 0; i < MAX_MEMBERS; i++)
        n += s->member_log[i] >= 0;
    return n;
}

/* Starts member slot i (a new process, with its own log). */
static void member_start(scenario_t *s, int i) {
    cr_assert(s->member_log[i] < 0, "member %d runs", i);
    cr_assert(s->log_count < MAX_LOGS);
    int k = s->log_count++;
    snprintf(s->logs[k], sizeof s->logs[k], "%s/member-%d-%d.log", s->dir, i, k);
    fault_consumer_start_at(&s->members[i], cluster_bootstrap(), s->topic, s->group, s->logs[k],
                            s->seed + (unsigned)k, 100, 3000);
    s->member_log[i] = k;
}

/* Waits until member i handled a message (it joined and was assigned). */
static void member_wait_handling(scenario_t *s, int i, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    while (fault_log_handles(s->logs[s->member_log[i]]) < 1) {
        cr_assert(clock_now_ms() < deadline, "%s: member %d handled nothing in %d ms", s->topic, i,
                  timeout_ms);
        clock_sleep_ms(50);
    }
}

/* Signals member i and waits for its exit status. */
static int member_stop(scenario_t *s, int i, int sig) {
    int rc = subprocess_stop(&s->members[i], sig, 60000);
    s->member_log[i] = -1;
    return rc;
}

/* A checkpoint of the committed state now (after a fault or kill): what it
 * has as done must never be handled again. */
static void checkpoint(scenario_t *s) {
    cr_assert(s->cp_count < MAX_CHECKPOINTS);
    fault_checkpoint_take(&s->cps[s->cp_count++], cluster_bootstrap(), s->group, s->topic,
                          PARTITIONS);
}

static void fault_starts(scenario_t *s) {
    if (!s->fault_start_us)
        s->fault_start_us = clock_now_us();
}

/* The fault is over: waits for the first message handled after now
 * (bounded), keeps the slowest recovery, and takes a checkpoint. */
static void fault_over(scenario_t *s) {
    int64_t end = clock_now_us();
    s->fault_end_us = end;
    int64_t deadline = clock_now_ms() + 120000;
    int64_t first = -1;
    while (first < 0) {
        for (int i = 0; i < MAX_MEMBERS; i++) {
            if (s->member_log[i] < 0)
                continue;
            int64_t t = fault_log_first_handle_after(s->logs[s->member_log[i]], end);
            if (t >= 0 && (first < 0 || t < first))
                first = t;
        }
        cr_assert(first >= 0 || clock_now_ms() < deadline,
                  "%s: nothing handled within 120 s of the fault's end", s->topic);
        if (first < 0)
            clock_sleep_ms(20);
    }
    long ms = (long)((first - end) / 1000);
    fprintf(stderr, "%s: fault over; first handle after %ld ms\n", s->topic, ms);
    if (ms > s->recovery_ms)
        s->recovery_ms = ms;
    checkpoint(s);
}

/* Topic, load, MEMBERS members, each handling: the group is stable. */
static void scenario_begin(scenario_t *s, const char *name, const char *title, long rate,
                           int produce_timeout_ms) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < MAX_MEMBERS; i++)
        s->member_log[i] = -1;
    s->title = title;
    snprintf(s->topic, sizeof s->topic, "rc-%s-%d-%lld", name, (int)getpid(),
             (long long)time(NULL));
    snprintf(s->group, sizeof s->group, "g-%s", s->topic);
    snprintf(s->dir, sizeof s->dir, "/tmp/kaffe-cluster-%s-XXXXXX", name);
    cr_assert_not_null(mkdtemp(s->dir));
    s->seed = fault_seed(name);
    fprintf(stderr, "%s: member logs in %s (removed when the scenario passes)\n", s->topic, s->dir);
    cluster_all_up();
    char err[512];
    cr_assert_eq(plain_create_topic(cluster_bootstrap(), s->topic, PARTITIONS, 3, err, sizeof err),
                 0, "%s", err);
    loader_start(&s->load, s->topic, rate, produce_timeout_ms);
    for (int i = 0; i < MEMBERS; i++)
        member_start(s, i);
    for (int i = 0; i < MEMBERS; i++)
        member_wait_handling(s, i, 90000);
    loader_wait_ok(&s->load, rate, 60000); /* a second of load behind the members */
    fprintf(stderr, "%s: %d members handling, load %ld/s\n", s->topic, MEMBERS, rate);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The longest pause between two handles (any member) from the first
 * fault's start to the first handle after the last fault's end. */
static long longest_pause_ms(const scenario_t *s, const fault_log_t *log) {
    size_t n = 0;
    int64_t *t = malloc((log->count + 1) * sizeof *t);
    cr_assert_not_null(t);
    int64_t until = s->fault_end_us + (int64_t)s->recovery_ms * 1000;
    for (size_t i = 0; i < log->count; i++)
        if (log->ev[i].kind == 'H' && log->ev[i].t_us >= s->fault_start_us &&
            log->ev[i].t_us <= until)
            t[n++] = log->ev[i].t_us;
    qsort(t, n, sizeof *t, cmp_i64);
    int64_t longest = n ? t[0] - s->fault_start_us : until - s->fault_start_us;
    for (size_t i = 1; i < n; i++)
        if (t[i] - t[i - 1] > longest)
            longest = t[i] - t[i - 1];
    free(t);
    return (long)(longest / 1000);
}

/* What the producer's statuses and the log say. */
typedef struct produce_verdict {
    long acked, errors, lost, log_duplicates, wrong_offset, errors_in_log, errors_absent;
} produce_verdict_t;

static produce_verdict_t check_produced(const scenario_t *s, long log_messages) {
    produce_verdict_t v = {0};
    const loader_t *l = &s->load;
    unsigned char *seen = calloc((size_t)l->count + 1, 1);
    int32_t *where_p = malloc(((size_t)l->count + 1) * sizeof *where_p);
    int64_t *where_o = malloc(((size_t)l->count + 1) * sizeof *where_o);
    cr_assert(seen && where_p && where_o);
    plain_message_t *msgs = NULL;
    size_t n = plain_consume_all(cluster_bootstrap(), s->topic, (size_t)log_messages, 10000, &msgs);
    cr_assert_eq((long)n, log_messages, "%s: the plain reader read %zu of %ld messages", s->topic,
                 n, log_messages);
    for (size_t i = 0; i < n; i++) {
        long idx = -1;
        if (msgs[i].value && sscanf(msgs[i].value, "m-%ld", &idx) == 1 && idx >= 0 &&
            idx < l->count) {
            if (seen[idx] < 255)
                seen[idx]++;
            where_p[idx] = msgs[i].partition;
            where_o[idx] = msgs[i].offset;
        }
    }
    plain_messages_free(msgs, n);
    for (long i = 0; i < l->count; i++) {
        const produced_t *m = &l->msgs[i];
        if (m->status == KAFFE_OK) {
            v.acked++;
            if (!seen[i]) {
                v.lost++;
                fprintf(stderr,
                        "%s: m-%ld acknowledged (partition %d offset %lld), not in the log\n",
                        s->topic, i, (int)m->partition, (long long)m->offset);
            } else if (m->offset >= 0 && (where_p[i] != m->partition || where_o[i] != m->offset)) {
                v.wrong_offset++;
            }
        } else {
            v.errors++;
            if (seen[i])
                v.errors_in_log++;
            else
                v.errors_absent++;
            /* Per message: which of the two it is. */
            fprintf(stderr, "%s: m-%ld failed with %s: %s\n", s->topic, i,
                    kaffe_err_name(m->status),
                    seen[i] ? "in the log (delivered after all)" : "absent from the log");
        }
        if (seen[i] > 1)
            v.log_duplicates += seen[i] - 1;
    }
    free(seen);
    free(where_p);
    free(where_o);
    return v;
}

static void record_row(const scenario_t *s, const produce_verdict_t *pv, const fault_verdict_t *v,
                       long handled, long bound, long pause_ms) {
    char line[1024];
    snprintf(line, sizeof line, "%s|%ld|%ld|%ld|%ld|%ld|%ld|%ld|%ld|%ld|%ld|%ld|%ld|%ld\n",
             s->title, pv->acked, pv->errors, pv->errors_in_log, pv->lost, v->messages, handled,
             v->lost, v->replays_of_acked, v->duplicates, bound, s->recovery_ms, pause_ms,
             (long)s->log_count);
    fault_results_append("KAFFE_CLUSTER_RESULTS", line);
}

/* Stops the load, brings every broker back, waits for the committed log
 * end, stops the members and runs the checker; records the row. */
static void scenario_finish(scenario_t *s) {
    loader_stop(&s->load);
    cluster_all_up();
    int64_t log_end[PARTITIONS];
    long log_messages = 0;
    for (int p = 0; p < PARTITIONS; p++) {
        log_end[p] = plain_log_end(cluster_bootstrap(), s->topic, p);
        cr_assert_geq(log_end[p], 0, "%s: log end of partition %d unreadable", s->topic, p);
        log_messages += log_end[p];
    }
    cr_assert_gt(member_count(s), 0);
    int reached = fault_wait_committed_end(cluster_bootstrap(), s->group, s->topic, PARTITIONS,
                                           log_end, 180000);
    if (!reached) {
        int64_t committed[PARTITIONS];
        fault_committed_offsets(cluster_bootstrap(), s->group, s->topic, PARTITIONS, committed);
        for (int p = 0; p < PARTITIONS; p++)
            fprintf(stderr, "%s: partition %d committed %lld, log end %lld\n", s->topic, p,
                    (long long)committed[p], (long long)log_end[p]);
    }
    cr_assert(reached, "%s: the committed offsets did not reach the log end in 180 s", s->topic);
    for (int i = 0; i < MAX_MEMBERS; i++)
        if (s->member_log[i] >= 0) {
            int rc = member_stop(s, i, SIGTERM);
            cr_expect_eq(rc, 0, "%s: member %d exited with %d after SIGTERM", s->topic, i, rc);
        }

    fault_log_t log = {0};
    for (int k = 0; k < s->log_count; k++)
        fault_log_read(&log, s->logs[k]);
    long handled = 0;
    for (size_t i = 0; i < log.count; i++)
        handled += log.ev[i].kind == 'H';
    long bound = fault_assignments_at_risk(&log, log_end);
    fault_verdict_t v = fault_verdict(&log, s->cps, (size_t)s->cp_count, PARTITIONS, log_end);
    produce_verdict_t pv = check_produced(s, log_messages);
    long pause_ms = s->fault_start_us ? longest_pause_ms(s, &log) : -1;
    fprintf(stderr,
            "%s: produced %ld (acked %ld, errors %ld: %ld in the log, %ld absent), producer lost "
            "%ld, log %ld, handled %ld, lost %ld, duplicates %ld (bound %ld), replays %ld "
            "(after checkpoints %ld, after assignments %ld), committed unacked %ld, recovery %ld "
            "ms, longest pause %ld ms, %d member processes\n",
            s->topic, s->load.count, pv.acked, pv.errors, pv.errors_in_log, pv.errors_absent,
            pv.lost, v.messages, handled, v.lost, v.duplicates, bound, v.replays_of_acked,
            v.replays_after_kill, v.replays_after_assignment, v.committed_unacked, s->recovery_ms,
            pause_ms, s->log_count);
    cr_assert_eq(pv.lost, 0, "%s: %ld acknowledged messages are not in the log", s->topic, pv.lost);
    cr_assert_eq(pv.log_duplicates, 0, "%s: %ld messages are in the log twice (idempotence)",
                 s->topic, pv.log_duplicates);
    cr_assert_eq(pv.wrong_offset, 0, "%s: %ld messages not at the offset their produce reported",
                 s->topic, pv.wrong_offset);
    if (!s->expect_produce_errors)
        cr_assert_eq(pv.errors, 0, "%s: %ld produce calls failed", s->topic, pv.errors);
    cr_assert_eq(v.lost, 0, "%s: %ld messages never handled", s->topic, v.lost);
    cr_assert_eq(v.replays_of_acked, 0, "%s: %ld handles of offsets committed as done", s->topic,
                 v.replays_of_acked);
    cr_assert_eq(v.committed_unacked, 0, "%s: %ld offsets committed as done without an ack",
                 s->topic, v.committed_unacked);
    cr_assert_leq(v.duplicates, bound, "%s: %ld duplicates, bound %ld", s->topic, v.duplicates,
                  bound);
    record_row(s, &pv, &v, handled, bound, pause_ms);
    fault_log_free(&log);
    for (int c = 0; c < s->cp_count; c++)
        for (int p = 0; p < PARTITIONS; p++)
            fault_done_free(&s->cps[c].done[p]);
    free(s->load.msgs);
    if (!getenv("KAFFE_FAULTS_KEEP")) {
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->dir);
    } else {
        fprintf(stderr, "%s: logs kept in %s\n", s->topic, s->dir);
    }
}

/* The last fault is over: recovery, a second more of load, the checks. */
static void scenario_end(scenario_t *s) {
    fault_over(s);
    loader_wait_ok(&s->load, s->load.rate, 60000);
    scenario_finish(s);
}

/* --- who is who --------------------------------------------------------------- */

static int leader_of(const scenario_t *s, int partition) {
    int id = cluster_query("leader", "%s %d", s->topic, partition);
    cr_assert_gt(id, 0, "%s: no leader for partition %d", s->topic, partition);
    return id;
}

/* The partition with the highest log end (the busiest). */
static int busiest_partition(const scenario_t *s) {
    int best = 0;
    int64_t most = -1;
    for (int p = 0; p < PARTITIONS; p++) {
        int64_t end = plain_log_end(cluster_bootstrap(), s->topic, p);
        if (end > most) {
            most = end;
            best = p;
        }
    }
    return best;
}

/* The node leading most of the topic's partitions. */
static int busiest_leader(const scenario_t *s) {
    int led[16] = {0}, best = 1;
    for (int p = 0; p < PARTITIONS; p++) {
        int id = leader_of(s, p);
        if (id < 16)
            led[id]++;
    }
    for (int id = 1; id <= cluster_nodes() && id < 16; id++)
        if (led[id] > led[best])
            best = id;
    return best;
}

/* Waits until the active controller is not node id (a new one is elected). */
static int wait_controller_other_than(int id, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    for (;;) {
        int c = cluster_query("controller", "%s", "");
        if (c > 0 && c != id)
            return c;
        cr_assert(clock_now_ms() < deadline, "no controller other than node %d after %d ms", id,
                  timeout_ms);
        clock_sleep_ms(100);
    }
}

/* --- the scenarios ---------------------------------------------------------------- */

Test(cluster, leader_sigkill_restart_after_10s, .timeout = 240) {
    static scenario_t s; /* large: not on the stack */
    scenario_begin(&s, "leader-kill",
                   "1. SIGKILL the busiest partition's leader, restart after 10 s", 600, 60000);
    int p = busiest_partition(&s), id = leader_of(&s, p);
    fprintf(stderr, "%s: killing node %d, leader of partition %d\n", s.topic, id, p);
    fault_starts(&s);
    ctl("node", "%d kill", id);
    clock_sleep_ms(10000); /* the fault's length, as the scenario says */
    ctl("node", "%d start", id);
    ctl("wait", "%d 120", id);
    scenario_end(&s);
}

Test(cluster, rolling_restart, .timeout = 300) {
    static scenario_t s; /* large: not on the stack */
    scenario_begin(&s, "rolling",
                   "2. Rolling restart of all 3 brokers (SIGTERM, wait until it serves)", 600,
                   60000);
    fault_starts(&s);
    for (int id = 1; id <= 3; id++) {
        ctl("node", "%d restart", id);
        ctl("wait", "%d 120", id);
        loader_wait_ok(&s.load, 300, 60000); /* load reaches the cluster between restarts */
    }
    fault_over(&s);
    scenario_finish(&s);
}

Test(cluster, controller_sigkill, .timeout = 240) {
    static scenario_t s; /* large: not on the stack */
    scenario_begin(&s, "controller-kill", "3. SIGKILL the active KRaft controller, restart it", 600,
                   60000);
    int id = cluster_query("controller", "%s", "");
    cr_assert_gt(id, 0, "no active controller");
    fprintf(stderr, "%s: killing node %d, the active controller\n", s.topic, id);
    fault_starts(&s);
    ctl("node", "%d kill", id);
    int next = wait_controller_other_than(id, 60000);
    fprintf(stderr, "%s: node %d is the controller now\n", s.topic, next);
    ctl("node", "%d start", id);
    ctl("wait", "%d 120", id);
    scenario_end(&s);
}

Test(cluster, broker_sigstop_longer_than_session, .timeout = 240) {
    static scenario_t s; /* large: not on the stack */
    scenario_begin(&s, "zombie",
                   "4. SIGSTOP a broker (the busiest leader) for 9 s > session.timeout.ms, SIGCONT",
                   600, 60000);
    int id = busiest_leader(&s);
    fprintf(stderr, "%s: freezing node %d\n", s.topic, id);
    fault_starts(&s);
    ctl("node", "%d freeze", id);
    clock_sleep_ms(SESSION_TIMEOUT_MS + 3000); /* the fault's length */
    ctl("node", "%d thaw", id);
    ctl("wait", "%d 120", id);
    scenario_end(&s);
}

Test(cluster, coordinator_blackhole, .timeout = 240) {
    static scenario_t s; /* large: not on the stack */
    scenario_begin(&s, "blackhole",
                   "5. Blackhole the group coordinator's broker (Toxiproxy timeout) for 9 s > "
                   "session.timeout.ms, heal",
                   600, 60000);
    int id = cluster_query("coordinator", "%s", s.group);
    cr_assert_gt(id, 0, "no coordinator for %s", s.group);
    fprintf(stderr, "%s: blackholing node %d, the coordinator\n", s.topic, id);
    fault_starts(&s);
    ctl("toxic", "%d hole-up timeout upstream timeout=0", id);
    ctl("toxic", "%d hole-down timeout downstream timeout=0", id);
    clock_sleep_ms(SESSION_TIMEOUT_MS + 3000); /* the fault's length */
    ctl("untoxic", "%d hole-up", id);
    ctl("untoxic", "%d hole-down", id);
    scenario_end(&s);
}

Test(cluster, latency_resets_rebalance_storm, .timeout = 300) {
    static scenario_t s; /* large: not on the stack */
    scenario_begin(&s, "storm",
                   "6. 200 ms latency (jitter 50) and connection resets on every broker during a "
                   "rebalance storm (members join and leave)",
                   300, 60000);
    int nodes = cluster_nodes();
    fault_starts(&s);
    for (int id = 1; id <= nodes; id++)
        ctl("toxic", "%d lag latency downstream latency=200 jitter=50", id);
    /* Six membership changes, each waited for (a joiner handles; a leaver
     * exits), with a reset of one broker's connections before each. */
    int next = MEMBERS;
    for (int round = 0; round < 6; round++) {
        int id = 1 + round % nodes;
        ctl("toxic", "%d reset reset_peer upstream timeout=0", id);
        clock_sleep_ms(200); /* connections in use in this window are reset */
        ctl("untoxic", "%d reset", id);
        if (round % 2 == 0) {
            int slot = next++ % MAX_MEMBERS;
            if (s.member_log[slot] >= 0)
                slot = (slot + 1) % MAX_MEMBERS;
            member_start(&s, slot);
            member_wait_handling(&s, slot, 120000);
        } else {
            int slot = -1;
            for (int i = 0; i < MAX_MEMBERS && slot < 0; i++)
                if (s.member_log[i] >= 0)
                    slot = i;
            int rc = member_stop(&s, slot, SIGTERM);
            fprintf(stderr, "%s: member %d left (exit %d)\n", s.topic, slot, rc);
        }
    }
    for (int id = 1; id <= nodes; id++)
        ctl("untoxic", "%d lag", id);
    scenario_end(&s);
}

Test(cluster, members_sigkilled_while_brokers_die, .timeout = 300) {
    static scenario_t s; /* large: not on the stack */
    scenario_begin(&s, "kill-members",
                   "7. Members SIGKILLed x4 at random points while brokers are SIGKILLed too", 600,
                   60000);
    fault_starts(&s);
    for (int round = 0; round < 4; round++) {
        clock_sleep_ms(200 + rand() % 800); /* a random kill point under load */
        int victim = rand() % MEMBERS;
        int rc = member_stop(&s, victim, SIGKILL);
        cr_assert_eq(rc, 128 + SIGKILL, "member %d: exit %d", victim, rc);
        int broker = -1;
        if (round % 2 == 1) {
            broker = 1 + rand() % cluster_nodes();
            ctl("node", "%d kill", broker);
        }
        checkpoint(&s);
        member_start(&s, victim);
        member_wait_handling(&s, victim, 120000);
        if (broker > 0) {
            ctl("node", "%d start", broker);
            ctl("wait", "%d 120", broker);
        }
    }
    scenario_end(&s);
}

Test(cluster, producer_connections_cut_mid_batch, .timeout = 240) {
    static scenario_t s; /* large: not on the stack */
    /* A short produce timeout, so that produce calls fail while their
     * requests may have reached the broker. */
    scenario_begin(&s, "producer-cut",
                   "8. Producer's connections cut mid-batch on each broker in turn (responses "
                   "blackholed past produce_timeout_ms = 3 s, then reset_peer)",
                   600, 3000);
    s.expect_produce_errors = 1;
    int nodes = cluster_nodes();
    fault_starts(&s);
    for (int id = 1; id <= nodes; id++) {
        /* The established connections keep carrying requests to the broker,
         * which writes them; its answers are dropped. */
        ctl("toxic", "%d mute timeout downstream timeout=0", id);
        long failed = atomic_load(&s.load.failed);
        int64_t deadline = clock_now_ms() + 30000;
        while (atomic_load(&s.load.failed) == failed && clock_now_ms() < deadline)
            clock_sleep_ms(50); /* until a produce call fails on the muted broker */
        ctl("toxic", "%d cut reset_peer upstream timeout=0", id);
        clock_sleep_ms(300); /* the connections in use now are reset */
        ctl("untoxic", "%d cut", id);
        ctl("untoxic", "%d mute", id);
        loader_wait_ok(&s.load, 300, 60000);
    }
    fault_over(&s);
    cr_assert_gt(atomic_load(&s.load.failed), 0, "no produce call failed: the cuts missed");
    scenario_finish(&s);
}

/* --- soak --------------------------------------------------------------------------- */

Test(cluster, soak_random_faults, .timeout = 7200) {
    const char *on = getenv("KAFFE_REAL_FAULTS_SOAK");
    if (!on || strcmp(on, "1") != 0)
        cr_skip_test("KAFFE_REAL_FAULTS_SOAK=1 runs the soak (scripts/test.sh soak)");
    const char *m = getenv("KAFFE_REAL_FAULTS_SOAK_MINUTES");
    int minutes = m ? atoi(m) : 30;
    static char title[256];
    snprintf(title, sizeof title, "9. Soak: %d min of random faults under load", minutes);
    static scenario_t s; /* large: not on the stack */
    scenario_begin(&s, "soak", title, 400, 60000);
    int nodes = cluster_nodes();
    int64_t began_ms = clock_now_ms();
    int64_t until = began_ms + (int64_t)minutes * 60000;
    int faults = 0;
    fault_starts(&s);
    while (clock_now_ms() < until) {
        int id = 1 + rand() % nodes;
        int kind = rand() % 6;
        fprintf(stderr, "%s: fault %d: kind %d on node %d\n", s.topic, faults, kind, id);
        switch (kind) {
            case 0: /* broker SIGKILL, back after 2..10 s */
                ctl("node", "%d kill", id);
                clock_sleep_ms(2000 + rand() % 8000);
                ctl("node", "%d start", id);
                break;
            case 1: /* broker SIGTERM and restart */
                ctl("node", "%d restart", id);
                break;
            case 2: /* controller SIGKILL */
                id = cluster_query("controller", "%s", "");
                ctl("node", "%d kill", id);
                wait_controller_other_than(id, 60000);
                ctl("node", "%d start", id);
                break;
            case 3: /* broker frozen 2..10 s */
                ctl("node", "%d freeze", id);
                clock_sleep_ms(2000 + rand() % 8000);
                ctl("node", "%d thaw", id);
                break;
            case 4: /* blackhole 2..10 s */
                ctl("toxic", "%d hole timeout downstream timeout=0", id);
                clock_sleep_ms(2000 + rand() % 8000);
                ctl("untoxic", "%d hole", id);
                break;
            default: { /* a member SIGKILLed and restarted */
                int victim = rand() % MEMBERS;
                member_stop(&s, victim, SIGKILL);
                checkpoint(&s);
                member_start(&s, victim);
                member_wait_handling(&s, victim, 120000);
            }
        }
        ctl("wait-all", "%d", 180);
        fault_over(&s);
        faults++;
        if (s.cp_count >= MAX_CHECKPOINTS - 2 || s.log_count >= MAX_LOGS - 2)
            break; /* the checker's tables are full: check what ran */
    }
    fprintf(stderr, "%s: %d faults\n", s.topic, faults);
    snprintf(title, sizeof title,
             "9. Soak: %d min, %d random faults (broker and controller SIGKILL, restarts, "
             "freezes, blackholes, member SIGKILL) under load",
             (int)((clock_now_ms() - began_ms + 30000) / 60000), faults);
    scenario_finish(&s);
}
