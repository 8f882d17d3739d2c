/* The worker pool under load: lanes keep push order and never run two items
 * at once, direct items run exactly once, released lanes are freed after
 * their last item, and sleeping workers are always woken. Run under TSan. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "pool/pool.h"
#include "support/check.h"

typedef struct lane_state {
    atomic_int busy; /* workers inside this lane's items right now */
    long next;       /* next expected sequence: plain, ordered by the lane */
    long ran;
} lane_state_t;

typedef struct item {
    pool_item_t item;
    int lane; /* -1: direct */
    long seq;
} item_t;

typedef struct ctx {
    lane_state_t *lanes;
    atomic_long direct_ran;
    atomic_long total_ran;
    int spin; /* busy work per item, to make lanes overlap */
} ctx_t;

static void run(pool_item_t *pi, void *opaque) {
    ctx_t *ctx = opaque;
    item_t *it = (item_t *)pi;
    if (it->lane >= 0) {
        lane_state_t *ls = &ctx->lanes[it->lane];
        int inside = atomic_fetch_add(&ls->busy, 1);
        CHECK(inside == 0, "lane %d run concurrently (%d inside)", it->lane, inside);
        CHECK(it->seq == ls->next, "lane %d: got %ld, expected %ld", it->lane, it->seq, ls->next);
        ls->next = it->seq + 1;
        ls->ran++;
        for (volatile int i = 0; i < ctx->spin; i++)
            ;
        atomic_fetch_sub(&ls->busy, 1);
    } else {
        atomic_fetch_add(&ctx->direct_ran, 1);
    }
    atomic_fetch_add(&ctx->total_ran, 1);
}

enum { PUSHERS = 4, LANES_PER_PUSHER = 8, PER_LANE = 2000, DIRECT_PER_PUSHER = 3000 };

typedef struct pusher {
    pool_t *pool;
    pool_lane_t *lanes[LANES_PER_PUSHER];
    int first_lane;
    item_t *items; /* LANES_PER_PUSHER * PER_LANE + DIRECT_PER_PUSHER */
    unsigned seed;
    int batch_every; /* > 0: pushes go through a pool_batch flushed this often */
} pusher_t;

static void *pusher_main(void *arg) {
    pusher_t *ps = arg;
    long next[LANES_PER_PUSHER] = {0};
    size_t k = 0;
    size_t lane_items = LANES_PER_PUSHER * PER_LANE;
    size_t direct = 0;
    pool_batch_t batch;
    pool_batch_init(&batch, ps->pool);
    long pushed = 0;
    while (k < lane_items || direct < DIRECT_PER_PUSHER) {
        unsigned r = (unsigned)rand_r(&ps->seed);
        if (k < lane_items && (r & 3) != 0) {
            int l;
            do
                l = (int)(rand_r(&ps->seed) % LANES_PER_PUSHER);
            while (next[l] == PER_LANE);
            item_t *it = &ps->items[k++];
            it->lane = ps->first_lane + l;
            it->seq = next[l]++;
            if (ps->batch_every > 0)
                pool_batch_lane_push(&batch, ps->lanes[l], &it->item);
            else
                pool_lane_push(ps->lanes[l], &it->item);
        } else if (direct < DIRECT_PER_PUSHER) {
            item_t *it = &ps->items[lane_items + direct++];
            it->lane = -1;
            if (ps->batch_every > 0)
                pool_batch_push(&batch, &it->item);
            else
                pool_push(ps->pool, &it->item);
        }
        if (ps->batch_every > 0 && ++pushed % ps->batch_every == 0)
            pool_batch_flush(&batch);
    }
    pool_batch_flush(&batch);
    /* Release while the lanes are probably still busy. */
    for (int l = 0; l < LANES_PER_PUSHER; l++)
        pool_lane_release(ps->lanes[l]);
    return NULL;
}

/* batch_every > 0: every other pusher batches its pushes (see pusher_t). */
static void run_load(size_t workers, int spin, int batch_every) {
    ctx_t ctx = {.spin = spin};
    ctx.lanes = calloc(PUSHERS * LANES_PER_PUSHER, sizeof *ctx.lanes);
    pool_t *pool = pool_new(workers, run, &ctx);
    CHECK(pool != NULL, "pool_new");
    pusher_t ps[PUSHERS];
    pthread_t th[PUSHERS];
    for (int i = 0; i < PUSHERS; i++) {
        ps[i].pool = pool;
        ps[i].first_lane = i * LANES_PER_PUSHER;
        ps[i].seed = (unsigned)i * 7919u + 1;
        ps[i].batch_every = (i & 1) ? batch_every : 0;
        ps[i].items = calloc(LANES_PER_PUSHER * PER_LANE + DIRECT_PER_PUSHER, sizeof(item_t));
        for (int l = 0; l < LANES_PER_PUSHER; l++)
            ps[i].lanes[l] = pool_lane_new(pool);
        pthread_create(&th[i], NULL, pusher_main, &ps[i]);
    }
    for (int i = 0; i < PUSHERS; i++)
        pthread_join(th[i], NULL);
    pool_destroy(pool); /* runs everything still queued */
    long expected = (long)PUSHERS * (LANES_PER_PUSHER * PER_LANE + DIRECT_PER_PUSHER);
    CHECK(atomic_load(&ctx.total_ran) == expected, "ran %ld of %ld", atomic_load(&ctx.total_ran),
          expected);
    CHECK(atomic_load(&ctx.direct_ran) == (long)PUSHERS * DIRECT_PER_PUSHER, "direct ran %ld",
          atomic_load(&ctx.direct_ran));
    for (int l = 0; l < PUSHERS * LANES_PER_PUSHER; l++)
        CHECK(ctx.lanes[l].ran == PER_LANE, "lane %d ran %ld", l, ctx.lanes[l].ran);
    for (int i = 0; i < PUSHERS; i++)
        free(ps[i].items);
    free(ctx.lanes);
}

