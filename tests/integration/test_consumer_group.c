/* Two consumers in one group: partitions split between them, one stops and
 * the other takes over, nothing is lost, and the late acks of the one that
 * lost partitions are refused. */
#include <criterion/criterion.h>

#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

enum { PARTITIONS = 4, BATCH = 400 };

MOCK_CLUSTER_SUITE(consumer_group, 1, 180, {"shared", PARTITIONS});

typedef struct owner {
    atomic_int owned[PARTITIONS]; /* 1 while assigned */
    atomic_int assigned_total;
} owner_t;

static void track_owner(kaffe_consumer_t *c, int assigned, const char *topic, int32_t partition,
                        void *opaque) {
    (void)c;
    (void)topic;
    owner_t *o = opaque;
    atomic_store(&o->owned[partition], assigned);
    if (assigned)
        atomic_fetch_add(&o->assigned_total, 1);
}

static int owned_count(owner_t *o) {
    int n = 0;
    for (int p = 0; p < PARTITIONS; p++)
        n += atomic_load(&o->owned[p]);
    return n;
}

/* A's acker: acks what A handles, except every message whose value index is
 * 7 mod 50 (held back, to be acked late). */
typedef struct acker {
    recorder_t *r;
    atomic_int stop;
    size_t next;
    kaffe_message_t *held[64];
    int32_t held_partition[64];
    int held_count;
} acker_t;

static void *acker_main(void *arg) {
    acker_t *a = arg;
    while (!atomic_load(&a->stop)) {
        pthread_mutex_lock(&a->r->lock);
        size_t end = a->r->count;
        pthread_mutex_unlock(&a->r->lock);
        for (; a->next < end; a->next++) {
            pthread_mutex_lock(&a->r->lock);
            seen_msg_t s = a->r->msgs[a->next];
            pthread_mutex_unlock(&a->r->lock);
            if (s.value_index % 50 == 7 && a->held_count < 64) {
                a->held_partition[a->held_count] = s.partition;
                a->held[a->held_count++] = s.m;
                continue;
            }
            kaffe_status_t st = kaffe_consumer_ack(a->r->consumer, s.m);
            /* OK, or REVOKED when the partition moved meanwhile. */
            cr_assert(st == KAFFE_OK || st == KAFFE_ERR_REVOKED, "ack: %s", kaffe_err_name(st));
        }
        clock_sleep_ms(1);
    }
    return NULL;
}

static void mark_seen(char *seen, recorder_t *r) {
    for (size_t i = 0; i < r->count; i++)
        if (r->msgs[i].value_index >= 0 && r->msgs[i].value_index < 3 * BATCH)
            seen[r->msgs[i].value_index] = 1;
}

