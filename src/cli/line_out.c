/* Buffered line output, released after write(2): see line_out.h. */
#include "cli/line_out.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"

/* Lines and the items they carry, in push order. */
typedef struct batch {
    char *bytes;
    size_t len, cap;
    void **items;
    size_t count, items_cap;
} batch_t;

struct line_out {
    int fd;
    size_t flush_bytes;
    int flush_ms;
    line_out_release_fn release;
    void *opaque;
    /* Held by whoever writes, across the swap and the writes, so batches reach
     * fd in the order they were filled. Taken before buffer_lock. */
    pthread_mutex_t write_lock;
    /* Guards filling, stop. */
    pthread_mutex_t buffer_lock;
    pthread_cond_t wake; /* CLOCK_MONOTONIC; signalled at destroy */
    batch_t filling;
    bool stop;
    /* 0 or the first failed write's errno. Relaxed: set once, read as a flag. */
    atomic_int failed;
    /* Under write_lock: the batch being written (swapped with filling). */
    batch_t writing;
    pthread_t flusher;
};

static bool reserve(void **data, size_t *cap, size_t need, size_t unit) {
    if (need <= *cap)
        return true;
    size_t grown = *cap ? *cap * 2 : 64;
    while (grown < need)
        grown *= 2;
    void *p = realloc(*data, grown * unit);
    if (!p)
        return false;
    *data = p;
    *cap = grown;
    return true;
}

static bool write_all(int fd, const char *p, size_t n, int *error) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            *error = errno;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Writes what is buffered and releases its items. Any thread. */
static void flush(line_out_t *o) {
    pthread_mutex_lock(&o->write_lock);
    pthread_mutex_lock(&o->buffer_lock);
    batch_t full = o->filling;
    o->filling = o->writing; /* the emptied one, buffers reused */
    o->filling.len = o->filling.count = 0;
    pthread_mutex_unlock(&o->buffer_lock);
    o->writing = full;
    int error = 0;
    if (full.len > 0 && atomic_load_explicit(&o->failed, memory_order_relaxed) == 0 &&
        !write_all(o->fd, full.bytes, full.len, &error)) {
        atomic_store_explicit(&o->failed, error, memory_order_relaxed);
    }
    /* Items of a failed (or post-failure) batch are never released: their
     * lines may be missing, so they must not be acked. */
    if (atomic_load_explicit(&o->failed, memory_order_relaxed) == 0) {
        for (size_t i = 0; i < full.count; i++)
            o->release(full.items[i], o->opaque);
    }
    o->writing.len = o->writing.count = 0;
    pthread_mutex_unlock(&o->write_lock);
}

static void *flusher_main(void *arg) {
    line_out_t *o = arg;
    pthread_mutex_lock(&o->buffer_lock);
    while (!o->stop) {
        struct timespec at = clock_deadline_after_ms(o->flush_ms);
        pthread_cond_timedwait(&o->wake, &o->buffer_lock, &at);
        if (o->stop || o->filling.count == 0)
            continue;
        pthread_mutex_unlock(&o->buffer_lock);
        flush(o);
        pthread_mutex_lock(&o->buffer_lock);
    }
    pthread_mutex_unlock(&o->buffer_lock);
    return NULL;
}

line_out_t *line_out_new(int fd, size_t flush_bytes, int flush_ms, line_out_release_fn release,
                         void *opaque) {
    line_out_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->fd = fd;
    o->flush_bytes = flush_bytes ? flush_bytes : 1;
    o->flush_ms = flush_ms > 0 ? flush_ms : 1;
    o->release = release;
    o->opaque = opaque;
    pthread_mutex_init(&o->write_lock, NULL);
    pthread_mutex_init(&o->buffer_lock, NULL);
    clock_cond_init(&o->wake);
    if (pthread_create(&o->flusher, NULL, flusher_main, o) != 0) {
        pthread_cond_destroy(&o->wake);
        pthread_mutex_destroy(&o->buffer_lock);
        pthread_mutex_destroy(&o->write_lock);
        free(o);
        return NULL;
    }
    return o;
}

void line_out_push(line_out_t *o, const void *line, size_t len, void *item) {
    pthread_mutex_lock(&o->buffer_lock);
    batch_t *b = &o->filling;
    if (!reserve((void **)&b->bytes, &b->cap, b->len + len, 1) ||
        !reserve((void **)&b->items, &b->items_cap, b->count + 1, sizeof *b->items)) {
        /* Out of memory: like a failed write, the item is never released. */
        atomic_store_explicit(&o->failed, ENOMEM, memory_order_relaxed);
        pthread_mutex_unlock(&o->buffer_lock);
        return;
    }
    memcpy(b->bytes + b->len, line, len);
    b->len += len;
    b->items[b->count++] = item;
    bool full = b->len >= o->flush_bytes;
    pthread_mutex_unlock(&o->buffer_lock);
    if (full)
        flush(o);
}

int line_out_failed(line_out_t *o) {
    return atomic_load_explicit(&o->failed, memory_order_relaxed);
}

void line_out_destroy(line_out_t *o) {
    if (!o)
        return;
    pthread_mutex_lock(&o->buffer_lock);
    o->stop = true;
    pthread_cond_signal(&o->wake);
    pthread_mutex_unlock(&o->buffer_lock);
    pthread_join(o->flusher, NULL);
    flush(o);
    free(o->filling.bytes);
    free(o->filling.items);
    free(o->writing.bytes);
    free(o->writing.items);
    pthread_cond_destroy(&o->wake);
    pthread_mutex_destroy(&o->buffer_lock);
    pthread_mutex_destroy(&o->write_lock);
    free(o);
}
