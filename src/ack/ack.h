/* src/ack — the ack tracker: which offsets of one partition are done, and
 * the watermark below which all are.
 *
 * One tracker per assigned partition. It keeps a ring of 64-bit words; each
 * word holds 32 "done" bits (one per offset) and a 32-bit cycle tag naming
 * which block of 32 offsets the word currently holds. The window is
 * [watermark rounded down to 32, that + capacity).
 *
 * Concurrency contract (who may call what at the same time):
 *
 *   operation          | callers                | may run concurrently with
 *   -------------------+------------------------+-----------------------------
 *   ack_tracker_track  | one thread (dispatcher)| ack, advance, snapshot
 *   ack_tracker_ack    | any threads            | everything but reset/destroy
 *   ack_tracker_advance| one thread (committer) | track, ack
 *   ack_tracker_snapshot| same thread as advance| track, ack
 *   ack_tracker_watermark / tracked_end | any  | everything but reset/destroy
 *   ack_tracker_reset, destroy | one thread, nothing else running on it
 *
 * "Done" means acked, or skipped by track (an offset that does not exist in
 * the log: compaction gaps, transaction markers). The watermark is the lowest
 * offset that is not done; it never passes an offset that was tracked and not
 * acked, and acks can never mark an offset of a later cycle (stale or
 * duplicate acks that race with advance fail cleanly; see ack.c). */
#ifndef KAFFE_SRC_ACK_H
#define KAFFE_SRC_ACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kaffe/error.h>

typedef struct ack_tracker ack_tracker_t;

/* A tracker whose watermark starts at start_offset (>= 0). capacity is in
 * offsets, rounded up to a power of two and at least 64. NULL on OOM. */
ack_tracker_t *ack_tracker_new(int64_t start_offset, size_t capacity);
void ack_tracker_destroy(ack_tracker_t *t);

/* Bytes of memory the tracker uses (for stats and the benchmark). */
size_t ack_tracker_memory(const ack_tracker_t *t);

/* The dispatcher saw offset o. Offsets between the previous tracked offset
 * (or the start) and o are marked done (skipped). A track inside the window
 * with no gap is one store (no shared read-modify-write). Returns:
 *   KAFFE_OK                  o is now tracked (in flight, not done);
 *   KAFFE_ERR_WINDOW_FULL     o does not fit yet (o >= window start +
 *                             capacity): o is not tracked; pause the
 *                             partition and try again after advance().
 *                             Nothing changed, except when a gap reaches
 *                             past the window: then the skipped offsets that
 *                             fit are marked done (tracked_end moves to the
 *                             window's end) — they are done whatever happens
 *                             to o — so each advance() frees room for the
 *                             rest and a retry eventually succeeds;
 *   KAFFE_ERR_OFFSET_BACKWARDS o is below the next expected offset (o <
 *                             tracked_end): nothing changed (use
 *                             ack_tracker_reset to rewind). */
kaffe_status_t ack_tracker_track(ack_tracker_t *t, int64_t o);

/* Marks o done. Lock-free (one compare-and-swap that checks the word's
 * cycle tag, retried only when another ack or track's gap marking changed the
 * same word). Returns KAFFE_OK, or, changing nothing:
 *   KAFFE_ERR_ACK_STALE      o is below the watermark (negative o included),
 *                            or its word was already recycled for a later
 *                            cycle (a late duplicate racing with advance);
 *   KAFFE_ERR_ACK_UNTRACKED  o was never tracked: at or past tracked_end, or
 *                            an offset track() skipped (a gap) that the
 *                            watermark has not passed yet;
 *   KAFFE_ERR_ACK_DUPLICATE  o was tracked and is already acked.
 * Only KAFFE_OK writes. The error cases are told apart off the hot path (a
 * few extra loads once the bit is found set). */
kaffe_status_t ack_tracker_ack(ack_tracker_t *t, int64_t o);

/* Moves the watermark over done offsets and returns the new watermark.
 * Amortised O(1) per offset (a word at a time). */
