/* src/ack — the ack tracker (see ack.h for the contract).
 *
 * Layout. The window holds nwords 64-bit words in a ring (nwords a power of
 * two). Absolute word number w covers offsets [32w, 32w + 32) and lives in
 * slot w & mask. A slot's value is
 *
 *     (uint64_t)(uint32_t)w << 32  |  done bits (bit i = offset 32w + i done)
 *
 * The high half, the cycle tag, names which absolute word the slot holds right
 * now. At every moment slot s holds the word w ≡ s (mod nwords) with
 * watermark/32 <= w < watermark/32 + nwords (during advance(), a slot that was
 * just passed may already hold its next cycle, w + nwords, before the
 * watermark is published).
 *
 * A parallel array of 32-bit "skip" words remembers which done bits were set
 * by track() for offsets it skipped (gaps), so that acking such an offset is
 * reported as UNTRACKED rather than DUPLICATE. It is read only on the failure
 * path of ack() and written only when track() sees a gap, so it costs the hot
 * path nothing; it costs 4 bytes per 32 offsets.
 *
 * Who writes what:
 *   words[]      track (fetch_or of skip bits), ack (CAS of one bit),
 *                advance (store of the recycled value, only when all 32 bits
 *                are done, so no track or ack can still want to change it);
 *   skips[]      track (fetch_or), advance (store 0 when recycling);
 *   tracked_end  track only;  track_limit  track only (private);
 *   watermark    advance only (reset: nobody else running).
 *
 * Why a stale ack cannot mark a future offset: ack(o) only ever installs a
 * bit with a compare-and-swap whose expected value carries o's own tag
 * (o >> 5). Once advance() has recycled the slot for word o/32 + nwords, the
 * tag differs and the CAS fails; the value never returns to the old tag
 * before 2^32 more cycles (2^37 offsets) have passed through this slot. */
#include "ack/ack.h"
#include "ack/internal.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64
#define WORD_SHIFT 5 /* 32 offsets per word */
#define WORD_BITS 32
#define ALL_DONE 0xffffffffu

struct ack_tracker {
    /* Read-only after construction (reset excepted). */
    _Atomic uint64_t *words;
    _Atomic uint32_t *skips;
    uint64_t mask; /* nwords - 1 */
    uint64_t nwords;

    /* Written by the track thread only. */
    alignas(CACHE_LINE) _Atomic int64_t tracked_end;
    /* First offset past the window as track last saw it; track's own cache of
     * the watermark so that a track inside the window costs no shared load.
     * The watermark only grows, so a cached limit is conservative. */
    int64_t track_limit;

    /* Written by the advance thread only. */
    alignas(CACHE_LINE) _Atomic int64_t watermark;
};

static inline uint64_t tag_of_word(int64_t w) {
    return (uint64_t)(uint32_t)w << 32;
}

static inline uint32_t low_mask(unsigned n) { /* bits [0, n), n <= 32 */
    return n >= 32 ? ALL_DONE : (uint32_t)((1u << n) - 1u);
}

static size_t round_up(size_t n, size_t to) {
    return (n + to - 1) / to * to;
}

