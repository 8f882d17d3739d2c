/* Per-partition dispatcher state and the RCU assignment table. See
 * partition.h for the thread contract. */
#include "partition/partition.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "common/clock.h"
#include "common/tsan.h"

typedef struct parked {
    void *msg;
    int64_t offset;
    size_t bytes;
} parked_t;

/* Key order: the lane a key's messages went to. A key whose last message
 * there has not run yet must stay on that lane (per-key order); once it ran,
 * the key may move to any lane. hash 0: an empty slot. */
typedef struct key_slot {
    uint64_t hash;     /* salted hash of the key, never 0 */
    uint32_t lane;     /* index into lanes */
    uint64_t last_seq; /* lane_pushed[lane] after the key's last message */
} key_slot_t;

struct partition {
    struct cds_lfht_node node; /* table link */
    partition_table_t *table;  /* its table (for the table-wide counters) */
    struct rcu_head rcu;       /* deferred free */
    unsigned long hash;
    char *topic;
    int32_t partition;
    uint64_t generation;

    /* Poll thread only (created on the first message when the group has no
     * committed offset). Read by settlers of a delivered message: the
     * message's hand-off through the pool orders this store before them. */
    ack_tracker_t *tracker;
    int64_t committed_offset;
    size_t window;
    ack_snapshot_t skip; /* acked above the committed offset (metadata) */
    bool has_skip;

    int64_t max_in_flight;
    int64_t max_in_flight_bytes;
    bool paused;       /* dispatch stopped; poll thread only */
    bool fetch_paused; /* rd_kafka_pause_partitions in force; poll thread only */
    size_t parked_bytes;
    parked_t *parked; /* ring, poll thread only */
    size_t parked_head, parked_count, parked_cap;

    /* Lanes (poll thread only). Partition order: one, made at assignment.
     * Key order: made on demand, up to lane_cap; lane_pushed[i] counts the
     * messages partition_lane gave lane i (its caller pushes each at once). */
    pool_t *pool;
    pool_lane_t **lanes;
    uint64_t *lane_pushed;
    size_t lane_count, lane_cap; /* made so far; the most (0: unordered) */
    size_t lane_cursor;          /* where the next search for an idle lane starts */
    uint64_t salt;
    bool fixed_key_lanes;  /* a key's lane is its hash's (every lane made at assignment) */
    key_slot_t *keys;      /* key order: open addressing, linear probing */
    size_t key_cap;        /* power of two, or 0 */
    size_t key_used;       /* slots taken (live or done) */
    uint64_t overflow_seq; /* lanes[0]'s count after its last key that found no room; 0: none */

    int64_t last_watermark; /* poll thread: last commit */
    uint64_t last_metadata_hash;
    bool committed_once;

    /* Written by the poll thread (increment) and settlers (decrement). */
    _Alignas(64) atomic_llong in_flight;
    atomic_llong in_flight_bytes;
    /* Settles in progress, and the closing flag they check (Dekker pair,
     * seq_cst both sides: see partition_settle / partition_close_acks). */
    _Alignas(64) atomic_int settlers;
    atomic_bool closing;
    atomic_llong failed_offset; /* lowest failed offset, or -1 */

    /* Stats, published by the poll thread for readers on any thread
     * (partition_stats). Each is an independent figure: relaxed stores and
     * loads, no ordering with anything else. */
    _Alignas(64) _Atomic(ack_tracker_t *) stat_tracker; /* release/acquire: the
                                                           tracker's init before readers */
    atomic_llong stat_committed;                        /* last committed watermark, or -1 */
    atomic_llong stat_metadata_bytes;                   /* metadata size of the last commit */
    atomic_int stat_paused; /* bit 0: dispatch paused, bit 1: fetch paused */
    /* Dispatch-time samples (offset, monotonic ms): a ring written by the
     * poll thread only. Readers may see an entry mid-update (offset of one
     * sample, time of the next): the time is then newer, the age slightly
     * smaller; never a crash or an unbounded value. */
    struct {
        atomic_llong offset;
        atomic_llong time_ms;
    } samples[PARTITION_SAMPLES];
    atomic_uint sample_next;    /* next ring slot (relaxed) */
    int64_t last_sample_offset; /* poll thread only */
    int64_t sample_stride;      /* poll thread only: window / 64 */
};

