/* bench_ack — acks per second through the ack tracker, against the usual
 * baseline (a pthread mutex around a binary min-heap of pending offsets), in
 * the same run. Prints figures; asserts nothing about speed.
 *
 * Workload, the same for both: the dispatcher tracks a chunk of offsets (the
 * messages in flight: 1024, then 8192), they are acked in a shuffled order
 * (workers finish out of order), and the commit loop advances every 4096
 * offsets (and whenever the 65536-offset window is full). Time covers track,
 * ack and advance.
 *   1 thread:  one thread tracks, acks and advances.
 *   2 threads: thread A tracks, acks the even offsets and advances; thread B
 *              acks the odd ones (so both hammer the same words).
 *   consumer:  the shape of a real consumer, 4 threads: a dispatcher tracks
 *              each fetched batch of 256 offsets and hands it to one of 2
 *              worker threads (alternately, through a bounded queue of 64
 *              batches each); a worker acks its batch in shuffled order; a
 *              committer advances every ~50 us until everything is passed.
 * For 1 thread, "ack() alone" counts only the time spent in the ack loops
 * (track and advance excluded), for both implementations.
 * Every figure is the median (and range) of REPEATS runs, tracker and
 * baseline alternated, so that the machine's other tenants hit both alike.
 *
 *   bench_ack [million-offsets]     (default 32; the baseline runs a quarter) */
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ack/ack.h"
#include "common/clock.h"

#define MAX_CHUNK 8192     /* in flight: of the order of max_in_flight_messages (10000) */
#define ADVANCE_EVERY 4096 /* offsets */
#define CAPACITY 65536     /* the ack_window default (src/conf/properties.c) */
#define REPEATS 5