int64_t ack_tracker_advance(ack_tracker_t *t);

/* The watermark as last published by advance (acquire). */
int64_t ack_tracker_watermark(const ack_tracker_t *t);

/* One past the highest tracked offset (acquire). */
int64_t ack_tracker_tracked_end(const ack_tracker_t *t);

/* tracked_end - watermark (>= 0): an upper bound of the offsets tracked and
 * not yet done, as of the last advance (for back-pressure and stats). */
int64_t ack_tracker_pending(const ack_tracker_t *t);

/* Forgets everything; the watermark and next expected offset become
 * start_offset. Only when no other call is running on t. */
void ack_tracker_reset(ack_tracker_t *t, int64_t start_offset);

/* The committable state, taken from the advance thread: watermark and the
 * done offsets above it, up to tracked_end. Zero-initialise before first use
 * (ack_snapshot_t s = {0}); release with ack_snapshot_free. */
typedef struct ack_snapshot {
    int64_t watermark;
    int64_t end;          /* tracked_end at the time of the snapshot */
    uint64_t *bits;       /* bit i (bits[i/64] >> i%64) = offset watermark+i done */
    size_t bit_count;     /* end - watermark */
    size_t bits_capacity; /* words allocated; owned by the snapshot */
} ack_snapshot_t;

/* Advances, then fills snap (reusing its buffer). Call only from the thread
 * that calls advance. The bits are a subset of what is done by the time the
 * call returns (acks landing meanwhile may or may not be in it), which is
 * what a commit needs. KAFFE_OK, or KAFFE_ERR_NOMEM (snap then holds the new
 * watermark and no bits). */
kaffe_status_t ack_tracker_snapshot(ack_tracker_t *t, ack_snapshot_t *snap);
void ack_snapshot_free(ack_snapshot_t *snap);

/* Commit metadata codec (format: see metadata.c).
 *
 * Encodes the done offsets above the watermark as printable, base64url text
 * ("k1" + base64url of: mode, base offset, span, run-length pairs or bitmap,
 * whichever is smaller, CRC-32) of at most max_bytes bytes including the NUL.
 * If the full set does not fit, the longest prefix of the window that fits is
 * encoded (offsets past it are simply replayed) and *complete is set false.
 * The base offset itself is never encoded as done (it is the commit's next
 * offset). Allocates nothing; thread-safe on distinct outputs.
 * Returns the length written (without NUL), or 0 (out holds "" when
 * max_bytes > 0) when nothing above the watermark is done (*complete true) or
 * when not even one done offset fits (*complete false). complete may be NULL. */
size_t ack_metadata_encode(const ack_snapshot_t *snap, char *out, size_t max_bytes, bool *complete);

/* Longest span (in offsets) the decoder accepts; longer claims are garbage
 * (ack_window is at most 2^24). */
#define ACK_METADATA_MAX_SPAN ((uint64_t)1 << 26)

/* Decodes metadata committed together with committed_offset. On success
 * fills snap (watermark == committed_offset, end == watermark + bit_count;
 * snap zero-initialised or previously used) and returns KAFFE_OK; empty
 * metadata (len 0) is valid and means nothing above the offset is done. Any
 * malformed, truncated, unknown-version, bad-checksum or mismatched (base
 * offset != committed_offset, or base + span past INT64_MAX) input returns
 * KAFFE_ERR_INVALID_ARG, and an allocation failure KAFFE_ERR_NOMEM; both
 * leave snap empty (watermark ==
 * end == committed_offset, bit_count 0): the caller then replays everything
 * from committed_offset. */
kaffe_status_t ack_metadata_decode(const char *metadata, size_t len, int64_t committed_offset,
                                   ack_snapshot_t *snap);

/* Whether offset o is done in snap (false outside [watermark, end)). */
bool ack_snapshot_is_done(const ack_snapshot_t *snap, int64_t o);

#endif /* KAFFE_SRC_ACK_H */