/* Publishes the paused flags for stats. Poll thread, after changing them. */
static void publish_paused(partition_t *p) {
    atomic_store_explicit(&p->stat_paused, (p->paused ? 1 : 0) | (p->fetch_paused ? 2 : 0),
                          memory_order_relaxed);
}

/* Publishes the tracker pointer (created lazily by the poll thread).
 * release: pairs with the acquire in partition_stats; the tracker's
 * initialisation is visible to a reader that sees the pointer. */
static void publish_tracker(partition_t *p) {
    atomic_store_explicit(&p->stat_tracker, p->tracker, memory_order_release);
}

struct partition_table {
    struct cds_lfht *ht;
    uint64_t version; /* poll thread only: bumped by add and remove */
    /* Table-wide message counters (partition_table_counters). Independent
     * monotonic counters: relaxed, ordering nothing. The first two have a
     * single writer (the poll thread, in partition_admit): a load and a
     * store, no read-modify-write. */
    _Alignas(64) atomic_ullong admitted; /* PARTITION_DISPATCH results */
    atomic_ullong already_acked;         /* PARTITION_SKIP results */
    _Alignas(64) atomic_ullong acked;    /* settles with PARTITION_ACK that returned OK */
};

static void bump_single_writer(atomic_ullong *counter) {
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* --- RCU thread registration ------------------------------------------- */

static pthread_key_t registration_key;
static pthread_once_t registration_once = PTHREAD_ONCE_INIT;
static __thread bool thread_registered;

static void unregister_at_exit(void *unused) {
    (void)unused;
    urcu_memb_unregister_thread();
}

static void create_registration_key(void) {
    pthread_key_create(&registration_key, unregister_at_exit);
}

static void ensure_registered(void) {
    if (thread_registered)
        return;
    pthread_once(&registration_once, create_registration_key);
    urcu_memb_register_thread();
    thread_registered = true;
    /* A non-NULL value makes the key's destructor run at thread exit. */
    pthread_setspecific(registration_key, (void *)1);
}

void partition_read_lock(void) {
    ensure_registered();
    urcu_memb_read_lock();
}

void partition_read_unlock(void) {
    urcu_memb_read_unlock();
}

/* --- hashing ------------------------------------------------------------ */

static uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(uint64_t seed, const void *data, size_t len) {
    const unsigned char *b = data;
    uint64_t h = UINT64_C(0xcbf29ce484222325) ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return mix64(h);
}

static unsigned long topic_partition_hash(const char *topic, int32_t partition) {
    return (unsigned long)hash_bytes((uint64_t)(uint32_t)partition, topic, strlen(topic));
}

typedef struct lookup_key {
    const char *topic;
    int32_t partition;
} lookup_key_t;

static int match_node(struct cds_lfht_node *node, const void *key) {
    const partition_t *p = caa_container_of(node, partition_t, node);
    const lookup_key_t *k = key;
    return p->partition == k->partition && strcmp(p->topic, k->topic) == 0;
}

/* --- table -------------------------------------------------------------- */

partition_table_t *partition_table_new(void) {
    partition_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ht = cds_lfht_new_flavor(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                                &urcu_memb_flavor, NULL);
    if (!t->ht) {
        free(t);
        return NULL;
    }
    return t;
}

void partition_table_destroy(partition_table_t *t) {
    if (!t)
        return;
    ensure_registered();
    urcu_memb_barrier(); /* every call_rcu free has run */
    cds_lfht_destroy(t->ht, NULL);
    free(t);
}

static void free_partition(partition_t *p) {
    ack_tracker_destroy(p->tracker);
    if (p->has_skip)
        ack_snapshot_free(&p->skip);
    free(p->parked);
    free(p->lanes);
    free(p->lane_pushed);
    free(p->keys);
    free(p->topic);
    free(p);
}

static void free_partition_rcu(struct rcu_head *head) {
    partition_t *p = caa_container_of(head, partition_t, rcu);
    /* Pairs with the TSAN_RELEASE of every settler: the grace period (which
     * TSan cannot see) orders their reads before this free. */
    TSAN_ACQUIRE(p);
    free_partition(p);
}

partition_t *partition_table_add(partition_table_t *t, const partition_params_t *params) {
    partition_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->topic = strdup(params->topic);
    p->table = t;
    p->partition = params->partition;
    p->generation = params->generation;
    p->hash = topic_partition_hash(params->topic, params->partition);
    p->committed_offset = params->committed_offset;
    p->window = params->window;
    p->max_in_flight = params->max_in_flight;
    p->max_in_flight_bytes = params->max_in_flight_bytes;
    p->salt = params->salt;
    atomic_init(&p->in_flight, 0);
    atomic_init(&p->in_flight_bytes, 0);
    atomic_init(&p->settlers, 0);
    atomic_init(&p->closing, false);
    atomic_init(&p->failed_offset, -1);
    atomic_init(&p->stat_tracker, NULL);
    atomic_init(&p->stat_committed, params->committed_offset >= 0 ? params->committed_offset : -1);
    atomic_init(&p->stat_metadata_bytes, (long long)(params->metadata ? params->metadata_len : 0));
    atomic_init(&p->stat_paused, 0);
    for (size_t i = 0; i < PARTITION_SAMPLES; i++) {
        atomic_init(&p->samples[i].offset, -1);
        atomic_init(&p->samples[i].time_ms, 0);
    }
    atomic_init(&p->sample_next, 0);
    p->last_sample_offset = -1;
    p->sample_stride = (int64_t)(params->window / 64) > 0 ? (int64_t)(params->window / 64) : 1;
    if (!p->topic)
        goto fail;
    if (params->committed_offset >= 0) {
        p->tracker = ack_tracker_new(params->committed_offset, params->window);
        if (!p->tracker)
            goto fail;
        publish_tracker(p);
        if (params->metadata && params->metadata_len > 0 &&
            ack_metadata_decode(params->metadata, params->metadata_len, params->committed_offset,
                                &p->skip) == KAFFE_OK)
            p->has_skip = true;
        /* What the group holds already is not committed again unchanged. */
        p->committed_once = true;
        p->last_watermark = params->committed_offset;
        p->last_metadata_hash =
            params->metadata ? hash_bytes(0, params->metadata, params->metadata_len) : 0;
    }
    if (params->lane_count > 0) {
        p->pool = params->pool;
        p->lane_cap = params->lane_count;
        p->lanes = calloc(p->lane_cap, sizeof *p->lanes);
        p->lane_pushed = calloc(p->lane_cap, sizeof *p->lane_pushed);
        if (!p->lanes || !p->lane_pushed)
            goto fail;
        p->fixed_key_lanes = params->fixed_key_lanes;
        for (size_t n = p->fixed_key_lanes ? p->lane_cap : 1; p->lane_count < n; p->lane_count++) {
            p->lanes[p->lane_count] = pool_lane_new(params->pool);
            if (!p->lanes[p->lane_count])
                goto fail;
        }
    }

    partition_read_lock();
    partition_t *old = partition_table_find(t, params->topic, params->partition);
    if (old)
        partition_table_remove(t, old);
    cds_lfht_node_init(&p->node);
    /* cds_lfht_add publishes p with rcu_assign_pointer (a release store in
     * liburcu, which TSan cannot see): state it for readers that reach p
     * through the table only (partition_table_visit's TSAN_ACQUIRE). */
    TSAN_RELEASE(&p->node);
    cds_lfht_add(t->ht, p->hash, &p->node);
    t->version++;
    partition_read_unlock();
    return p;
fail:
    for (size_t i = 0; i < p->lane_count; i++)
        pool_lane_release(p->lanes[i]);
    free_partition(p);
    return NULL;
}

partition_t *partition_table_find(partition_table_t *t, const char *topic, int32_t partition) {
    lookup_key_t key = {topic, partition};
    struct cds_lfht_iter iter;
    partition_read_lock();
    cds_lfht_lookup(t->ht, topic_partition_hash(topic, partition), match_node, &key, &iter);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&iter);
    partition_read_unlock();
    return node ? caa_container_of(node, partition_t, node) : NULL;
}

