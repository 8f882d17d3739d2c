/* The CLI's delayed acks under concurrency: several producer threads push
 * while the ack thread pops and calls back; every item is called back
 * exactly once, also when destroy runs while items are pending. Built from
 * the CLI's source (the command is not a library). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cli/delayed_ack.c"
#include "support/check.h"

#define THREADS 4
#define PER_THREAD 5000

static atomic_int calls[THREADS * PER_THREAD];

static void count_call(void *item, void *opaque) {
    (void)opaque;
    atomic_fetch_add_explicit(&calls[(intptr_t)item], 1, memory_order_relaxed);
}

typedef struct pusher {
    delayed_ack_t *d;
    int first;
} pusher_t;

static void *push_all(void *arg) {
    pusher_t *p = arg;
    for (int i = 0; i < PER_THREAD; i++)
        delayed_ack_push(p->d, (void *)(intptr_t)(p->first + i));
    return NULL;
}

static void run(long max_us, bool wait_for_thread) {
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        atomic_store(&calls[i], 0);
    delayed_ack_t *d = delayed_ack_new(0, max_us, count_call, NULL);
    CHECK(d != NULL, "delayed_ack_new");
    pthread_t t[THREADS];
    pusher_t p[THREADS];
    for (int i = 0; i < THREADS; i++) {
        p[i] = (pusher_t){.d = d, .first = i * PER_THREAD};
        pthread_create(&t[i], NULL, push_all, &p[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    /* Let the ack thread call back everything itself (bounded wait). */
    for (int i = 0; wait_for_thread && i < 5000 && delayed_ack_pending(d) > 0; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (wait_for_thread)
        CHECK(delayed_ack_pending(d) == 0, "%zu still pending", delayed_ack_pending(d));
    delayed_ack_destroy(d); /* acks whatever is still pending */
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        CHECK(atomic_load(&calls[i]) == 1, "item %d called back %d times", i,
              atomic_load(&calls[i]));
}

static void short_delays_every_item_once(void) {
    run(200, true);
}

static void destroy_while_pending_every_item_once(void) {
    run(10000000, false); /* 10 s: nearly all are still pending at destroy */
}

int main(void) {
    RUN_CASE(short_delays_every_item_once);
    RUN_CASE(destroy_while_pending_every_item_once);
    return check_summary("race_delayed_ack");
}