Test(consumer_group, partitions_split_then_move_with_nothing_lost_and_late_acks_refused) {
    const char *b = mock_cluster_bootstraps(mc);
    cr_assert_eq(plain_produce(b, "shared", RD_KAFKA_PARTITION_UA, BATCH, 0, 16), BATCH);

    recorder_t ra, rb;
    recorder_init(&ra);
    recorder_init(&rb);
    ra.keep = 1;
    owner_t oa = {0}, ob = {0};
    char err[512];
    kaffe_consumer_t *a =
        kaffe_consumer_new(test_conf(b, "shared", "g-split", record_handler, &ra,
                                     "async_message_ack", "true", "drain_timeout_ms", "500", NULL),
                           err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    ra.consumer = a;
    kaffe_consumer_set_rebalance_cb(a, track_owner, &oa);
    acker_t acker = {.r = &ra};
    pthread_t th;
    pthread_create(&th, NULL, acker_main, &acker);
    cr_assert_eq(kaffe_consumer_start(a), KAFFE_OK);
    cr_assert(wait_handled(&ra, BATCH, 30000), "A handled %ld", recorder_handled(&ra));
    cr_assert_eq(owned_count(&oa), PARTITIONS);

    /* B joins: the partitions split. */
    kaffe_consumer_t *bc = kaffe_consumer_new(
        test_conf(b, "shared", "g-split", record_handler, &rb, NULL), err, sizeof err);
    cr_assert_not_null(bc, "%s", err);
    rb.consumer = bc;
    kaffe_consumer_set_rebalance_cb(bc, track_owner, &ob);
    cr_assert_eq(kaffe_consumer_start(bc), KAFFE_OK);
    int64_t deadline = clock_now_ms() + 60000;
    while ((owned_count(&ob) == 0 || owned_count(&oa) + owned_count(&ob) != PARTITIONS) &&
           clock_now_ms() < deadline)
        clock_sleep_ms(10);
    cr_assert_gt(owned_count(&ob), 0, "B got no partition");
    cr_assert_gt(owned_count(&oa), 0, "A kept no partition");
    cr_assert_eq(owned_count(&oa) + owned_count(&ob), PARTITIONS);

    /* More data while both run. */
    cr_assert_eq(plain_produce(b, "shared", RD_KAFKA_PARTITION_UA, BATCH, BATCH, 16), BATCH);

    /* A's held messages from partitions it lost: refused. */
    atomic_store(&acker.stop, 1);
    pthread_join(th, NULL);
    int revoked = 0;
    kaffe_message_t *still_held[64];
    int still = 0;
    for (int i = 0; i < acker.held_count; i++) {
        if (atomic_load(&oa.owned[acker.held_partition[i]])) {
            still_held[still++] = acker.held[i];
            continue;
        }
        kaffe_status_t st = kaffe_consumer_ack(a, acker.held[i]);
        cr_assert_eq(st, KAFFE_ERR_REVOKED, "late ack of a moved partition: %s",
                     kaffe_err_name(st));
        revoked++;
    }
    cr_assert_gt(revoked, 0, "no held message was in a moved partition");

    /* A stops; B takes everything over. A's remaining held acks: STOPPED. */
    cr_assert_eq(kaffe_consumer_stop(a), KAFFE_OK);
    for (int i = 0; i < still; i++)
        cr_assert_eq(kaffe_consumer_ack(a, still_held[i]), KAFFE_ERR_STOPPED);
    deadline = clock_now_ms() + 60000;
    while (owned_count(&ob) != PARTITIONS && clock_now_ms() < deadline)
        clock_sleep_ms(10);
    cr_assert_eq(owned_count(&ob), PARTITIONS, "B owns %d partitions", owned_count(&ob));
    cr_assert_eq(plain_produce(b, "shared", RD_KAFKA_PARTITION_UA, BATCH, 2 * BATCH, 16), BATCH);

    /* Nothing lost: every value handled by A (and acked) or by B. Held
     * messages A never acked were redelivered to B. */
    char *seen = calloc(3 * BATCH, 1);
    deadline = clock_now_ms() + 60000;
    for (;;) {
        memset(seen, 0, 3 * BATCH);
        pthread_mutex_lock(&rb.lock);
        mark_seen(seen, &rb);
        pthread_mutex_unlock(&rb.lock);
        for (size_t i = 0; i < ra.count; i++) {
            long v = ra.msgs[i].value_index;
            if (v % 50 != 7) /* acked by A (or revoked, then redelivered to B) */
                seen[v] |= 2;
        }
        int missing = 0;
        for (int v = 0; v < 3 * BATCH; v++)
            missing += seen[v] == 0 || (seen[v] == 2 && v % 50 == 7);
        if (missing == 0)
            break;
        cr_assert(clock_now_ms() < deadline, "%d values never handled", missing);
        clock_sleep_ms(20);
    }
    /* Held (never acked) messages must have reached B. */
    for (int v = 7; v < 3 * BATCH; v += 50)
        cr_assert(seen[v] & 1, "held value-%d never redelivered to B", v);
    free(seen);

    cr_assert_eq(kaffe_consumer_stop(bc), KAFFE_OK);
    for (int p = 0; p < PARTITIONS; p++)
        cr_assert_eq(plain_committed(b, "g-split", "shared", p, NULL),
                     plain_log_end(b, "shared", p), "partition %d", p);
    kaffe_consumer_destroy(a);
    kaffe_consumer_destroy(bc);
    recorder_free(&ra);
    recorder_free(&rb);
}
