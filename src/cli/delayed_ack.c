/* Delayed acks. Each pushing thread has a ring of its own (one producer, one
 * consumer: a push is a few stores and one release store, no lock and no
 * allocation); the serving thread drains every ring into a min-heap of its
 * own, calls back what is due, and sleeps until the earliest due time, at
 * most SERVE_TICK_NS. A push never wakes it: an ack is made at most a tick
 * after it came due. (One mutex and heap shared by every pushing thread was
 * what limited the async bench scenario: eight workers contended for it.)
 *
 * Memory order: a ring slot is written before the pusher's release store of
 * head and read after the server's acquire load of it; the server's release
 * store of tail lets the pusher reuse the slots before it (acquire). The
 * rings list is published with a release store under reg_lock and read with
 * acquire by the server. */
#include "cli/delayed_ack.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "common/clock.h"
#include "common/prng.h"

/* Items a pushing thread may have handed over and the server not taken yet. */
#define RING_SLOTS 4096
/* The longest the server sleeps: how late after its due time an ack may be. */
#define SERVE_TICK_NS 500000u

typedef struct entry {
    uint64_t due_ns; /* CLOCK_MONOTONIC */
    void *item;
} entry_t;

typedef struct ring {
    _Alignas(64) atomic_size_t head; /* the owning thread's: next slot it fills */
    _Alignas(64) atomic_size_t tail; /* the server's: next slot it takes */
    struct ring *next;               /* the delayed_ack's list; set before publication */
    pthread_t owner;
    entry_t slots[RING_SLOTS];
} ring_t;

struct delayed_ack {
    uint64_t id;              /* tells the per-thread ring caches apart */
    pthread_mutex_t reg_lock; /* serialises ring registration */
    _Atomic(ring_t *) rings;  /* newest first; only grows until destroy */
    atomic_size_t pending;    /* pushed and not yet called back */
    atomic_bool stopping;
    long min_us, max_us;
    delayed_ack_fn fn;
    void *opaque;
    pthread_t thread;
    /* The serving thread's only (the destroying thread's after the join). */
    entry_t *heap;
    size_t count, capacity;
};

static atomic_uint_fast64_t next_id = 1;

/* The calling thread's ring for the last delayed_ack it pushed to. */
static _Thread_local struct {
    uint64_t id;
    ring_t *ring;
} cached;

static void sift_up(entry_t *h, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent].due_ns <= h[i].due_ns)
            break;
        entry_t t = h[parent];
        h[parent] = h[i];
        h[i] = t;
        i = parent;
    }
}

static void sift_down(entry_t *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].due_ns < h[m].due_ns)
            m = l;
        if (r < n && h[r].due_ns < h[m].due_ns)
            m = r;
        if (m == i)
            return;
        entry_t t = h[m];
        h[m] = h[i];
        h[i] = t;
        i = m;
    }
}

static void call_back(delayed_ack_t *d, void *item) {
    d->fn(item, d->opaque);
    atomic_fetch_sub_explicit(&d->pending, 1, memory_order_release);
}

/* Adds e to the heap; with no memory for it, calls it back at once (an early
 * ack rather than a lost one). Server only. */
static void heap_add(delayed_ack_t *d, entry_t e) {
    if (d->count == d->capacity) {
        size_t cap = d->capacity ? d->capacity * 2 : 1024;
        entry_t *h = realloc(d->heap, cap * sizeof *h);
        if (!h) {
            call_back(d, e.item);
            return;
        }
        d->heap = h;
        d->capacity = cap;
    }
    d->heap[d->count] = e;
    sift_up(d->heap, d->count++);
}

/* Moves everything handed over in every ring into the heap. Server only.
 * Returns the number moved. */
