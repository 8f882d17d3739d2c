/* The ack tracker under real concurrency (runs under ThreadSanitizer too).
 *
 * One thread tracks (the dispatcher), several threads ack, one thread
 * advances (the commit loop), and in the last case "attacker" threads send
 * duplicate and stale acks while words are recycled all the time. A shadow
 * array says, per offset, what really happened:
 *
 *   0 nothing yet; 1 the owner is about to ack it (or it is a gap, about to
 *   be skipped); 2 the owner's ack returned KAFFE_OK.
 *
 * The owner stores 1 before calling ack (so the store happens before its
 * CAS, which advance acquires); the advance thread checks that every offset
 * the watermark passes, and every bit a snapshot shows, has shadow >= 1: the
 * watermark never passes an offset nobody acked. An ack that marked a future
 * offset would also make that offset's owner get DUPLICATE instead of OK. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "ack/ack.h"
#include "support/check.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define MAX_THREADS 8
#define DEADLINE_SECONDS 120

typedef struct world {
    ack_tracker_t *t;
    int64_t n;     /* offsets [0, n); n - 1 is never a gap */
    int64_t block; /* owners ack their offsets block by block, shuffled */
    int owners;    /* acking threads; owner of o is o % owners */
    int attackers; /* threads sending duplicate and stale acks */
    bool gaps;     /* some offsets are skipped by the tracker */
    _Atomic uint8_t *shadow;
    atomic_bool stop; /* set when done or on a failure, so nobody spins forever */
    atomic_long owner_acks, attacks, attacks_refused_stale, attacks_refused_duplicate;
    struct timespec deadline;
} world_t;

typedef struct arg {
    world_t *w;
    int index;
} arg_t;

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return x;
}

static bool is_gap(const world_t *w, int64_t o) {
    return w->gaps && o != w->n - 1 && mix((uint64_t)o) % 61 == 0;
}

static bool past_deadline(world_t *w) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > w->deadline.tv_sec) {
        if (!atomic_exchange(&w->stop, true)) {
            CHECK(false, "deadline passed: no progress");
        }
        return true;
    }
    return atomic_load_explicit(&w->stop, memory_order_relaxed);
}

/* The dispatcher: tracks every offset that is not a gap, in order, retrying
 * while the window is full. */
static void *tracker_thread(void *p) {
    world_t *w = ((arg_t *)p)->w;
    for (int64_t o = 0; o < w->n; o++) {
        if (is_gap(w, o)) {
            /* relaxed: ordered before the skip bits by track's release RMW
             * (when the next offset is tracked), which advance acquires. */
            atomic_store_explicit(&w->shadow[o], 1, memory_order_relaxed);
            continue;
        }
        kaffe_status_t st;
        while ((st = ack_tracker_track(w->t, o)) == KAFFE_ERR_WINDOW_FULL) {
            if (past_deadline(w)) {
                return NULL;
            }
            sched_yield();
        }
        CHECK(st == KAFFE_OK, "track(%lld) = %s", (long long)o, kaffe_err_name(st));
    }
    return NULL;
}

static void shuffle(int64_t *a, size_t n, unsigned *seed) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rand_r(seed) % i;
        int64_t tmp = a[i - 1];
        a[i - 1] = a[j];
        a[j] = tmp;
    }
}

/* An owner: acks its offsets (o % owners == index) block by block, each
 * block in random order, once each block is tracked. Every ack must be OK. */