static int perm[MAX_CHUNK];

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spins politely: pauses (so the waiting thread does not keep pulling the
 * other's cache line), and yields now and then in case both threads share
 * one core (this machine's cores are shared). */
static void wait_a_little(int waits) {
    for (int spin = 0; spin < 64; spin++) {
        cpu_relax();
    }
    if (waits % 16 == 15) {
        sched_yield();
    }
}

/* ---- the baseline: a mutex around a binary min-heap of pending offsets ---
 *
 * What most consumers do: track pushes the offset into a min-heap of pending
 * (in flight) offsets; ack removes it (O(log n), found through a position
 * index, which also catches duplicate and stale acks); the committable
 * watermark is the heap's minimum (or tracked_end when nothing is pending). */

typedef struct baseline {
    pthread_mutex_t lock;
    int64_t tracked_end, capacity;
    int64_t *heap;     /* pending offsets, min-heap */
    int32_t *position; /* heap index of pending offset o, at o % capacity; -1 */
    size_t size;
} baseline_t;

static baseline_t *baseline_new(int64_t start, int64_t capacity) {
    baseline_t *b = calloc(1, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    b->tracked_end = start;
    b->capacity = capacity;
    b->heap = malloc((size_t)capacity * sizeof *b->heap);
    b->position = malloc((size_t)capacity * sizeof *b->position);
    memset(b->position, 0xff, (size_t)capacity * sizeof *b->position);
    return b;
}

static void baseline_destroy(baseline_t *b) {
    pthread_mutex_destroy(&b->lock);
    free(b->heap);
    free(b->position);
    free(b);
}

static void heap_place(baseline_t *b, size_t i, int64_t o) {
    b->heap[i] = o;
    b->position[o & (b->capacity - 1)] = (int32_t)i;
}

static void sift_up(baseline_t *b, size_t i, int64_t o) {
    while (i > 0 && b->heap[(i - 1) / 2] > o) {
        heap_place(b, i, b->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(b, i, o);
}

static void sift_down(baseline_t *b, size_t i, int64_t o) {
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= b->size) {
            break;
        }
        if (child + 1 < b->size && b->heap[child + 1] < b->heap[child]) {
            child++;
        }
        if (b->heap[child] >= o) {
            break;
        }
        heap_place(b, i, b->heap[child]);
        i = child;
    }
    heap_place(b, i, o);
}

static int64_t baseline_watermark_locked(baseline_t *b) {
    return b->size ? b->heap[0] : b->tracked_end;
}

static kaffe_status_t baseline_track(baseline_t *b, int64_t o) {
    pthread_mutex_lock(&b->lock);
    kaffe_status_t st = KAFFE_OK;
    if (o < b->tracked_end) {
        st = KAFFE_ERR_OFFSET_BACKWARDS;
    } else if (o - baseline_watermark_locked(b) >= b->capacity) {
        st = KAFFE_ERR_WINDOW_FULL;
    } else {
        b->size++;
        sift_up(b, b->size - 1, o);
        b->tracked_end = o + 1;
    }
    pthread_mutex_unlock(&b->lock);
    return st;
}

static kaffe_status_t baseline_ack(baseline_t *b, int64_t o) {
    pthread_mutex_lock(&b->lock);
    kaffe_status_t st = KAFFE_OK;
    int32_t i = o >= 0 ? b->position[o & (b->capacity - 1)] : -1;
    if (o >= b->tracked_end) {
        st = KAFFE_ERR_ACK_UNTRACKED;
    } else if (i < 0 || b->heap[i] != o) {
        st = o < baseline_watermark_locked(b) ? KAFFE_ERR_ACK_STALE : KAFFE_ERR_ACK_DUPLICATE;
    } else {
        b->position[o & (b->capacity - 1)] = -1;
        int64_t last = b->heap[--b->size];
        if ((size_t)i < b->size) {
            if (i > 0 && b->heap[(i - 1) / 2] > last) {
                sift_up(b, (size_t)i, last);
            } else {
                sift_down(b, (size_t)i, last);
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    return st;
}

static int64_t baseline_advance(baseline_t *b) {
    pthread_mutex_lock(&b->lock);
    int64_t wm = baseline_watermark_locked(b);
    pthread_mutex_unlock(&b->lock);
    return wm;
}

static int64_t baseline_tracked_end(baseline_t *b) {
    pthread_mutex_lock(&b->lock);
    int64_t end = b->tracked_end;
    pthread_mutex_unlock(&b->lock);
    return end;
}

/* ---- one workload, written once for both implementations ------------------ */

typedef struct impl {
    const char *name;
    void *(*create)(void);
    void (*destroy)(void *);
    kaffe_status_t (*track)(void *, int64_t);
    kaffe_status_t (*ack)(void *, int64_t);
    int64_t (*advance)(void *);
    int64_t (*tracked_end)(void *);
} impl_t;

static void *tracker_create(void) {
    return ack_tracker_new(0, CAPACITY);
}
static void tracker_destroy(void *p) {
    ack_tracker_destroy(p);
}
static kaffe_status_t tracker_track(void *p, int64_t o) {
    return ack_tracker_track(p, o);
}
static kaffe_status_t tracker_ack(void *p, int64_t o) {
    return ack_tracker_ack(p, o);
}
static int64_t tracker_advance(void *p) {
    return ack_tracker_advance(p);
}
static int64_t tracker_end(void *p) {
    return ack_tracker_tracked_end(p);
}
static void *heap_create(void) {
    return baseline_new(0, CAPACITY);
}
static void heap_destroy(void *p) {
    baseline_destroy(p);
}
static kaffe_status_t heap_track(void *p, int64_t o) {
    return baseline_track(p, o);
}
static kaffe_status_t heap_ack(void *p, int64_t o) {
    return baseline_ack(p, o);
}
static int64_t heap_advance(void *p) {
    return baseline_advance(p);
}
static int64_t heap_end(void *p) {
    return baseline_tracked_end(p);
}

static const impl_t tracker_impl = {"kaffe ack tracker", tracker_create, tracker_destroy,
                                    tracker_track,       tracker_ack,    tracker_advance,
                                    tracker_end};
static const impl_t heap_impl = {"mutex + min-heap", heap_create,  heap_destroy, heap_track,
                                 heap_ack,           heap_advance, heap_end};

typedef struct run {
    const impl_t *impl;
    void *state;
    int64_t chunks, chunk;
    int threads;
    atomic_long failures;
} run_t;

#define INLINE static inline __attribute__((always_inline))

/* 1 thread: acks per second counting only the time spent in the ack loops
 * (the rest of the run is track and advance) of the last measure() call. */
static double last_ack_only;

/* The workload is written once and inlined per implementation (impl is a
 * constant there), so neither side pays for an indirect call. */
INLINE void track_chunk(run_t *r, const impl_t *impl, int64_t base) {
    for (int64_t i = 0; i < r->chunk; i++) {
        kaffe_status_t st;
        while ((st = impl->track(r->state, base + i)) == KAFFE_ERR_WINDOW_FULL) {
            impl->advance(r->state); /* the window is full: commit now */
            wait_a_little(0);
        }
        if (st != KAFFE_OK) {
            atomic_fetch_add(&r->failures, 1);
        }
    }
}

/* Acks this thread's share (index modulo threads) of a chunk, shuffled. */
INLINE void ack_chunk(run_t *r, const impl_t *impl, int64_t base, int index) {
    long failures = 0;
    for (int64_t i = 0; i < r->chunk; i++) {
        if (perm[i] % r->threads == index) {
            failures += impl->ack(r->state, base + perm[i]) != KAFFE_OK;
        }
    }
    if (failures) {
        atomic_fetch_add(&r->failures, failures);
    }
}

INLINE void second_acker(run_t *r, const impl_t *impl) {
    for (int64_t c = 0; c < r->chunks; c++) {
        int64_t need = (c + 1) * r->chunk;
        for (int waits = 0; impl->tracked_end(r->state) < need; waits++) {
            wait_a_little(waits);
        }
        ack_chunk(r, impl, c * r->chunk, 1);
    }
}

static void *second_acker_tracker(void *p) {
    second_acker(p, &tracker_impl);
    return NULL;
}

static void *second_acker_heap(void *p) {
    second_acker(p, &heap_impl);
    return NULL;
}

/* Returns acks per second, or -1 when an operation failed. */
INLINE double measure(const impl_t *impl, void *(*helper_fn)(void *), int64_t offsets,
                      int64_t chunk, int threads) {
    run_t r = {.impl = impl,
               .state = impl->create(),
               .chunks = offsets / chunk,
               .chunk = chunk,
               .threads = threads};
    int64_t advance_every = chunk >= ADVANCE_EVERY ? 1 : ADVANCE_EVERY / chunk;
    pthread_t helper;
    double t0 = clock_now_s();
    if (threads == 2) {
        pthread_create(&helper, NULL, helper_fn, &r);
    }
    double ack_seconds = 0;
    for (int64_t c = 0; c < r.chunks; c++) {
        track_chunk(&r, impl, c * chunk);
        if (threads == 1) {
            double a0 = clock_now_s();
            ack_chunk(&r, impl, c * chunk, 0);
            ack_seconds += clock_now_s() - a0;
        } else {
            ack_chunk(&r, impl, c * chunk, 0);
        }
        if (c % advance_every == advance_every - 1) {
            impl->advance(r.state);
        }
    }
    if (threads == 2) {
        pthread_join(helper, NULL);
    }
    int64_t wm = impl->advance(r.state);
    double seconds = clock_now_s() - t0;
    last_ack_only = threads == 1 ? (double)(r.chunks * chunk) / ack_seconds : 0;
    impl->destroy(r.state);
    if (wm != r.chunks * chunk || atomic_load(&r.failures)) {
        fprintf(stderr, "%s: watermark %lld of %lld, %ld failures\n", impl->name, (long long)wm,
                (long long)(r.chunks * chunk), atomic_load(&r.failures));
        return -1;
    }
    return (double)(r.chunks * chunk) / seconds;
}

/* ---- the consumer shape: dispatcher, 2 workers, committer ---------------- */

#define BATCH 256 /* offsets per fetched batch handed to a worker */
#define QUEUE 64  /* batches queued per worker */
#define WORKERS 2

static int batch_perm[BATCH];

/* Single-producer single-consumer queue of batch base offsets; -1 ends. */
typedef struct batch_queue {
    /* head: written by the worker; tail: by the dispatcher. release/acquire
     * pairs publish base[] entries (tail) and free slots (head). */
    alignas(64) _Atomic int64_t head;
    alignas(64) _Atomic int64_t tail;
    alignas(64) int64_t base[QUEUE];
} batch_queue_t;

typedef struct consumer_run {
    const impl_t *impl;
    void *state;
    int64_t total;
    batch_queue_t queues[WORKERS];
    atomic_long failures;
} consumer_run_t;

static void queue_push(batch_queue_t *q, int64_t base) {
    int64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (int waits = 0; tail - atomic_load_explicit(&q->head, memory_order_acquire) == QUEUE;
         waits++) {
        wait_a_little(waits);
    }
    q->base[tail % QUEUE] = base;
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
}

static int64_t queue_pop(batch_queue_t *q) {
    int64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    for (int waits = 0; atomic_load_explicit(&q->tail, memory_order_acquire) == head; waits++) {
        wait_a_little(waits);
    }
    int64_t base = q->base[head % QUEUE];
    atomic_store_explicit(&q->head, head + 1, memory_order_release);
    return base;
}

INLINE void dispatcher(consumer_run_t *r, const impl_t *impl) {
    long failures = 0;
    for (int64_t base = 0, k = 0; base < r->total; base += BATCH, k++) {
        for (int64_t o = base; o < base + BATCH; o++) {
            kaffe_status_t st;
            for (int waits = 0; (st = impl->track(r->state, o)) == KAFFE_ERR_WINDOW_FULL; waits++) {
                wait_a_little(waits); /* paused until the committer makes room */
            }
            failures += st != KAFFE_OK;
        }
        queue_push(&r->queues[k % WORKERS], base);
    }
    for (int w = 0; w < WORKERS; w++) {
        queue_push(&r->queues[w], -1);
    }
    if (failures) {
        atomic_fetch_add(&r->failures, failures);
    }
}

typedef struct worker_arg {
    consumer_run_t *r;
    int index;
} worker_arg_t;

INLINE void worker(consumer_run_t *r, const impl_t *impl, int index) {
    long failures = 0;
    int64_t base;
    while ((base = queue_pop(&r->queues[index])) >= 0) {
        for (int i = 0; i < BATCH; i++) {
            failures += impl->ack(r->state, base + batch_perm[i]) != KAFFE_OK;
        }
    }
    if (failures) {
        atomic_fetch_add(&r->failures, failures);
    }
}

static void *dispatcher_tracker(void *p) {
    dispatcher(p, &tracker_impl);
    return NULL;
}
static void *dispatcher_heap(void *p) {
    dispatcher(p, &heap_impl);
    return NULL;
}
static void *worker_tracker(void *p) {
    worker_arg_t *a = p;
    worker(a->r, &tracker_impl, a->index);
    return NULL;
}
static void *worker_heap(void *p) {
    worker_arg_t *a = p;
    worker(a->r, &heap_impl, a->index);
    return NULL;
}

/* Acks per second through the consumer shape, or -1 on a failure. The
 * calling thread is the committer. */
static double measure_consumer(const impl_t *impl, int64_t total) {
    bool tracker = impl == &tracker_impl;
    consumer_run_t *r = aligned_alloc(64, sizeof *r);
    memset(r, 0, sizeof *r);
    r->impl = impl;
    r->state = impl->create();
    r->total = total / BATCH * BATCH;
    worker_arg_t args[WORKERS];
    pthread_t dispatch, workers[WORKERS];
    double t0 = clock_now_s();
    pthread_create(&dispatch, NULL, tracker ? dispatcher_tracker : dispatcher_heap, r);
    for (int w = 0; w < WORKERS; w++) {
        args[w] = (worker_arg_t){r, w};
        pthread_create(&workers[w], NULL, tracker ? worker_tracker : worker_heap, &args[w]);
    }
    int64_t wm;
    while ((wm = impl->advance(r->state)) < r->total) {
        struct timespec pause = {0, 50000};
        nanosleep(&pause, NULL);
    }
    double seconds = clock_now_s() - t0;
    pthread_join(dispatch, NULL);
    for (int w = 0; w < WORKERS; w++) {
        pthread_join(workers[w], NULL);
    }
    impl->destroy(r->state);
    long failures = atomic_load(&r->failures);
    int64_t expected = r->total;
    free(r);
    if (wm != expected || failures) {
        fprintf(stderr, "%s consumer shape: watermark %lld of %lld, %ld failures\n", impl->name,
                (long long)wm, (long long)expected, failures);
        return -1;
    }
    return (double)expected / seconds;
}

static double measure_tracker(int64_t offsets, int64_t chunk, int threads) {
    return measure(&tracker_impl, second_acker_tracker, offsets, chunk, threads);
}

static double measure_heap(int64_t offsets, int64_t chunk, int threads) {
    return measure(&heap_impl, second_acker_heap, offsets, chunk, threads);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats {
    double median, min, max;
} stats_t;

static stats_t stats_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, by_value);
    double m = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return (stats_t){m, v[0], v[n - 1]};
}

/* One row: REPEATS runs of each, alternated (tracker first on even runs).
 * Rates in M acks/s; ratios per run pair. Returns false on a failure. */
typedef double (*measure_fn)(int64_t offsets, int64_t chunk, int threads);

static bool print_row(const char *label, const char *detail, measure_fn fast_fn, measure_fn slow_fn,
                      int64_t offsets, int64_t chunk, int threads) {
    double fast[REPEATS], slow[REPEATS], ratio[REPEATS];
    double fast_ack[REPEATS], slow_ack[REPEATS], ratio_ack[REPEATS];
    for (int i = 0; i < REPEATS; i++) {
        if (i % 2 == 0) {
            fast[i] = fast_fn(offsets, chunk, threads);
            fast_ack[i] = last_ack_only;
            slow[i] = slow_fn(offsets / 4, chunk, threads);
            slow_ack[i] = last_ack_only;
        } else {
            slow[i] = slow_fn(offsets / 4, chunk, threads);
            slow_ack[i] = last_ack_only;
            fast[i] = fast_fn(offsets, chunk, threads);
            fast_ack[i] = last_ack_only;
        }
        if (fast[i] < 0 || slow[i] < 0) {
            return false;
        }
        ratio[i] = fast[i] / slow[i];
        fast[i] /= 1e6;
        slow[i] /= 1e6;
        ratio_ack[i] = slow_ack[i] > 0 ? fast_ack[i] / slow_ack[i] : 0;
        fast_ack[i] /= 1e6;
        slow_ack[i] /= 1e6;
    }
    stats_t f = stats_of(fast, REPEATS), s = stats_of(slow, REPEATS), r = stats_of(ratio, REPEATS);
    printf("%-9s %-9s %7.1f (%5.1f..%5.1f) %6.1f (%4.1f..%4.1f) %6.1fx (%4.1f..%4.1f)\n", label,
           detail, f.median, f.min, f.max, s.median, s.min, s.max, r.median, r.min, r.max);
    if (threads == 1) {
        f = stats_of(fast_ack, REPEATS);
        s = stats_of(slow_ack, REPEATS);
        r = stats_of(ratio_ack, REPEATS);
        printf(
            "  ack() alone       %7.1f (%5.1f..%5.1f) %6.1f (%4.1f..%4.1f) %6.1fx (%4.1f..%4.1f)\n",
            f.median, f.min, f.max, s.median, s.min, s.max, r.median, r.min, r.max);
    }
    return true;
}

static double consumer_tracker(int64_t offsets, int64_t chunk, int threads) {
    (void)chunk;
    (void)threads;
    return measure_consumer(&tracker_impl, offsets);
}

static double consumer_heap(int64_t offsets, int64_t chunk, int threads) {
    (void)chunk;
    (void)threads;
    return measure_consumer(&heap_impl, offsets);
}

static void shuffle(int *v, int64_t n, unsigned *seed) {
    for (int64_t i = 0; i < n; i++) {
        v[i] = (int)i;
    }
    for (int64_t i = n; i > 1; i--) {
        int64_t j = rand_r(seed) % i;
        int tmp = v[i - 1];
        v[i - 1] = v[j];
        v[j] = tmp;
    }
}

static void *nothing(void *p) {
    return p;
}

int main(int argc, char **argv) {
    /* A consumer process is always multi-threaded (librdkafka alone runs
     * several threads). glibc's pthread_mutex_lock skips its atomic
     * instructions while a process has never had a second thread, which
     * would flatter the baseline's 1-thread figures: start one first. */
    pthread_t other;
    pthread_create(&other, NULL, nothing, NULL);
    pthread_join(other, NULL);

    int64_t millions = argc > 1 ? atoll(argv[1]) : 32;
    if (millions < 1) {
        millions = 1;
    }
    int64_t offsets = millions * 1000000 / MAX_CHUNK * MAX_CHUNK;
    unsigned seed = 12345;
    static const int64_t chunks[] = {1024, MAX_CHUNK};

    printf("bench_ack: track a chunk of offsets (the messages in flight), ack them in shuffled\n"
           "order, advance every %d offsets (and whenever the window is full); window %d\n"
           "offsets (the ack_window default). %lld offsets per run (baseline: a quarter),\n"
           "median (min..max) of %d alternated runs. 2 threads: one tracks, acks the even\n"
           "offsets and advances, the other acks the odd ones. consumer: a dispatcher tracks\n"
           "batches of %d and hands them to %d workers that ack them shuffled; a committer\n"
           "advances every ~50 us. Baseline: a pthread mutex around a binary min-heap of\n"
           "pending offsets (indexed removal on ack).\n\n",
           ADVANCE_EVERY, CAPACITY, (long long)offsets, REPEATS, BATCH, WORKERS);
    printf("%-9s %-9s %21s %20s %20s\n", "threads", "in flight", "tracker M acks/s",
           "mutex+heap M/s", "ratio");
    int status = 0;
    char label[16], detail[16];
    for (int threads = 1; threads <= 2; threads++) {
        for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
            int64_t chunk = chunks[k];
            shuffle(perm, chunk, &seed);
            snprintf(label, sizeof label, "%d", threads);
            snprintf(detail, sizeof detail, "%lld", (long long)chunk);
            if (!print_row(label, detail, measure_tracker, measure_heap, offsets, chunk, threads)) {
                status = 1;
            }
        }
    }
    shuffle(batch_perm, BATCH, &seed);
    if (!print_row("consumer", "<=32768", consumer_tracker, consumer_heap, offsets, BATCH, 4)) {
        status = 1;
    }
    ack_tracker_t *t = ack_tracker_new(0, CAPACITY);
    baseline_t *b = baseline_new(0, CAPACITY);
    printf("\nmemory per tracked partition at %d offsets: tracker %zu bytes; baseline %zu bytes\n",
           CAPACITY, ack_tracker_memory(t),
           sizeof *b + (size_t)CAPACITY * (sizeof *b->heap + sizeof *b->position));
    baseline_destroy(b);
    ack_tracker_destroy(t);
    return status;
}
