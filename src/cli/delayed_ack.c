/* Delayed acks: a min-heap of (due time, item) under one mutex, served by one
 * thread that sleeps on a condition variable until the earliest due time and
 * then takes every due item at once (up to SERVE_BATCH), calling back
 * outside the lock: one lock round trip per batch, not per item, so pushing
 * threads rarely wait for the server. */
#include "cli/delayed_ack.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "common/clock.h"
#include "common/prng.h"

/* Items the serving thread takes per lock hold. */
#define SERVE_BATCH 512

typedef struct entry {
    uint64_t due_ns; /* CLOCK_MONOTONIC */
    void *item;
} entry_t;

struct delayed_ack {
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;  /* signalled on push (new earliest) and on stop */
    entry_t *heap;
    size_t count, capacity;
    bool stopping;
    prng_t rng; /* delays; under lock */
    long min_us, max_us;
    delayed_ack_fn fn;
    void *opaque;
    pthread_t thread;
};

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

/* Removes and returns the earliest entry. Lock held; count > 0. */
static entry_t pop(delayed_ack_t *d) {
    entry_t top = d->heap[0];
    d->heap[0] = d->heap[--d->count];
    sift_down(d->heap, d->count, 0);
    return top;
}

static void *serve(void *arg) {
    delayed_ack_t *d = arg;
    void **batch = malloc(SERVE_BATCH * sizeof *batch);
    size_t batch_cap = batch ? SERVE_BATCH : 1;
    void *single;
    if (!batch)
        batch = &single; /* no memory: one item per lock hold still works */
    pthread_mutex_lock(&d->lock);
    while (!d->stopping) {
        if (d->count == 0) {
            pthread_cond_wait(&d->wake, &d->lock);
            continue;
        }
        uint64_t now = clock_now_ns(), due = d->heap[0].due_ns;
        if (due > now) {
            struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u),
                                  .tv_nsec = (long)(due % 1000000000u)};
            pthread_cond_timedwait(&d->wake, &d->lock, &ts);
            continue;
        }
        size_t n = 0;
        while (n < batch_cap && d->count > 0 && d->heap[0].due_ns <= now)
            batch[n++] = pop(d).item;
        pthread_mutex_unlock(&d->lock);
        for (size_t i = 0; i < n; i++)
            d->fn(batch[i], d->opaque);
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    if (batch != &single)
        free(batch);
    return NULL;
}

delayed_ack_t *delayed_ack_new(long min_us, long max_us, delayed_ack_fn fn, void *opaque) {
    if (min_us < 0 || max_us < min_us || !fn)
        return NULL;
    delayed_ack_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->min_us = min_us;
    d->max_us = max_us;
    d->fn = fn;
    d->opaque = opaque;
    d->rng = prng_seeded(clock_now_ns());
    clock_cond_init(&d->wake);
    pthread_mutex_init(&d->lock, NULL);
    if (pthread_create(&d->thread, NULL, serve, d) != 0) {
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }
    return d;
}

void delayed_ack_push(delayed_ack_t *d, void *item) {
    pthread_mutex_lock(&d->lock);
    if (d->count == d->capacity) {
        size_t cap = d->capacity ? d->capacity * 2 : 1024;
        entry_t *h = realloc(d->heap, cap * sizeof *h);
        if (!h) { /* no memory: ack now rather than lose the ack */
            pthread_mutex_unlock(&d->lock);
            d->fn(item, d->opaque);
            return;
        }
        d->heap = h;
        d->capacity = cap;
    }
    long span = d->max_us - d->min_us;
    long delay_us = d->min_us + (span > 0 ? (long)prng_below(&d->rng, (uint64_t)span + 1) : 0);
    d->heap[d->count] =
        (entry_t){.due_ns = clock_now_ns() + (uint64_t)delay_us * 1000u, .item = item};
    sift_up(d->heap, d->count++);
    bool earliest = d->heap[0].item == item;
    pthread_mutex_unlock(&d->lock);
    if (earliest)
        pthread_cond_signal(&d->wake);
}

size_t delayed_ack_pending(delayed_ack_t *d) {
    pthread_mutex_lock(&d->lock);
    size_t n = d->count;
    pthread_mutex_unlock(&d->lock);
    return n;
}

void delayed_ack_destroy(delayed_ack_t *d) {
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_mutex_unlock(&d->lock);
    pthread_cond_signal(&d->wake);
    pthread_join(d->thread, NULL);
    while (d->count > 0) {
        entry_t e = pop(d);
        d->fn(e.item, d->opaque);
    }
    free(d->heap);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