uint64_t partition_table_version(const partition_table_t *t) {
    return t->version;
}

void partition_table_remove(partition_table_t *t, partition_t *p) {
    partition_read_lock();
    cds_lfht_del(t->ht, &p->node);
    partition_read_unlock();
    t->version++;
    for (size_t i = 0; i < p->lane_count; i++)
        pool_lane_release(p->lanes[i]);
    p->lane_count = 0;
    /* call_rcu hands p to liburcu's callback thread through its own queue,
     * which TSan cannot see; pairs with the acquire in free_partition_rcu. */
    TSAN_RELEASE(p);
    urcu_memb_call_rcu(&p->rcu, free_partition_rcu);
}

partition_t **partition_table_collect(partition_table_t *t, size_t *count) {
    size_t cap = 16, n = 0;
    partition_t **out = malloc(cap * sizeof *out);
    struct cds_lfht_iter iter;
    partition_t *p;
    partition_read_lock();
    cds_lfht_for_each_entry(t->ht, &iter, p, node) {
        if (n == cap) {
            cap *= 2;
            partition_t **grown = out ? realloc(out, cap * sizeof *out) : NULL;
            if (!grown)
                break;
            out = grown;
        }
        if (out)
            out[n++] = p;
    }
    partition_read_unlock();
    *count = n;
    return out;
}

