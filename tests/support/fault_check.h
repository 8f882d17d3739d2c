/* tests/support — the fault checker shared by the mock-cluster fault suite
 * (tests/integration/fault_helpers.h, test_faults_*.c) and the real-cluster
 * tier (tests/cluster): header-only, for Criterion test binaries (it
 * asserts with cr_assert on malformed input).
 *
 * What it judges is read independently of the code under test: the
 * committed offsets and their acked-offsets metadata, read with a plain
 * librdkafka client (support/plain_client.h), and the logs of
 * tests/faults/fault_consumer processes (one line per handled message, per
 * ack, per assignment with the committed state it was assigned with).
 *
 * The verdict (fault_verdict): lost (offsets below the log end never
 * handled), duplicates (handles beyond the first), replays of acked
 * (handles of an offset after a moment at which it was committed as done:
 * a checkpoint, or an assignment's logged state), committed-but-never-acked;
 * the duplicate bound (fault_assignments_at_risk): per assignment, the
 * offsets handled before it and not done in the state it was assigned
 * with. fault_result_record appends a row for scripts/reliability.sh. */
#ifndef KAFFE_TESTS_SUPPORT_FAULT_CHECK_H
#define KAFFE_TESTS_SUPPORT_FAULT_CHECK_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kaffe/kaffe.h>

#include "ack/ack.h"
#include "common/clock.h"
#include "support/plain_client.h"
#include "support/subprocess.h"

#define FAULT_MAX_PARTITIONS 8

/* n scaled by KAFFE_FAULTS_SCALE (a positive float), at least min. */
static inline long fault_scaled(long n, long min) {
    const char *s = getenv("KAFFE_FAULTS_SCALE");
    double f = s ? atof(s) : 1.0;
    if (f <= 0)
        f = 1.0;
    long v = (long)((double)n * f);
    return v < min ? min : v;
}

/* --- results --------------------------------------------------------------- */

typedef struct fault_result {
    const char *scenario;
    long messages;
    long lost;
    long duplicates;
    long replays_of_acked;
    long recovery_ms; /* -1: not applicable */
    long dup_bound;
    const char *bound_text; /* how dup_bound is derived */
} fault_result_t;

/* Prints line (one '|'-separated row, ending in a newline) and appends it
 * to the file named by the environment variable env_name, if set. */
static inline void fault_results_append(const char *env_name, const char *line) {
    fprintf(stderr, "fault result: %s", line);
    const char *path = getenv(env_name);
    if (path && *path) {
        FILE *f = fopen(path, "a");
        if (f) {
            fputs(line, f);
            fclose(f);
        }
    }
}

/* Appends r as one '|'-separated line to $KAFFE_FAULTS_RESULTS (if set) and
 * prints it. Called after the asserts passed: a failing scenario leaves no
 * row. */
static inline void fault_result_record(const fault_result_t *r) {
    char line[512];
    snprintf(line, sizeof line, "%s|%ld|%ld|%ld|%ld|%ld|%ld|%s\n", r->scenario, r->messages,
             r->lost, r->duplicates, r->replays_of_acked, r->recovery_ms, r->dup_bound,
             r->bound_text);
    fault_results_append("KAFFE_FAULTS_RESULTS", line);
}

/* --- committed state (read with a plain client) ---------------------------- */

/* Committed offset of each partition (-1001 when none). */
static inline void fault_committed_offsets(const char *b, const char *group, const char *topic,
                                           int partitions, int64_t *out) {
    for (int p = 0; p < partitions; p++)
        out[p] = plain_committed(b, group, topic, p, NULL);
}

/* Waits until every partition's committed offset equals its log end; true
 * when it does before timeout_ms. */
static inline int fault_wait_committed_end(const char *b, const char *group, const char *topic,
                                           int partitions, const int64_t *log_end, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    for (;;) {
        int all = 1;
        for (int p = 0; p < partitions && all; p++)
            all = plain_committed(b, group, topic, p, NULL) == log_end[p];
        if (all)
            return 1;
        if (clock_now_ms() > deadline)
            return 0;
        clock_sleep_ms(100);
    }
}

/* The committed "done" set of a partition: offsets below the committed
 * offset plus those the metadata marks acked. */