static void *owner_thread(void *p) {
    arg_t *a = p;
    world_t *w = a->w;
    unsigned seed = 1000u + (unsigned)a->index;
    int64_t *mine = malloc((size_t)(w->block / w->owners + 2) * sizeof *mine);
    for (int64_t b = 0; b < w->n; b += w->block) {
        int64_t stop = b + w->block < w->n ? b + w->block : w->n;
        size_t count = 0;
        int64_t highest = -1;
        for (int64_t o = b; o < stop; o++) {
            if (o % w->owners == a->index && !is_gap(w, o)) {
                mine[count++] = o;
                highest = o;
            }
        }
        shuffle(mine, count, &seed);
        while (highest >= ack_tracker_tracked_end(w->t)) {
            if (past_deadline(w)) {
                goto out;
            }
            sched_yield();
        }
        for (size_t i = 0; i < count; i++) {
            int64_t o = mine[i];
            /* relaxed: published by ack's release CAS below. */
            atomic_store_explicit(&w->shadow[o], 1, memory_order_relaxed);
            kaffe_status_t st = ack_tracker_ack(w->t, o);
            CHECK(st == KAFFE_OK, "owner ack(%lld) = %s", (long long)o, kaffe_err_name(st));
            /* release: an attacker that reads 2 (acquire) knows this ack is
             * over, so its own ack of o is a true duplicate. */
            atomic_store_explicit(&w->shadow[o], 2, memory_order_release);
            atomic_fetch_add_explicit(&w->owner_acks, 1, memory_order_relaxed);
        }
    }
out:
    free(mine);
    return NULL;
}

/* An attacker: acks offsets near the watermark that their owner has already
 * acked (duplicates, or stale once the watermark passed them and their word
 * was recycled). None may succeed. */
static void *attacker_thread(void *p) {
    arg_t *a = p;
    world_t *w = a->w;
    unsigned seed = 2000u + (unsigned)a->index;
    for (unsigned tries = 0; !atomic_load_explicit(&w->stop, memory_order_relaxed); tries++) {
        if (tries % 16 == 0) {
            sched_yield(); /* leave the (2) cores to the owners now and then */
        }
        int64_t wm = ack_tracker_watermark(w->t);
        int64_t end = ack_tracker_tracked_end(w->t);
        int64_t lo = wm - 160 > 0 ? wm - 160 : 0;
        if (end <= lo) {
            sched_yield();
            continue;
        }
        int64_t o = lo + rand_r(&seed) % (end - lo);
        if (o >= w->n || is_gap(w, o) ||
            atomic_load_explicit(&w->shadow[o], memory_order_acquire) != 2) {
            continue;
        }
        kaffe_status_t st = ack_tracker_ack(w->t, o);
        atomic_fetch_add_explicit(&w->attacks, 1, memory_order_relaxed);
        CHECK(st == KAFFE_ERR_ACK_STALE || st == KAFFE_ERR_ACK_DUPLICATE, "second ack(%lld) = %s",
              (long long)o, kaffe_err_name(st));
        atomic_fetch_add_explicit(st == KAFFE_ERR_ACK_STALE ? &w->attacks_refused_stale
                                                            : &w->attacks_refused_duplicate,
                                  1, memory_order_relaxed);
    }
    return NULL;
}

/* The commit loop: advances (and now and then snapshots) and checks against
 * the shadow that nothing unacked was passed or shown as done. */
static void advance_and_check(world_t *w) {
    ack_snapshot_t snap = {0};
    int64_t previous = 0;
    for (unsigned round = 0;; round++) {
        int64_t wm;
        if (round % 8 == 0) {
            CHECK(ack_tracker_snapshot(w->t, &snap) == KAFFE_OK, "snapshot");
            wm = snap.watermark;
            for (int64_t o = wm; o < snap.end; o++) {
                if (ack_snapshot_is_done(&snap, o)) {
                    CHECK(atomic_load_explicit(&w->shadow[o], memory_order_acquire) >= 1,
                          "snapshot shows %lld done but nobody acked it", (long long)o);
                }
            }
        } else {
            wm = ack_tracker_advance(w->t);
        }
        CHECK(wm >= previous, "watermark went back from %lld to %lld", (long long)previous,
              (long long)wm);
        for (int64_t o = previous; o < wm; o++) {
            /* acquire: the shadow store is before the owner's release CAS,
             * which advance acquired; this load is after advance. */
            if (atomic_load_explicit(&w->shadow[o], memory_order_acquire) == 0) {
                CHECK(false, "watermark %lld passed %lld, which nobody acked", (long long)wm,
                      (long long)o);
                atomic_store(&w->stop, true);
                break;
            }
        }
        previous = wm > previous ? wm : previous;
        if (wm >= w->n || past_deadline(w)) {
            break;
        }
        sched_yield();
    }
    CHECK(previous == w->n, "the watermark ends at %lld, not %lld", (long long)previous,
          (long long)w->n);
    ack_snapshot_free(&snap);
}