size_t partition_table_visit(partition_table_t *t, void (*fn)(const partition_t *p, void *arg),
                             void *arg) {
    size_t n = 0;
    struct cds_lfht_iter iter;
    partition_t *p;
    partition_read_lock();
    cds_lfht_for_each_entry(t->ht, &iter, p, node) {
        TSAN_ACQUIRE(&p->node); /* pairs with the TSAN_RELEASE before cds_lfht_add */
        fn(p, arg);
        /* Pairs with the TSAN_ACQUIRE before the deferred free: the grace
         * period (invisible to TSan) orders these reads before it. */
        TSAN_RELEASE(p);
        n++;
    }
    partition_read_unlock();
    return n;
}

/* --- accessors ---------------------------------------------------------- */

const char *partition_topic(const partition_t *p) {
    return p->topic;
}

int32_t partition_id(const partition_t *p) {
    return p->partition;
}

uint64_t partition_generation(const partition_t *p) {
    return p->generation;
}

bool partition_is_paused(const partition_t *p) {
    return p->paused;
}

bool partition_park_full(const partition_t *p) {
    return (int64_t)p->parked_count >= p->max_in_flight ||
           (int64_t)p->parked_bytes >= p->max_in_flight_bytes;
}

bool partition_park_below_half(const partition_t *p) {
    return (int64_t)p->parked_count * 2 < p->max_in_flight &&
           (int64_t)p->parked_bytes * 2 < p->max_in_flight_bytes;
}

bool partition_fetch_paused(const partition_t *p) {
    return p->fetch_paused;
}

void partition_set_fetch_paused(partition_t *p, bool paused) {
    p->fetch_paused = paused;
    publish_paused(p);
}

int64_t partition_failed_offset(const partition_t *p) {
    return atomic_load_explicit(&p->failed_offset, memory_order_acquire);
}

int64_t partition_in_flight(const partition_t *p, int64_t *bytes) {
    /* acquire: pairs with the release decrements in partition_settle, so a
     * count that reached zero makes every settled ack visible. */
    if (bytes)
        *bytes = atomic_load_explicit(&p->in_flight_bytes, memory_order_acquire);
    return atomic_load_explicit(&p->in_flight, memory_order_acquire);
}

/* --- dispatch ----------------------------------------------------------- */

