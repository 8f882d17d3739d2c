/* Fault suite, SIGKILL: a consumer process (tests/faults/fault_consumer.c,
 * async acks in random order) is killed at random points of its run,
 * several rounds, then restarted to the end. The embedded cluster lives in
 * this test process, so it outlives the consumers.
 *
 * After each kill the committed offset and metadata are read with a plain
 * client (the checkpoint). Checked at the end, from the processes' logs:
 *   - lost == 0: every offset below the log end was handled;
 *   - replays of acked == 0: no offset a checkpoint had as done (below the
 *     committed offset, or acked in its metadata) is handled after it;
 *   - committed-but-never-acked == 0: a checkpoint never has as done an
 *     offset the application had not acked (that would be a loss);
 *   - duplicates <= the sum over the assignments (each restart's) of the
 *     offsets handled before and not done in the committed state the
 *     partition was assigned with (in flight, or acked within the last
 *     commit interval before the kill): a restart replays nothing else; the
 *     consumer process logs that state at each assignment ('C' lines);
 *   - the final process stops cleanly (exit 0) once the committed offsets
 *     reach the log end. */
#include <signal.h>

#include "fault_helpers.h"

static mock_cluster_t *mc;
static char dir[64];

static void start_cluster(void) {
    mc = fault_procs_setup("kill", dir, sizeof dir);
}

static void stop_cluster(void) {
    fault_procs_teardown(mc, "kill", dir);
}

TestSuite(faults_kill, .init = start_cluster, .fini = stop_cluster, .timeout = 200);

enum { PARTITIONS = 4, MAX_ROUNDS = 8 };

/* Waits until log has at least n handles; returns the time the first one
 * was logged (for recovery), asserting it comes within timeout_ms. */
static void wait_log_handles(const char *log, long n, int timeout_ms) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    while (fault_log_handles(log) < n) {
        cr_assert(clock_now_ms() < deadline, "%s: fewer than %ld handles", log, n);
        clock_sleep_ms(20);
    }
}

Test(faults_kill, sigkill_during_async_out_of_order_acks_then_restart) {
    const char *b = mock_cluster_bootstraps(mc);
    const char *topic = "k-kill", *group = "g-k-kill";
    long pp = fault_scaled(5000, 1000);
    int kills = 4;
    cr_assert_eq(mock_cluster_create_topic(mc, topic, PARTITIONS), 0);
    int64_t log_end[FAULT_MAX_PARTITIONS];
    for (int p = 0; p < PARTITIONS; p++) {
        cr_assert_eq(plain_produce(b, topic, p, (size_t)pp, (size_t)(p * pp), 0), (size_t)pp);
        log_end[p] = plain_log_end(b, topic, p);
        cr_assert_eq(log_end[p], pp);
    }
    unsigned seed = fault_seed("kill");

    fault_checkpoint_t cps[MAX_ROUNDS];
    char logs[MAX_ROUNDS][128];
    long recovery_ms = 0;
    int rounds = kills + 1;
    for (int round = 0; round < rounds; round++) {
        snprintf(logs[round], sizeof logs[round], "%s/round-%d.log", dir, round);
        subprocess_t sp;
        int64_t started_us = clock_now_us();
        /* Paced so that the whole topic takes ~5 s of acking: the kills
         * (50..650 ms into each round) all land mid-run. */
        fault_consumer_start(&sp, mc, topic, group, logs[round], seed + (unsigned)round, 1000,
                             pp * PARTITIONS / 5);
        /* Recovery: from the restart to the first message handled. */
        wait_log_handles(logs[round], 1, 60000);
        int64_t first = fault_log_first_handle_after(logs[round], started_us);
        fprintf(stderr, "faults_kill: round %d: first handle after %lld ms\n", round,
                (long long)(first - started_us) / 1000);
        if (round > 0 && first > 0 && (first - started_us) / 1000 > recovery_ms)
            recovery_ms = (long)((first - started_us) / 1000);
        if (round < kills) {
            /* Kill at a random point 50..650 ms into the handling. */
            clock_sleep_ms(50 + rand() % 600);
            int rc = subprocess_stop(&sp, SIGKILL, 10000);
            cr_assert_eq(rc, 128 + SIGKILL, "round %d: exit %d", round, rc);
            fault_checkpoint_take(&cps[round], b, group, topic, PARTITIONS);
            fprintf(
                stderr,
                "faults_kill: round %d: killed after %ld handles; committed %lld %lld %lld %lld\n",
                round, fault_log_handles(logs[round]), (long long)cps[round].done[0].committed,
                (long long)cps[round].done[1].committed, (long long)cps[round].done[2].committed,
                (long long)cps[round].done[3].committed);
        } else {
            cr_assert(fault_wait_committed_end(b, group, topic, PARTITIONS, log_end, 90000),
                      "the committed offsets never reached the log end");
            int rc = subprocess_stop(&sp, SIGTERM, 20000);
            cr_assert_eq(rc, 0, "the last consumer exited with %d", rc);
        }
    }
    fault_log_t log = {0};
    for (int round = 0; round < rounds; round++)
        fault_log_read(&log, logs[round]);
    long kill_risk = 0;
    for (int k = 0; k < kills; k++) {
        long at_risk = fault_checkpoint_at_risk(&cps[k], &log, PARTITIONS, log_end);
        fprintf(stderr, "faults_kill: kill %d: %ld handled and not committed as done\n", k,
                at_risk);
        kill_risk += at_risk;
    }
    /* Every re-handle follows an assignment: the bound is what each
     * assignment's committed state did not have as done. */
    long bound = fault_assignments_at_risk(&log, log_end);
    fprintf(stderr, "faults_kill: at risk: %ld at the kills, %ld at the assignments\n", kill_risk,
            bound);
    fault_verdict_t v = fault_verdict(&log, cps, (size_t)kills, PARTITIONS, log_end);
    cr_assert_eq(v.lost, 0, "%ld messages never handled", v.lost);
    cr_assert_eq(v.replays_of_acked, 0, "%ld handles of offsets committed as acked",
                 v.replays_of_acked);
    cr_assert_eq(v.committed_unacked, 0, "%ld offsets committed as done without an ack",
                 v.committed_unacked);
    cr_assert_leq(v.duplicates, bound, "%ld duplicates, more than the %ld at risk at the kills",
                  v.duplicates, bound);
    /* The kills did land mid-run with unacked work above the watermark. */
    cr_assert_gt(kill_risk, 0, "no kill caught messages in flight");
    char scenario[128];
    snprintf(scenario, sizeof scenario,
             "SIGKILL x%d at random points (async, out-of-order acks), restart", kills);
    fault_result_t res = {.scenario = scenario,
                          .messages = v.messages,
                          .lost = v.lost,
                          .duplicates = v.duplicates,
                          .replays_of_acked = v.replays_of_acked,
                          .recovery_ms = recovery_ms,
                          .dup_bound = bound,
                          .bound_text = "handled, not committed as done at a reassignment"};
    fault_result_record(&res);
    for (int k = 0; k < kills; k++)
        for (int p = 0; p < PARTITIONS; p++)
            fault_done_free(&cps[k].done[p]);
    fault_log_free(&log);
}