static void init_window(ack_tracker_t *t, int64_t start) {
    int64_t first = start >> WORD_SHIFT;
    for (uint64_t i = 0; i < t->nwords; i++) {
        int64_t w = first + (int64_t)i;
        /* Offsets below start in the first word count as done (they are below
         * the watermark), so advance() can count trailing ones from bit 0. */
        uint32_t bits = i == 0 ? low_mask((unsigned)(start & (WORD_BITS - 1))) : 0;
        /* relaxed: reset/new run with no other thread on t; whoever gets t
         * afterwards is ordered by the way t was handed over. */
        atomic_store_explicit(&t->words[(uint64_t)w & t->mask], tag_of_word(w) | bits,
                              memory_order_relaxed);
        atomic_store_explicit(&t->skips[(uint64_t)w & t->mask], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&t->watermark, start, memory_order_relaxed);
    atomic_store_explicit(&t->tracked_end, start, memory_order_relaxed);
    t->track_limit = (first + (int64_t)t->nwords) << WORD_SHIFT;
}

ack_tracker_t *ack_tracker_new(int64_t start_offset, size_t capacity) {
    if (start_offset < 0 || capacity > ((size_t)1 << 40)) {
        return NULL;
    }
    size_t cap = 64;
    while (cap < capacity) {
        cap <<= 1;
    }
    ack_tracker_t *t = aligned_alloc(CACHE_LINE, round_up(sizeof *t, CACHE_LINE));
    if (!t) {
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->nwords = cap / WORD_BITS;
    t->mask = t->nwords - 1;
    t->words = aligned_alloc(CACHE_LINE, round_up(t->nwords * sizeof *t->words, CACHE_LINE));
    t->skips = aligned_alloc(CACHE_LINE, round_up(t->nwords * sizeof *t->skips, CACHE_LINE));
    if (!t->words || !t->skips) {
        ack_tracker_destroy(t);
        return NULL;
    }
    init_window(t, start_offset);
    return t;
}

void ack_tracker_destroy(ack_tracker_t *t) {
    if (!t) {
        return;
    }
    free((void *)t->words);
    free((void *)t->skips);
    free(t);
}

size_t ack_tracker_memory(const ack_tracker_t *t) {
    return round_up(sizeof *t, CACHE_LINE) + round_up(t->nwords * sizeof *t->words, CACHE_LINE) +
           round_up(t->nwords * sizeof *t->skips, CACHE_LINE);
}

void ack_tracker_reset(ack_tracker_t *t, int64_t start_offset) {
    init_window(t, start_offset < 0 ? 0 : start_offset);
}

/* Marks offsets [from, to) done as skipped. Track thread; every word touched
 * is inside the window (to <= track_limit) and not yet passed by advance
 * (from >= tracked_end, whose bit is not done), so no slot changes cycle
 * under us. */
static void mark_skipped(ack_tracker_t *t, int64_t from, int64_t to) {
    while (from < to) {
        int64_t w = from >> WORD_SHIFT;
        int64_t word_end = (w + 1) << WORD_SHIFT;
        int64_t stop = to < word_end ? to : word_end;
        unsigned lo = (unsigned)(from & (WORD_BITS - 1));
        unsigned hi = (unsigned)(stop - (w << WORD_SHIFT));
        uint32_t bits = low_mask(hi) & ~low_mask(lo);
        uint64_t slot = (uint64_t)w & t->mask;
        /* release: pairs with the acquire load of skips[] in ack_slow_path, so
         * an ack that sees a skip bit of a later cycle also sees the recycle
         * of words[slot] that came before it (and reports STALE). */
        atomic_fetch_or_explicit(&t->skips[slot], bits, memory_order_release);
        /* release: orders the skips[] update above before the done bits, so an
         * ack that reads these done bits (acquire) finds the skip bits too;
         * pairs with the acquire loads in ack and advance. An RMW, because
         * acks may be changing other bits of the same word. */
        atomic_fetch_or_explicit(&t->words[slot], bits, memory_order_release);
        from = stop;
    }
}

kaffe_status_t ack_tracker_track(ack_tracker_t *t, int64_t o) {
    /* relaxed: only this thread writes tracked_end. */
    int64_t end = atomic_load_explicit(&t->tracked_end, memory_order_relaxed);
    if (o < end) {
        return KAFFE_ERR_OFFSET_BACKWARDS;
    }
    if (o >= t->track_limit) {
        /* acquire: pairs with the release store of the watermark in advance,
         * so every slot advance recycled below the new limit is seen here in
         * its new cycle (and so, through our release of tracked_end, by acks
         * of the offsets we now track). */
        int64_t wm = atomic_load_explicit(&t->watermark, memory_order_acquire);
        t->track_limit = ((wm >> WORD_SHIFT) + (int64_t)t->mask + 1) << WORD_SHIFT;
        if (o >= t->track_limit) {
            if (end < t->track_limit) {
                /* A gap longer than the room left: the skipped offsets that
                 * fit are done whatever happens to o, so mark them now and
                 * each advance() frees room for the rest. */
                mark_skipped(t, end, t->track_limit);
                /* release: as below, publishes the skip bits. */
                atomic_store_explicit(&t->tracked_end, t->track_limit, memory_order_release);
            }
            return KAFFE_ERR_WINDOW_FULL;
        }
    }
    if (o > end) {
        mark_skipped(t, end, o);
    }
    /* o's own bit is already 0 (fresh cycle). release: pairs with the acquire
     * load of tracked_end in ack; orders our acquire of the watermark (hence
     * advance's recycling of o's slot) and the skip bits before any ack that
     * sees o as tracked. */
    atomic_store_explicit(&t->tracked_end, o + 1, memory_order_release);
    return KAFFE_OK;
}

/* ack found o's bit already set (or its slot recycled). Decides which error
 * to report; never writes. */
static kaffe_status_t ack_slow_path(ack_tracker_t *t, int64_t o, uint64_t slot, uint64_t tag) {
    /* acquire: pairs with the release fetch_or in mark_skipped and the
     * release store of 0 in advance (both come after the events they make
     * visible: a recycle of words[slot], or nothing). */
    uint32_t skip = atomic_load_explicit(&t->skips[slot], memory_order_acquire);
    /* acquire: re-read after skips[] so a skip word from another cycle (or
     * cleared for one) is detected by the tag changing. */
    uint64_t again = atomic_load_explicit(&t->words[slot], memory_order_acquire);
    if ((again & 0xffffffff00000000u) != tag) {
        return KAFFE_ERR_ACK_STALE;
    }
    /* acquire: pairs with advance's release; any order would do for this
     * report, acquire keeps it simple to reason about. */
    if (o < atomic_load_explicit(&t->watermark, memory_order_acquire)) {
        return KAFFE_ERR_ACK_STALE;
    }
    if (skip & (1u << (o & (WORD_BITS - 1)))) {
        return KAFFE_ERR_ACK_UNTRACKED;
    }
    return KAFFE_ERR_ACK_DUPLICATE;
}

kaffe_status_t ack_tracker_ack(ack_tracker_t *t, int64_t o) {
    /* acquire: pairs with the release store in track; o < end then implies
     * o's slot has been recycled into o's cycle before our loads below. */
    int64_t end = atomic_load_explicit(&t->tracked_end, memory_order_acquire);
    if ((uint64_t)o >= (uint64_t)end) { /* also catches o < 0 */
        return o < 0 ? KAFFE_ERR_ACK_STALE : KAFFE_ERR_ACK_UNTRACKED;
    }
    uint64_t slot = (uint64_t)(o >> WORD_SHIFT) & t->mask;
    uint64_t tag = tag_of_word(o >> WORD_SHIFT);
    uint64_t bit = (uint64_t)1 << (o & (WORD_BITS - 1));
    _Atomic uint64_t *word = &t->words[slot];
    /* acquire: pairs with the release RMWs of other acks and of track's skip
     * marking (needed only by ack_slow_path; free on x86). */
    uint64_t cur = atomic_load_explicit(word, memory_order_acquire);
    for (;;) {
        if ((cur & 0xffffffff00000000u) != tag) {
            /* Slot already recycled for a later cycle: o was passed. */
            return KAFFE_ERR_ACK_STALE;
        }
        if (cur & bit) {
            return ack_slow_path(t, o, slot, tag);
        }
        /* Success: acq_rel — the release half pairs with the acquire load of
         * the word in advance, so everything the acking thread did before the
         * ack (the handler's work) happens before the commit that passes o.
         * Failure: acquire, as for the load above. The tag in `cur` makes the
         * CAS fail if advance recycled the slot meanwhile. Retries only when
         * another ack (or track's skip marking) changed this word. */
        if (atomic_compare_exchange_weak_explicit(word, &cur, cur | bit, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            return KAFFE_OK;
        }
    }
}

int64_t ack_tracker_advance(ack_tracker_t *t) {
    /* relaxed: only this thread writes the watermark (one caller at a time;
     * callers that alternate threads must hand over with their own
     * synchronisation, e.g. the commit loop's lock). */
    int64_t wm = atomic_load_explicit(&t->watermark, memory_order_relaxed);
    int64_t start = wm;
    for (;;) {
        int64_t w = wm >> WORD_SHIFT;
        uint64_t slot = (uint64_t)w & t->mask;
        /* acquire: pairs with the release CAS in ack and the release fetch_or
         * in track, so the work done before each ack happens before the
         * watermark we publish (and the commit built on it). */
        uint64_t cur = atomic_load_explicit(&t->words[slot], memory_order_acquire);
        uint32_t bits = (uint32_t)cur;
        if (bits != ALL_DONE) {
            /* Bits below wm's position are all set (they are below the
             * watermark), so the first 0 bit is the new watermark. */
            wm = (w << WORD_SHIFT) + __builtin_ctz(~bits);
            break;
        }
        /* The whole word is done: nobody can change it any more (acks of its
         * offsets see the bit set and fail; track is past it). Recycle it for
         * word w + nwords. relaxed: ordered before the watermark's release
         * store below, which is what track acquires before using the slot;
         * stale acks are stopped by the tag change itself (CAS compares the
         * whole value). */
        atomic_store_explicit(&t->words[slot], tag_of_word(w + (int64_t)t->nwords),
                              memory_order_relaxed);
        /* release: after the recycle above, so an ack that reads this 0
         * (acquire, in ack_slow_path) also sees the new tag and says STALE. */
        atomic_store_explicit(&t->skips[slot], 0, memory_order_release);
        wm = (w + 1) << WORD_SHIFT;
    }
    if (wm != start) {
        /* release: pairs with the acquire loads of the watermark in track
         * (the recycled slots above become usable) and in readers of
         * ack_tracker_watermark (all offsets below it are done, with the
         * acking threads' work visible). */
        atomic_store_explicit(&t->watermark, wm, memory_order_release);
    }
    return wm;
}

int64_t ack_tracker_watermark(const ack_tracker_t *t) {
    /* acquire: pairs with advance's release store. */
    return atomic_load_explicit(&((ack_tracker_t *)t)->watermark, memory_order_acquire);
}

int64_t ack_tracker_tracked_end(const ack_tracker_t *t) {
    /* acquire: pairs with track's release store. */
    return atomic_load_explicit(&((ack_tracker_t *)t)->tracked_end, memory_order_acquire);
}

int64_t ack_tracker_pending(const ack_tracker_t *t) {
    int64_t end = ack_tracker_tracked_end(t);
    int64_t wm = ack_tracker_watermark(t);
    return end > wm ? end - wm : 0;
}

/* ---- snapshots ---------------------------------------------------------- */

kaffe_status_t ack__snapshot_reserve(ack_snapshot_t *snap, size_t bit_count) {
    size_t need = (bit_count + 63) / 64;
    if (need > snap->bits_capacity) {
        uint64_t *bits = realloc(snap->bits, need * sizeof *bits);
        if (!bits) {
            return KAFFE_ERR_NOMEM;
        }
        snap->bits = bits;
        snap->bits_capacity = need;
    }
    if (need) {
        memset(snap->bits, 0, need * sizeof *snap->bits);
    }
    return KAFFE_OK;
}

/* ORs the low n bits of v into snap bits [at, at + n). */
static void put_bits(uint64_t *dst, size_t at, uint32_t v) {
    size_t i = at / 64;
    unsigned s = (unsigned)(at % 64);
    dst[i] |= (uint64_t)v << s;
    if (s > 32 && ((uint64_t)v >> (64 - s)) != 0) {
        dst[i + 1] |= (uint64_t)v >> (64 - s);
    }
}

kaffe_status_t ack_tracker_snapshot(ack_tracker_t *t, ack_snapshot_t *snap) {
    /* acquire: pairs with track's release; every offset below end is tracked
     * or skipped. Read before advancing so that end >= the watermark except
     * for the transient case handled below. */
    int64_t end = atomic_load_explicit(&t->tracked_end, memory_order_acquire);
    int64_t wm = ack_tracker_advance(t);
    if (end < wm) {
        /* advance passed skip bits whose tracked_end was not published yet. */
        end = wm;
    }
    size_t count = (size_t)(end - wm);
    kaffe_status_t st = ack__snapshot_reserve(snap, count);
    if (st != KAFFE_OK) {
        snap->watermark = snap->end = wm;
        snap->bit_count = 0;
        return st;
    }
    snap->watermark = wm;
    snap->end = end;
    snap->bit_count = count;
    for (int64_t w = wm >> WORD_SHIFT; count && w <= (end - 1) >> WORD_SHIFT; w++) {
        /* acquire: as in advance. Slots in [wm, end) are not recycled while
         * we read: only this thread recycles. */
        uint64_t cur = atomic_load_explicit(&t->words[(uint64_t)w & t->mask], memory_order_acquire);
        int64_t lo = w << WORD_SHIFT > wm ? w << WORD_SHIFT : wm;
        int64_t hi = (w + 1) << WORD_SHIFT < end ? (w + 1) << WORD_SHIFT : end;
        uint32_t bits = (uint32_t)cur >> (lo - (w << WORD_SHIFT));
        bits &= low_mask((unsigned)(hi - lo));
        if (bits) {
            put_bits(snap->bits, (size_t)(lo - wm), bits);
        }
    }
    return KAFFE_OK;
}

void ack_snapshot_free(ack_snapshot_t *snap) {
    free(snap->bits);
    memset(snap, 0, sizeof *snap);
}

bool ack_snapshot_is_done(const ack_snapshot_t *snap, int64_t o) {
    if (o < snap->watermark || o >= snap->watermark + (int64_t)snap->bit_count) {
        return false;
    }
    size_t i = (size_t)(o - snap->watermark);
    return (snap->bits[i / 64] >> (i % 64)) & 1;
}