partition_admit_result_t partition_admit(partition_t *p, int64_t offset, size_t bytes,
                                         bool from_parked, bool *pause_now) {
    *pause_now = false;
    if (!from_parked && (p->paused || p->parked_count > 0))
        return PARTITION_PARK;
    if (!p->tracker) {
        p->tracker = ack_tracker_new(offset, p->window);
        if (!p->tracker) {
            p->paused = true;
            publish_paused(p);
            *pause_now = true;
            return PARTITION_PARK;
        }
        publish_tracker(p);
    }
    kaffe_status_t st = ack_tracker_track(p->tracker, offset);
    if (st == KAFFE_ERR_WINDOW_FULL) {
        ack_tracker_advance(p->tracker);
        /* A gap wider than the window (retention, compaction) with nothing
         * in flight: start the window at this offset. */
        if (ack_tracker_watermark(p->tracker) == ack_tracker_tracked_end(p->tracker) &&
            partition_in_flight(p, NULL) == 0) {
            ack_tracker_reset(p->tracker, offset);
            st = ack_tracker_track(p->tracker, offset);
        }
    }
    if (st == KAFFE_ERR_WINDOW_FULL) {
        p->paused = true;
        publish_paused(p);
        *pause_now = true;
        return PARTITION_PARK;
    }
    if (st != KAFFE_OK)
        return PARTITION_DROP;
    if (p->has_skip) {
        if (offset < p->skip.end) {
            if (ack_snapshot_is_done(&p->skip, offset)) {
                ack_tracker_ack(p->tracker, offset);
                bump_single_writer(&p->table->already_acked);
                return PARTITION_SKIP;
            }
        } else {
            ack_snapshot_free(&p->skip);
            p->has_skip = false;
        }
    }
    /* Dispatch-time sample for the oldest-unacked age (stats): when nothing
     * was in flight (exact for this message), or every sample_stride
     * offsets (so the ring always covers the ack window). */
    int64_t before = atomic_load_explicit(&p->in_flight, memory_order_relaxed);
    if (before == 0 || p->last_sample_offset < 0 ||
        offset >= p->last_sample_offset + p->sample_stride) {
        /* Also keeps the watermark stats read recent (otherwise only
         * commits and resumes advance it): amortised O(1) per offset. */
        ack_tracker_advance(p->tracker);
        unsigned slot = atomic_load_explicit(&p->sample_next, memory_order_relaxed);
        atomic_store_explicit(&p->samples[slot].time_ms, clock_now_ms(), memory_order_relaxed);
        atomic_store_explicit(&p->samples[slot].offset, offset, memory_order_relaxed);
        atomic_store_explicit(&p->sample_next, (slot + 1) % PARTITION_SAMPLES,
                              memory_order_relaxed);
        p->last_sample_offset = offset;
    }
    /* relaxed: a plain counter; the hand-off of the message through the pool
     * orders this increment before the settle that decrements it. */
    int64_t n = atomic_fetch_add_explicit(&p->in_flight, 1, memory_order_relaxed) + 1;
    int64_t b =
        atomic_fetch_add_explicit(&p->in_flight_bytes, (long long)bytes, memory_order_relaxed) +
        (int64_t)bytes;
    /* Stop dispatching; fetching goes on into the park list until that is
     * as full as the in-flight limits (partition_park_full): the parked
     * messages then feed the workers while a resumed fetch restarts, which
     * takes librdkafka a few hundred milliseconds. */
    if (n >= p->max_in_flight || b >= p->max_in_flight_bytes) {
        p->paused = true;
        publish_paused(p);
    }
    bump_single_writer(&p->table->admitted);
    return PARTITION_DISPATCH;
}

/* Whether every message partition_lane gave lane i up to seq has run. The
 * lane's pending count also holds items pushed by others (a retry), which
 * only makes the estimate of what ran lower: safe. */
static bool lane_ran_up_to(const partition_t *p, size_t i, uint64_t seq) {
    long pending = pool_lane_pending(p->lanes[i]);
    if (pending <= 0)
        return true;
    return (uint64_t)pending <= p->lane_pushed[i] && p->lane_pushed[i] - (uint64_t)pending >= seq;
}

/* A lane for a key free to go anywhere: an idle lane (a few are looked at),
 * else a new one while under lane_cap, else the one the hash picks (shared:
 * still in order, only no longer in parallel with the keys it shares). */
static size_t free_lane(partition_t *p, uint64_t hash, const key_slot_t *was) {
    if (was && pool_lane_pending(p->lanes[was->lane]) <= 0)
        return was->lane;
    for (size_t probe = 0; probe < 4 && probe < p->lane_count; probe++) {
        size_t i = p->lane_cursor++ % p->lane_count;
        if (pool_lane_pending(p->lanes[i]) <= 0)
            return i;
    }
    if (p->lane_count < p->lane_cap) {
        pool_lane_t *lane = pool_lane_new(p->pool);
        if (lane) {
            p->lanes[p->lane_count] = lane;
            return p->lane_count++;
        }
    }
    return was ? was->lane : (size_t)(hash % p->lane_count);
}

static key_slot_t *key_slot_find(partition_t *p, uint64_t hash) {
    size_t mask = p->key_cap - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask)
        if (p->keys[i].hash == hash || p->keys[i].hash == 0)
            return &p->keys[i];
}

/* Makes room for one more key: rebuilds the table without the keys whose
 * messages have all run, at a size four times the keys still in flight.
 * false on OOM (the table is unchanged). */