static size_t drain_rings(delayed_ack_t *d) {
    size_t moved = 0;
    for (ring_t *r = atomic_load_explicit(&d->rings, memory_order_acquire); r; r = r->next) {
        size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        for (; tail != head; tail++, moved++)
            heap_add(d, r->slots[tail % RING_SLOTS]);
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    return moved;
}

static void *serve(void *arg) {
    delayed_ack_t *d = arg;
    while (!atomic_load_explicit(&d->stopping, memory_order_acquire)) {
        size_t work = drain_rings(d);
        uint64_t now = clock_now_ns();
        for (; d->count > 0 && d->heap[0].due_ns <= now; work++) {
            void *item = d->heap[0].item;
            d->heap[0] = d->heap[--d->count];
            sift_down(d->heap, d->count, 0);
            call_back(d, item);
        }
        if (!work) {
            uint64_t until = now + SERVE_TICK_NS;
            if (d->count > 0 && d->heap[0].due_ns < until)
                until = d->heap[0].due_ns;
            clock_sleep_until_ns(until);
        }
    }
    return NULL;
}

/* The calling thread's ring in d, made and published on its first push.
 * NULL on OOM. */
static ring_t *thread_ring(delayed_ack_t *d) {
    if (cached.id == d->id)
        return cached.ring;
    pthread_t self = pthread_self();
    pthread_mutex_lock(&d->reg_lock);
    ring_t *r = atomic_load_explicit(&d->rings, memory_order_relaxed);
    while (r && !pthread_equal(r->owner, self))
        r = r->next;
    if (!r && (r = calloc(1, sizeof *r)) != NULL) {
        r->owner = self;
        r->next = atomic_load_explicit(&d->rings, memory_order_relaxed);
        atomic_store_explicit(&d->rings, r, memory_order_release);
    }
    pthread_mutex_unlock(&d->reg_lock);
    if (r) {
        cached.id = d->id;
        cached.ring = r;
    }
    return r;
}

delayed_ack_t *delayed_ack_new(long min_us, long max_us, delayed_ack_fn fn, void *opaque) {
    if (min_us < 0 || max_us < min_us || !fn)
        return NULL;
    delayed_ack_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->id = atomic_fetch_add(&next_id, 1);
    d->min_us = min_us;
    d->max_us = max_us;
    d->fn = fn;
    d->opaque = opaque;
    pthread_mutex_init(&d->reg_lock, NULL);
    if (pthread_create(&d->thread, NULL, serve, d) != 0) {
        pthread_mutex_destroy(&d->reg_lock);
        free(d);
        return NULL;
    }
    return d;
}

void delayed_ack_push(delayed_ack_t *d, void *item) {
    /* Counted before it can be called back, so pending never dips below. */
    atomic_fetch_add_explicit(&d->pending, 1, memory_order_relaxed);
    ring_t *r = thread_ring(d);
    if (!r) { /* no memory: ack now rather than lose the ack */
        call_back(d, item);
        return;
    }
    uint64_t span = (uint64_t)(d->max_us - d->min_us);
    uint64_t delay_us = (uint64_t)d->min_us + (span ? prng_thread_u32() % (span + 1) : 0);
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    while (head - atomic_load_explicit(&r->tail, memory_order_acquire) == RING_SLOTS)
        sched_yield(); /* full: the server takes a ring's slots within a tick */
    r->slots[head % RING_SLOTS] =
        (entry_t){.due_ns = clock_now_ns() + delay_us * 1000u, .item = item};
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

size_t delayed_ack_pending(delayed_ack_t *d) {
    return atomic_load_explicit(&d->pending, memory_order_acquire);
}

void delayed_ack_destroy(delayed_ack_t *d) {
    if (!d)
        return;
    atomic_store_explicit(&d->stopping, true, memory_order_release);
    pthread_join(d->thread, NULL);
    drain_rings(d); /* every push has returned (the contract) */
    while (d->count > 0) {
        void *item = d->heap[0].item;
        d->heap[0] = d->heap[--d->count];
        sift_down(d->heap, d->count, 0);
        call_back(d, item);
    }
    for (ring_t *r = atomic_load_explicit(&d->rings, memory_order_acquire), *next; r; r = next) {
        next = r->next;
        free(r);
    }
    free(d->heap);
    pthread_mutex_destroy(&d->reg_lock);
    free(d);
}