typedef struct fault_done {
    int64_t committed; /* < 0: nothing committed */
    ack_snapshot_t snap;
} fault_done_t;

static inline void fault_done_read(const char *b, const char *group, const char *topic, int32_t p,
                                   fault_done_t *d) {
    char *metadata = NULL;
    d->committed = plain_committed(b, group, topic, p, &metadata);
    memset(&d->snap, 0, sizeof d->snap);
    if (d->committed >= 0) {
        kaffe_status_t st = ack_metadata_decode(
            metadata ? metadata : "", metadata ? strlen(metadata) : 0, d->committed, &d->snap);
        cr_assert_eq(st, KAFFE_OK, "committed metadata of partition %d does not decode", (int)p);
    }
    free(metadata);
}

static inline int fault_done_has(const fault_done_t *d, int64_t o) {
    if (d->committed < 0)
        return 0;
    return o < d->committed || ack_snapshot_is_done(&d->snap, o);
}

static inline void fault_done_free(fault_done_t *d) {
    ack_snapshot_free(&d->snap);
}

/* --- consumer processes (tests/faults/fault_consumer.c) -------------------- */

typedef struct fault_event {
    char kind; /* 'H' handled, 'A' about to ack */
    int32_t partition;
    int64_t offset;
    int64_t t_us; /* CLOCK_MONOTONIC (system-wide) */
} fault_event_t;

/* A 'C' line: the committed state a partition was assigned with. */
typedef struct fault_assignment {
    int32_t partition;
    int64_t t_us;
    fault_done_t done;
} fault_assignment_t;

typedef struct fault_log {
    fault_event_t *ev;
    size_t count, cap;
    fault_assignment_t *as;
    size_t as_count, as_cap;
} fault_log_t;

static inline void fault_log_free(fault_log_t *log) {
    for (size_t i = 0; i < log->as_count; i++)
        fault_done_free(&log->as[i].done);
    free(log->as);
    free(log->ev);
}

/* Appends the events of a fault_consumer log file to log. A last line cut
 * short by a SIGKILL is impossible (one write(2) per line) but skipped if
 * malformed anyway. */
static inline void fault_log_read(fault_log_t *log, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    static char line[8192]; /* metadata is at most 4 KB */
    while (fgets(line, sizeof line, f)) {
        fault_event_t e;
        long long o, t;
        int p;
        if (sscanf(line, "%c %d %lld %lld", &e.kind, &p, &o, &t) != 4)
            continue;
        if (e.kind == 'C') {
            char *metadata = line;
            for (int field = 0; field < 4 && metadata; field++) {
                metadata = strchr(metadata, ' ');
                if (metadata)
                    metadata++;
            }
            cr_assert_not_null(metadata, "%s: malformed C line", path);
            metadata[strcspn(metadata, "\n")] = '\0';
            if (strcmp(metadata, "-") == 0)
                *metadata = '\0';
            if (log->as_count == log->as_cap) {
                log->as_cap = log->as_cap ? log->as_cap * 2 : 64;
                log->as = realloc(log->as, log->as_cap * sizeof *log->as);
                cr_assert_not_null(log->as);
            }
            fault_assignment_t *a = &log->as[log->as_count++];
            a->partition = p;
            a->t_us = t;
            a->done.committed = o;
            memset(&a->done.snap, 0, sizeof a->done.snap);
            if (o >= 0)
                cr_assert_eq(ack_metadata_decode(metadata, strlen(metadata), o, &a->done.snap),
                             KAFFE_OK, "%s: committed metadata does not decode", path);
            continue;
        }
        e.partition = p;
        e.offset = o;
        e.t_us = t;
        if (log->count == log->cap) {
            log->cap = log->cap ? log->cap * 2 : 4096;
            log->ev = realloc(log->ev, log->cap * sizeof *log->ev);
            cr_assert_not_null(log->ev);
        }
        log->ev[log->count++] = e;
    }
    fclose(f);
}

/* Handles in path (a fault_consumer log) so far. */
static inline long fault_log_handles(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long n = 0;
    char line[128];
    while (fgets(line, sizeof line, f))
        n += line[0] == 'H';
    fclose(f);
    return n;
}