static bool key_table_make_room(partition_t *p) {
    if (p->key_cap && (p->key_used + 1) * 4 <= p->key_cap * 3)
        return true;
    size_t live = 0;
    for (size_t i = 0; i < p->key_cap; i++)
        if (p->keys[i].hash && !lane_ran_up_to(p, p->keys[i].lane, p->keys[i].last_seq))
            live++;
    size_t cap = 64;
    while (cap < (live + 1) * 4)
        cap <<= 1;
    key_slot_t *old = p->keys;
    size_t old_cap = p->key_cap;
    p->keys = calloc(cap, sizeof *p->keys);
    if (!p->keys) {
        p->keys = old;
        return false;
    }
    p->key_cap = cap;
    p->key_used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].hash && !lane_ran_up_to(p, old[i].lane, old[i].last_seq)) {
            *key_slot_find(p, old[i].hash) = old[i];
            p->key_used++;
        }
    free(old);
    return true;
}

pool_lane_t *partition_lane(partition_t *p, const void *key, size_t key_len) {
    if (p->lane_cap == 0)
        return NULL;
    if (p->lane_cap == 1)
        return p->lanes[0];
    if (p->fixed_key_lanes) {
        size_t i = key ? (size_t)hash_bytes(p->salt, key, key_len) : p->lane_cursor++;
        return p->lanes[i % p->lane_count];
    }
    if (!key) {
        size_t i = free_lane(p, p->lane_cursor, NULL);
        p->lane_pushed[i]++;
        return p->lanes[i];
    }
    uint64_t hash = hash_bytes(p->salt, key, key_len);
    hash += !hash;
    key_slot_t *slot = p->key_cap ? key_slot_find(p, hash) : NULL;
    if (!slot || slot->hash == 0) {
        /* A key not in the table has nothing in flight (the table drops only
         * keys whose messages all ran), except on the overflow lane, where
         * keys go that found no room (OOM): while that lane has not run its
         * last such message, every key not in the table follows it there. */
        if ((p->overflow_seq && !lane_ran_up_to(p, 0, p->overflow_seq)) ||
            !key_table_make_room(p)) {
            p->overflow_seq = ++p->lane_pushed[0];
            return p->lanes[0];
        }
        p->overflow_seq = 0;
        slot = key_slot_find(p, hash);
        p->key_used++;
        slot->hash = hash;
        slot->lane = (uint32_t)free_lane(p, hash, NULL);
    } else if (slot->last_seq != p->lane_pushed[slot->lane] &&
               lane_ran_up_to(p, slot->lane, slot->last_seq)) {
        /* Only a key whose lane took other keys' messages after its last one
         * can gain by moving; when its message is still the lane's last, the
         * lane is either busy with it (stay) or idle (free_lane would give
         * it back): no need to read the workers' pending count. */
        slot->lane = (uint32_t)free_lane(p, hash, slot);
    }
    slot->last_seq = ++p->lane_pushed[slot->lane];
    return p->lanes[slot->lane];
}

bool partition_park(partition_t *p, void *msg, int64_t offset, size_t bytes) {
    if (p->parked_count == p->parked_cap) {
        size_t cap = p->parked_cap ? p->parked_cap * 2 : 64;
        parked_t *ring = malloc(cap * sizeof *ring);
        if (!ring)
            return false;
        for (size_t i = 0; i < p->parked_count; i++)
            ring[i] = p->parked[(p->parked_head + i) % p->parked_cap];
        free(p->parked);
        p->parked = ring;
        p->parked_cap = cap;
        p->parked_head = 0;
    }
    p->parked[(p->parked_head + p->parked_count) % p->parked_cap] = (parked_t){msg, offset, bytes};
    p->parked_count++;
    p->parked_bytes += bytes;
    return true;
}

void *partition_parked_peek(const partition_t *p, int64_t *offset, size_t *bytes) {
    if (p->parked_count == 0)
        return NULL;
    const parked_t *e = &p->parked[p->parked_head];
    if (offset)
        *offset = e->offset;
    if (bytes)
        *bytes = e->bytes;
    return e->msg;
}

void partition_parked_pop(partition_t *p) {
    if (p->parked_count == 0)
        return;
    p->parked_bytes -= p->parked[p->parked_head].bytes;
    p->parked_head = (p->parked_head + 1) % p->parked_cap;
    p->parked_count--;
}