static void lanes_keep_order_with_many_workers(void) {
    run_load(16, 200, 0);
}

static void lanes_keep_order_with_one_worker(void) {
    run_load(1, 0, 0);
}

static void lanes_keep_order_with_more_workers_than_lanes(void) {
    run_load(64, 50, 0);
}

static void batched_pushes_keep_order(void) {
    run_load(16, 200, 32);
    run_load(1, 0, 7);
    run_load(64, 50, 100);
}

/* Pushes one item at a time and waits for it: every push finds the workers
 * asleep (or about to sleep), so a lost wake-up would hang here. */
static void sleeping_workers_are_woken(void) {
    ctx_t ctx = {.spin = 0};
    ctx.lanes = calloc(1, sizeof *ctx.lanes);
    pool_t *pool = pool_new(4, run, &ctx);
    pool_lane_t *lane = pool_lane_new(pool);
    enum { N = 300 };
    item_t *items = calloc(N, sizeof *items);
    for (int i = 0; i < N; i++) {
        items[i].lane = (i & 1) ? 0 : -1;
        items[i].seq = i / 2;
        if (items[i].lane == 0)
            pool_lane_push(lane, &items[i].item);
        else
            pool_push(pool, &items[i].item);
        struct timespec deadline, now;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += 10;
        while (atomic_load(&ctx.total_ran) < i + 1) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > deadline.tv_sec) {
                CHECK(0, "item %d not run within 10 s (lost wake-up)", i);
                break;
            }
            if (i % 3 == 0) {
                struct timespec ms = {0, 1000000}; /* let the workers fall asleep */
                nanosleep(&ms, NULL);
            }
        }
    }
    pool_lane_release(lane);
    pool_destroy(pool);
    CHECK(atomic_load(&ctx.total_ran) == N, "ran %ld", atomic_load(&ctx.total_ran));
    free(items);
    free(ctx.lanes);
}

/* Runs of 1..8 pushes through a pool_batch, flushed, then waited for: the
 * workers are often asleep at the flush, so a lost wake-up would hang. */
static void batch_flush_wakes_sleeping_workers(void) {
    ctx_t ctx = {.spin = 0};
    ctx.lanes = calloc(2, sizeof *ctx.lanes);
    pool_t *pool = pool_new(4, run, &ctx);
    pool_lane_t *lanes[2] = {pool_lane_new(pool), pool_lane_new(pool)};
    enum { N = 600 };
    item_t *items = calloc(N, sizeof *items);
    long seq[2] = {0, 0};
    int i = 0;
    for (int round = 0; i < N; round++) {
        pool_batch_t batch;
        pool_batch_init(&batch, pool);
        int run_len = 1 + round % 8;
        for (int k = 0; k < run_len && i < N; k++, i++) {
            items[i].lane = i % 3 - 1; /* -1 (direct), 0, 1 */
            if (items[i].lane < 0) {
                pool_batch_push(&batch, &items[i].item);
            } else {
                items[i].seq = seq[items[i].lane]++;
                pool_batch_lane_push(&batch, lanes[items[i].lane], &items[i].item);
            }
        }
        pool_batch_flush(&batch);
        struct timespec deadline, now;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += 10;
        while (atomic_load(&ctx.total_ran) < i) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > deadline.tv_sec) {
                CHECK(0, "round %d not run within 10 s (lost wake-up)", round);
                break;
            }
        }
        if (round % 3 == 0) {
            struct timespec ms = {0, 1000000}; /* let the workers fall asleep */
            nanosleep(&ms, NULL);
        }
    }
    pool_lane_release(lanes[0]);
    pool_lane_release(lanes[1]);
    pool_destroy(pool);
    CHECK(atomic_load(&ctx.total_ran) == N, "ran %ld", atomic_load(&ctx.total_ran));
    free(items);
    free(ctx.lanes);
}

int main(void) {
    RUN_CASE(lanes_keep_order_with_many_workers);
    RUN_CASE(lanes_keep_order_with_one_worker);
    RUN_CASE(lanes_keep_order_with_more_workers_than_lanes);
    RUN_CASE(sleeping_workers_are_woken);
    RUN_CASE(batched_pushes_keep_order);
    RUN_CASE(batch_flush_wakes_sleeping_workers);
    return check_summary("race_pool");
}