/* First handle at or after t_us in path, or -1. */
static inline int64_t fault_log_first_handle_after(const char *path, int64_t t_us) {
    fault_log_t log = {0};
    fault_log_read(&log, path);
    int64_t first = -1;
    for (size_t i = 0; i < log.count; i++)
        if (log.ev[i].kind == 'H' && log.ev[i].t_us >= t_us &&
            (first < 0 || log.ev[i].t_us < first))
            first = log.ev[i].t_us;
    fault_log_free(&log);
    return first;
}

/* A committed-state snapshot (after a kill), complete at t_us: what it has
 * as committed done must never be handled after t_us. */
typedef struct fault_checkpoint {
    int64_t t_us;
    fault_done_t done[FAULT_MAX_PARTITIONS];
} fault_checkpoint_t;

static inline void fault_checkpoint_take(fault_checkpoint_t *cp, const char *b, const char *group,
                                         const char *topic, int partitions) {
    for (int p = 0; p < partitions; p++)
        fault_done_read(b, group, topic, p, &cp->done[p]);
    /* Stamped after the reads: live members (churn) go on handling and
     * committing while partition after partition is read, so a message
     * committed by its read may have been handled after the first read.
     * Everything read was committed, hence acked, by now. */
    cp->t_us = clock_now_us();
}

/* Offsets handled (in log, before cp->t_us) that cp does not have as done:
 * the most a restart after that checkpoint may hand out again. */
static inline long fault_checkpoint_at_risk(const fault_checkpoint_t *cp, const fault_log_t *log,
                                            int partitions, const int64_t *log_end) {
    long n = 0;
    for (int p = 0; p < partitions; p++) {
        unsigned char *seen = calloc((size_t)log_end[p] + 1, 1);
        for (size_t i = 0; i < log->count; i++) {
            const fault_event_t *e = &log->ev[i];
            if (e->kind != 'H' || e->partition != p || e->t_us >= cp->t_us ||
                e->offset >= log_end[p] || seen[e->offset])
                continue;
            seen[e->offset] = 1;
            n += !fault_done_has(&cp->done[p], e->offset);
        }
        free(seen);
    }
    return n;
}

/* The sum over every assignment in the logs ('C' lines) of the offsets of
 * that partition handled before it and not done in the state it was
 * assigned with: the most that (re)assignments can hand out again. */
static inline long fault_assignments_at_risk(const fault_log_t *log, const int64_t *log_end) {
    long n = 0;
    for (size_t a = 0; a < log->as_count; a++) {
        const fault_assignment_t *as = &log->as[a];
        int32_t p = as->partition;
        unsigned char *seen = calloc((size_t)log_end[p] + 1, 1);
        for (size_t i = 0; i < log->count; i++) {
            const fault_event_t *e = &log->ev[i];
            if (e->kind != 'H' || e->partition != p || e->t_us >= as->t_us ||
                e->offset >= log_end[p] || seen[e->offset])
                continue;
            seen[e->offset] = 1;
            n += !fault_done_has(&as->done, e->offset);
        }
        free(seen);
    }
    return n;
}

/* The verdict over all process logs and checkpoints: lost (offsets below
 * the log end never handled), duplicates, replays of acked (handles after a
 * checkpoint of offsets it had as done), and committed-but-never-acked
 * (offsets a checkpoint had as done with no 'A' line before it: a commit of
 * something the application did not ack, which would be a loss). */
typedef struct fault_verdict {
    long messages, lost, duplicates, committed_unacked;
    long replays_of_acked;         /* the sum of the next two */
    long replays_after_kill;       /* against the checkpoints after kills */
    long replays_after_assignment; /* against the states logged at assignments only */
} fault_verdict_t;