bool partition_try_unpause(partition_t *p) {
    if (!p->paused)
        return false;
    int64_t bytes;
    int64_t n = partition_in_flight(p, &bytes);
    if (n * 2 >= p->max_in_flight && n > 0)
        return false;
    if (bytes * 2 >= p->max_in_flight_bytes && bytes > 0)
        return false;
    if (p->tracker)
        ack_tracker_advance(p->tracker);
    p->paused = false;
    publish_paused(p);
    return true;
}

/* --- settle (any thread) ------------------------------------------------ */

static void lower_failed_offset(partition_t *p, int64_t offset) {
    /* long long, the atomic's type: int64_t is long on LP64, and clang
     * rejects a long * as the compare-exchange's expected pointer. */
    long long cur = atomic_load_explicit(&p->failed_offset, memory_order_relaxed);
    /* release: the mark is visible to the poll thread before the in-flight
     * decrement that lets it commit (acquire there). */
    while ((cur < 0 || offset < cur) &&
           !atomic_compare_exchange_weak_explicit(&p->failed_offset, &cur, offset,
                                                  memory_order_release, memory_order_relaxed))
        ;
}

kaffe_status_t partition_settle(partition_table_t *t, const char *topic, int32_t partition,
                                uint64_t generation, int64_t offset, size_t bytes,
                                partition_settle_mode_t mode) {
    kaffe_status_t st = KAFFE_OK;
    partition_read_lock();
    partition_t *p = partition_table_find(t, topic, partition);
    if (!p || p->generation != generation) {
        partition_read_unlock();
        return KAFFE_ERR_REVOKED;
    }
    /* seq_cst pair with partition_close_acks: either this settle sees
     * closing and backs out, or the closer waits for it to finish. */
    atomic_fetch_add_explicit(&p->settlers, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->closing, memory_order_seq_cst)) {
        st = KAFFE_ERR_REVOKED;
    } else {
        if (mode == PARTITION_ACK) {
            st = p->tracker ? ack_tracker_ack(p->tracker, offset) : KAFFE_ERR_ACK_UNTRACKED;
            if (st == KAFFE_OK) /* relaxed: a statistics counter */
                atomic_fetch_add_explicit(&p->table->acked, 1, memory_order_relaxed);
        } else if (mode == PARTITION_FAIL)
            lower_failed_offset(p, offset);
        if (st == KAFFE_OK) {
            /* release: pairs with the acquire in partition_in_flight; the
             * tracker update above is visible to whoever sees the count. */
            atomic_fetch_sub_explicit(&p->in_flight_bytes, (long long)bytes, memory_order_release);
            atomic_fetch_sub_explicit(&p->in_flight, 1, memory_order_release);
        }
    }
    /* Pairs with the TSAN_ACQUIRE before the deferred free. */
    TSAN_RELEASE(p);
    /* release: pairs with the acquire wait in partition_close_acks. */
    atomic_fetch_sub_explicit(&p->settlers, 1, memory_order_release);
    partition_read_unlock();
    return st;
}

bool partition_is_current(partition_table_t *t, const char *topic, int32_t partition,
                          uint64_t generation) {
    partition_read_lock();
    partition_t *p = partition_table_find(t, topic, partition);
    bool current = p && p->generation == generation &&
                   !atomic_load_explicit(&p->closing, memory_order_acquire);
    if (p)
        TSAN_RELEASE(p);
    partition_read_unlock();
    return current;
}

void partition_close_acks(partition_t *p) {
    atomic_store_explicit(&p->closing, true, memory_order_seq_cst);
    while (atomic_load_explicit(&p->settlers, memory_order_acquire) != 0)
        sched_yield();
}

/* --- commit ------------------------------------------------------------- */

/* Extends snap over the inherited acks (p->skip, from the commit metadata
 * the partition was assigned with) that dispatch has not reached yet: they
 * are done, and a commit without them would erase them from the group's
 * metadata, so a later owner would handle them again. Poll thread (like
 * admit, the only other user of p->skip). False on OOM (snap unchanged). */