static void run(int64_t n, size_t capacity, int64_t block, int owners, int attackers, bool gaps) {
    world_t w = {.n = n, .block = block, .owners = owners, .attackers = attackers, .gaps = gaps};
    w.t = ack_tracker_new(0, capacity);
    w.shadow = calloc((size_t)n, sizeof *w.shadow);
    CHECK(w.t && w.shadow, "allocation");
    clock_gettime(CLOCK_MONOTONIC, &w.deadline);
    w.deadline.tv_sec += DEADLINE_SECONDS;

    pthread_t threads[1 + 2 * MAX_THREADS];
    arg_t args[1 + 2 * MAX_THREADS];
    int count = 0;
    args[count] = (arg_t){&w, 0};
    pthread_create(&threads[count], NULL, tracker_thread, &args[count]);
    count++;
    for (int i = 0; i < owners; i++, count++) {
        args[count] = (arg_t){&w, i};
        pthread_create(&threads[count], NULL, owner_thread, &args[count]);
    }
    int first_attacker = count;
    for (int i = 0; i < attackers; i++, count++) {
        args[count] = (arg_t){&w, i};
        pthread_create(&threads[count], NULL, attacker_thread, &args[count]);
    }
    advance_and_check(&w);
    for (int i = 0; i < first_attacker; i++) {
        pthread_join(threads[i], NULL);
    }
    atomic_store(&w.stop, true);
    for (int i = first_attacker; i < count; i++) {
        pthread_join(threads[i], NULL);
    }

    int64_t real = 0;
    for (int64_t o = 0; o < n; o++) {
        real += !is_gap(&w, o);
        if (!is_gap(&w, o)) {
            CHECK(atomic_load(&w.shadow[o]) == 2, "offset %lld was not acked OK by its owner",
                  (long long)o);
        }
    }
    CHECK(atomic_load(&w.owner_acks) == real, "owner acks %ld, offsets %lld",
          atomic_load(&w.owner_acks), (long long)real);
    CHECK(ack_tracker_watermark(w.t) == n, "final watermark");
    if (attackers) {
        printf("  %ld duplicate/stale acks refused (%ld stale, %ld duplicate)\n",
               atomic_load(&w.attacks), atomic_load(&w.attacks_refused_stale),
               atomic_load(&w.attacks_refused_duplicate));
        CHECK(atomic_load(&w.attacks) > 0, "the attackers never got to attack");
    }
    ack_tracker_destroy(w.t);
    free(w.shadow);
}

/* Three threads ack a random permutation of the whole range (window as
 * large as the range) while the tracker feeds it and advance runs. */
static void acks_of_a_random_permutation_never_let_the_watermark_skip(void) {
    int64_t n = UNDER_TSAN ? 1 << 19 : 1 << 22;
    run(n, (size_t)n, n, 3, 0, false);
}

/* A small window (4096) that wraps hundreds of times, with gaps. */
static void a_small_window_wraps_with_gaps_and_never_skips(void) {
    int64_t n = UNDER_TSAN ? 1 << 19 : 1 << 22;
    run(n, 4096, 1024, 2, 0, true);
}

/* Capacity 64 (two words): every word is recycled constantly while two
 * attackers ack offsets that were already acked. None succeeds, no future
 * offset is marked (its owner would get DUPLICATE, or the watermark would
 * pass it before its owner acked). */
static void duplicate_and_stale_acks_racing_with_recycling_mark_nothing(void) {
    int64_t n = UNDER_TSAN ? 1 << 19 : 1 << 22;
    run(n, 64, 16, 2, 2, true);
}

int main(void) {
    RUN_CASE(acks_of_a_random_permutation_never_let_the_watermark_skip);
    RUN_CASE(a_small_window_wraps_with_gaps_and_never_skips);
    RUN_CASE(duplicate_and_stale_acks_racing_with_recycling_mark_nothing);
    return check_summary("race_ack");
}