static inline fault_verdict_t fault_verdict(const fault_log_t *log, const fault_checkpoint_t *cps,
                                            size_t cp_count, int partitions,
                                            const int64_t *log_end) {
    fault_verdict_t v = {0};
    for (int p = 0; p < partitions; p++) {
        int64_t n = log_end[p];
        v.messages += n;
        long *handles = calloc((size_t)n + 1, sizeof *handles);
        int64_t *first_ack = malloc(((size_t)n + 1) * sizeof *first_ack);
        for (int64_t o = 0; o <= n; o++)
            first_ack[o] = INT64_MAX;
        for (size_t i = 0; i < log->count; i++) {
            const fault_event_t *e = &log->ev[i];
            if (e->partition != p || e->offset < 0 || e->offset >= n)
                continue;
            if (e->kind == 'H') {
                handles[e->offset]++;
                int after_kill = 0, after_assignment = 0;
                for (size_t c = 0; c < cp_count && !after_kill; c++)
                    after_kill =
                        e->t_us > cps[c].t_us && fault_done_has(&cps[c].done[p], e->offset);
                for (size_t a = 0; a < log->as_count && !after_kill && !after_assignment; a++)
                    after_assignment = log->as[a].partition == p && e->t_us > log->as[a].t_us &&
                                       fault_done_has(&log->as[a].done, e->offset);
                if (after_kill && getenv("KAFFE_FAULTS_VERBOSE")) {
                    for (size_t c = 0; c < cp_count; c++)
                        if (e->t_us > cps[c].t_us && fault_done_has(&cps[c].done[p], e->offset)) {
                            fprintf(stderr,
                                    "replay after kill %zu (at %lld, committed %lld): partition "
                                    "%d offset %lld at %lld\n",
                                    c, (long long)cps[c].t_us, (long long)cps[c].done[p].committed,
                                    (int)p, (long long)e->offset, (long long)e->t_us);
                            break;
                        }
                }
                if (after_assignment && getenv("KAFFE_FAULTS_VERBOSE"))
                    fprintf(stderr, "replay: partition %d offset %lld at %lld\n", (int)p,
                            (long long)e->offset, (long long)e->t_us);
                v.replays_after_kill += after_kill;
                v.replays_after_assignment += after_assignment;
                v.replays_of_acked += after_kill + after_assignment;
            } else if (e->kind == 'A' && e->t_us < first_ack[e->offset]) {
                first_ack[e->offset] = e->t_us;
            }
        }
        for (int64_t o = 0; o < n; o++) {
            if (handles[o] == 0)
                v.lost++;
            else
                v.duplicates += handles[o] - 1;
            int unacked = 0;
            for (size_t c = 0; c < cp_count && !unacked; c++)
                unacked = fault_done_has(&cps[c].done[p], o) && first_ack[o] > cps[c].t_us;
            for (size_t a = 0; a < log->as_count && !unacked; a++)
                unacked = log->as[a].partition == p && fault_done_has(&log->as[a].done, o) &&
                          first_ack[o] > log->as[a].t_us;
            v.committed_unacked += unacked;
        }
        free(handles);
        free(first_ack);
    }
    return v;
}

/* The scenario's random seed: KAFFE_FAULTS_SEED, or the time; printed, and
 * srand()ed. */
static inline unsigned fault_seed(const char *name) {
    const char *env = getenv("KAFFE_FAULTS_SEED");
    unsigned seed = env ? (unsigned)atoi(env) : (unsigned)time(NULL);
    fprintf(stderr, "faults_%s: seed %u (KAFFE_FAULTS_SEED to repeat)\n", name, seed);
    srand(seed);
    return seed;
}

/* Starts a tests/faults/fault_consumer process on the cluster at bootstraps,
 * logging to log (its usage line names the arguments). */
static inline void fault_consumer_start_at(subprocess_t *sp, const char *bootstraps,
                                           const char *topic, const char *group, const char *log,
                                           unsigned seed, long max_in_flight, long acks_per_sec) {
    char seed_s[16], in_flight_s[24], rate_s[24];
    snprintf(seed_s, sizeof seed_s, "%u", seed);
    snprintf(in_flight_s, sizeof in_flight_s, "%ld", max_in_flight);
    snprintf(rate_s, sizeof rate_s, "%ld", acks_per_sec);
    char *argv[] = {KAFFE_FAULT_CONSUMER_PATH,
                    (char *)bootstraps,
                    (char *)topic,
                    (char *)group,
                    (char *)log,
                    seed_s,
                    in_flight_s,
                    rate_s,
                    NULL};
    cr_assert_eq(subprocess_start(sp, argv, 0), 0, "starting %s", KAFFE_FAULT_CONSUMER_PATH);
}

#endif /* KAFFE_TESTS_SUPPORT_FAULT_CHECK_H */