static bool snapshot_add_inherited(partition_t *p, ack_snapshot_t *snap) {
    if (!p->has_skip || p->skip.end <= snap->end)
        return true;
    size_t bits = (size_t)(p->skip.end - snap->watermark);
    size_t words = (bits + 63) / 64;
    if (words > snap->bits_capacity) {
        uint64_t *grown = realloc(snap->bits, words * sizeof *grown);
        if (!grown)
            return false;
        memset(grown + snap->bits_capacity, 0, (words - snap->bits_capacity) * sizeof *grown);
        snap->bits = grown;
        snap->bits_capacity = words;
    }
    for (int64_t o = snap->end; o < p->skip.end; o++) {
        size_t i = (size_t)(o - snap->watermark);
        uint64_t bit = (uint64_t)1 << (i % 64);
        if (ack_snapshot_is_done(&p->skip, o))
            snap->bits[i / 64] |= bit;
        else
            snap->bits[i / 64] &= ~bit;
    }
    snap->end = p->skip.end;
    snap->bit_count = bits;
    return true;
}

bool partition_snapshot(partition_t *p, ack_snapshot_t *snap) {
    if (!p->tracker)
        return false;
    if (ack_tracker_snapshot(p->tracker, snap) != KAFFE_OK)
        return false;
    if (!snapshot_add_inherited(p, snap))
        return false;
    int64_t failed = partition_failed_offset(p);
    if (failed >= 0 && snap->end > failed) {
        /* Nothing at or past the failed message is committed, not even as
         * metadata. The watermark cannot pass it (it was never acked). */
        snap->end = failed > snap->watermark ? failed : snap->watermark;
        snap->bit_count = (size_t)(snap->end - snap->watermark);
    }
    return true;
}

static uint64_t metadata_hash(const char *metadata) {
    return metadata ? hash_bytes(0, metadata, strlen(metadata)) : 0;
}

bool partition_commit_changed(partition_t *p, int64_t watermark, const char *metadata) {
    return !p->committed_once || p->last_watermark != watermark ||
           p->last_metadata_hash != metadata_hash(metadata);
}

void partition_commit_done(partition_t *p, int64_t watermark, const char *metadata) {
    p->committed_once = true;
    p->last_watermark = watermark;
    p->last_metadata_hash = metadata_hash(metadata);
    atomic_store_explicit(&p->stat_committed, watermark, memory_order_relaxed);
    atomic_store_explicit(&p->stat_metadata_bytes, (long long)(metadata ? strlen(metadata) : 0),
                          memory_order_relaxed);
}

/* --- stats -------------------------------------------------------------- */

void partition_table_counters(partition_table_t *t, partition_counters_t *out) {
    out->admitted = atomic_load_explicit(&t->admitted, memory_order_relaxed);
    out->already_acked = atomic_load_explicit(&t->already_acked, memory_order_relaxed);
    out->acked = atomic_load_explicit(&t->acked, memory_order_relaxed);
}

void partition_stats(const partition_t *p, partition_stats_t *out) {
    out->generation = p->generation;
    out->committed_offset = atomic_load_explicit(&p->stat_committed, memory_order_relaxed);
    out->metadata_bytes =
        (size_t)atomic_load_explicit(&p->stat_metadata_bytes, memory_order_relaxed);
    int paused = atomic_load_explicit(&p->stat_paused, memory_order_relaxed);
    out->dispatch_paused = (paused & 1) != 0;
    out->fetch_paused = (paused & 2) != 0;
    out->in_flight = partition_in_flight(p, &out->in_flight_bytes);
    /* acquire: pairs with publish_tracker. */
    const ack_tracker_t *t = atomic_load_explicit(&p->stat_tracker, memory_order_acquire);
    out->watermark = t ? ack_tracker_watermark(t) : -1;
    out->next_offset = t ? ack_tracker_tracked_end(t) : -1;
    out->oldest_dispatch_ms = -1;
    if (out->in_flight <= 0 || out->watermark < 0)
        return;
    /* The latest sample at or below the watermark: its dispatch time is at
     * or before the oldest unacked message's (offsets dispatch in order). */
    int64_t best_offset = -1, best_time = -1, oldest_time = -1;
    for (size_t i = 0; i < PARTITION_SAMPLES; i++) {
        int64_t o = atomic_load_explicit(&p->samples[i].offset, memory_order_relaxed);
        int64_t at = atomic_load_explicit(&p->samples[i].time_ms, memory_order_relaxed);
        if (o < 0)
            continue;
        if (o <= out->watermark && o > best_offset) {
            best_offset = o;
            best_time = at;
        }
        if (oldest_time < 0 || at < oldest_time)
            oldest_time = at;
    }
    out->oldest_dispatch_ms = best_time >= 0 ? best_time : oldest_time;
}

int64_t partition_now_ms(void) {
    return clock_now_ms();
}
