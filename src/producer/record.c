/* The async record pool (producer_record_*).
 *
 * Owns: free_records, chunks, returned_records and stat_accepted_pooled.
 * Threads: caller threads take records (producer_record_get) and give back
 * the ones never queued (producer_record_put), under pool_lock; the delivery
 * thread returns finished records (producer_record_return) without a lock;
 * destroy frees the chunks.
 *
 * No record is malloc'ed or freed per message: a malloc on the caller paired
 * with a free on the delivery thread costs ~300 instructions per message and
 * contends on glibc's arena lock. (Carrying the callback and opaque after
 * the value in kaffe's own copy of it, freed by librdkafka with
 * RD_KAFKA_MSG_F_FREE, costs more still: an extra malloc per message.) The
 * pool's size is the peak number of callback messages in flight (bounded by
 * queue.buffering.max.messages), 32 bytes each.
 *
 * returned_records stays a hand-written stack rather than liburcu's
 * cds_lfs: the delivery thread pushes one DR event's records as a single
 * chain with one CAS, and cds_lfs_push takes one node at a time (a locked
 * instruction per message instead of per event). */
#include <stdlib.h>

#include "producer/internal.h"

async_pending_t producer_record_without_callback = {{PENDING_ASYNC}, NULL, NULL, NULL};

void producer_record_return(kaffe_producer_t *p, record_chain_t *chain) {
    if (!chain->first)
        return;
    async_pending_t *head = atomic_load_explicit(&p->returned_records, memory_order_relaxed);
    do {
        chain->last->next = head;
        /* release: the callbacks' reads of cb/opaque and the next links
         * written above happen before a produce call that takes these
         * records (its acquire exchange in producer_record_get()) reuses
         * them. Failure relaxed: we only retry with the new head. */
    } while (!atomic_compare_exchange_weak_explicit(&p->returned_records, &head, chain->first,
                                                    memory_order_release, memory_order_relaxed));
    chain->first = chain->last = NULL;
}

/* Adds delta to stat_accepted_pooled. Called with pool_lock. */
static void count_pooled(kaffe_producer_t *p, uint64_t delta) {
    atomic_store_explicit(&p->stat_accepted_pooled,
                          atomic_load_explicit(&p->stat_accepted_pooled, memory_order_relaxed) +
                              delta,
                          memory_order_relaxed);
}

async_pending_t *producer_record_get(kaffe_producer_t *p) {
    pthread_mutex_lock(&p->pool_lock);
    async_pending_t *ap = p->free_records;
    if (!ap) {
        /* acquire: pairs with the release CAS in producer_record_return(). */
        ap = atomic_exchange_explicit(&p->returned_records, NULL, memory_order_acquire);
    }
    if (!ap) {
        record_chunk_t *c = malloc(sizeof *c);
        if (!c) {
            pthread_mutex_unlock(&p->pool_lock);
            return NULL;
        }
        c->next = p->chunks;
        p->chunks = c;
        for (size_t i = 0; i + 1 < RECORD_CHUNK; i++)
            c->records[i].next = &c->records[i + 1];
        c->records[RECORD_CHUNK - 1].next = NULL;
        ap = &c->records[0];
    }
    p->free_records = ap->next;
    /* The next record's line was last written by the delivery thread: start
     * fetching it (for writing) now, for the next call. */
    if (p->free_records)
        __builtin_prefetch(p->free_records, 1);
    count_pooled(p, 1);
    pthread_mutex_unlock(&p->pool_lock);
    return ap;
}

void producer_record_put(kaffe_producer_t *p, async_pending_t *ap) {
    pthread_mutex_lock(&p->pool_lock);
    ap->next = p->free_records;
    p->free_records = ap;
    count_pooled(p, (uint64_t)-1);
    pthread_mutex_unlock(&p->pool_lock);
}

void producer_record_pool_destroy(kaffe_producer_t *p) {
    for (record_chunk_t *c = p->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    p->chunks = NULL;
}
