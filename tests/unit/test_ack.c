/* The ack tracker, single-threaded behaviour (tests/race/race_ack.c has the
 * concurrent cases). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "ack/ack.h"

static void shuffle(int64_t *a, size_t n, unsigned *seed) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rand_r(seed) % i;
        int64_t tmp = a[i - 1];
        a[i - 1] = a[j];
        a[j] = tmp;
    }
}

/* Every offset in [from, to) done in snap exactly when expected says so. */
static void assert_snapshot_matches(ack_tracker_t *t, const bool *acked, int64_t base) {
    ack_snapshot_t snap = {0};
    cr_assert_eq(ack_tracker_snapshot(t, &snap), KAFFE_OK);
    for (int64_t o = snap.watermark; o < snap.end; o++) {
        cr_assert_eq(ack_snapshot_is_done(&snap, o), acked[o - base], "offset %lld", (long long)o);
    }
    ack_snapshot_free(&snap);
}

Test(ack, a_new_tracker_starts_at_its_start_offset) {
    ack_tracker_t *t = ack_tracker_new(1000, 64);
    cr_assert_not_null(t);
    cr_assert_eq(ack_tracker_watermark(t), 1000);
    cr_assert_eq(ack_tracker_tracked_end(t), 1000);
    cr_assert_eq(ack_tracker_pending(t), 0);
    cr_assert_eq(ack_tracker_advance(t), 1000);
    ack_tracker_destroy(t);
}

Test(ack, a_negative_start_offset_is_refused) {
    cr_assert_null(ack_tracker_new(-1, 64));
}

Test(ack, acks_in_order_move_the_watermark_one_by_one) {
    ack_tracker_t *t = ack_tracker_new(0, 256);
    for (int64_t o = 0; o < 200; o++) {
        cr_assert_eq(ack_tracker_track(t, o), KAFFE_OK);
    }
    cr_assert_eq(ack_tracker_pending(t), 200);
    for (int64_t o = 0; o < 200; o++) {
        cr_assert_eq(ack_tracker_ack(t, o), KAFFE_OK);
        cr_assert_eq(ack_tracker_advance(t), o + 1);
    }
    cr_assert_eq(ack_tracker_pending(t), 0);
    ack_tracker_destroy(t);
}

Test(ack, the_watermark_never_passes_an_unacked_offset) {
    enum { N = 4096 };
    ack_tracker_t *t = ack_tracker_new(7, N + 64);
    int64_t order[N];
    bool acked[N] = {false};
    for (int64_t i = 0; i < N; i++) {
        cr_assert_eq(ack_tracker_track(t, 7 + i), KAFFE_OK);
        order[i] = 7 + i;
    }
    unsigned seed = 42;
    shuffle(order, N, &seed);
    int64_t lowest_unacked = 7;
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(ack_tracker_ack(t, order[i]), KAFFE_OK);
        acked[order[i] - 7] = true;
        while (lowest_unacked < 7 + N && acked[lowest_unacked - 7]) {
            lowest_unacked++;
        }
        if (i % 7 == 0 || i == N - 1) {
            cr_assert_eq(ack_tracker_advance(t), lowest_unacked, "after %zu acks", i + 1);
        }
    }
    cr_assert_eq(ack_tracker_watermark(t), 7 + N);
    ack_tracker_destroy(t);
}

Test(ack, skipped_offsets_count_as_done) {
    ack_tracker_t *t = ack_tracker_new(10, 64);
    cr_assert_eq(ack_tracker_track(t, 10), KAFFE_OK);
    cr_assert_eq(ack_tracker_track(t, 15), KAFFE_OK); /* 11..14 skipped */
    cr_assert_eq(ack_tracker_track(t, 50), KAFFE_OK); /* 16..49 skipped, across a word */
    cr_assert_eq(ack_tracker_tracked_end(t), 51);
    cr_assert_eq(ack_tracker_ack(t, 15), KAFFE_OK);
    cr_assert_eq(ack_tracker_advance(t), 10, "10 is not acked");
    cr_assert_eq(ack_tracker_ack(t, 10), KAFFE_OK);
    cr_assert_eq(ack_tracker_advance(t), 50, "over the gaps up to 50");
    cr_assert_eq(ack_tracker_ack(t, 50), KAFFE_OK);
    cr_assert_eq(ack_tracker_advance(t), 51);
    ack_tracker_destroy(t);
}

Test(ack, acking_a_skipped_offset_is_untracked_not_duplicate) {
    ack_tracker_t *t = ack_tracker_new(0, 64);
    cr_assert_eq(ack_tracker_track(t, 0), KAFFE_OK);
    cr_assert_eq(ack_tracker_track(t, 40), KAFFE_OK);
    cr_assert_eq(ack_tracker_ack(t, 3), KAFFE_ERR_ACK_UNTRACKED);
    cr_assert_eq(ack_tracker_ack(t, 39), KAFFE_ERR_ACK_UNTRACKED);
    cr_assert_eq(ack_tracker_ack(t, 40), KAFFE_OK);
    cr_assert_eq(ack_tracker_ack(t, 40), KAFFE_ERR_ACK_DUPLICATE);
    cr_assert_eq(ack_tracker_ack(t, 0), KAFFE_OK);
    cr_assert_eq(ack_tracker_advance(t), 41);
    cr_assert_eq(ack_tracker_ack(t, 3), KAFFE_ERR_ACK_STALE, "passed by the watermark now");
    ack_tracker_destroy(t);
}

Test(ack, a_full_window_is_refused_until_advance_frees_it) {
    ack_tracker_t *t = ack_tracker_new(0, 64);
    for (int64_t o = 0; o < 64; o++) {
        cr_assert_eq(ack_tracker_track(t, o), KAFFE_OK);
    }
    cr_assert_eq(ack_tracker_track(t, 64), KAFFE_ERR_WINDOW_FULL);
    cr_assert_eq(ack_tracker_tracked_end(t), 64, "a refused track changes nothing");
    cr_assert_eq(ack_tracker_ack(t, 64), KAFFE_ERR_ACK_UNTRACKED);
    for (int64_t o = 0; o < 31; o++) {
        cr_assert_eq(ack_tracker_ack(t, o), KAFFE_OK);
    }
    cr_assert_eq(ack_tracker_advance(t), 31);
    cr_assert_eq(ack_tracker_track(t, 64), KAFFE_ERR_WINDOW_FULL,
                 "room comes a word (32 offsets) at a time");
    cr_assert_eq(ack_tracker_ack(t, 31), KAFFE_OK);
    cr_assert_eq(ack_tracker_advance(t), 32);
    for (int64_t o = 64; o < 96; o++) {
        cr_assert_eq(ack_tracker_track(t, o), KAFFE_OK);
    }
    cr_assert_eq(ack_tracker_track(t, 96), KAFFE_ERR_WINDOW_FULL);
    ack_tracker_destroy(t);
}

Test(ack, capacity_is_rounded_up_to_a_power_of_two_of_at_least_64) {
    ack_tracker_t *t = ack_tracker_new(0, 100);
    for (int64_t o = 0; o < 128; o++) {
        cr_assert_eq(ack_tracker_track(t, o), KAFFE_OK);
    }
    cr_assert_eq(ack_tracker_track(t, 128), KAFFE_ERR_WINDOW_FULL);
    ack_tracker_destroy(t);
    t = ack_tracker_new(0, 1);
    for (int64_t o = 0; o < 64; o++) {
        cr_assert_eq(ack_tracker_track(t, o), KAFFE_OK);
    }
    cr_assert_eq(ack_tracker_track(t, 64), KAFFE_ERR_WINDOW_FULL);
    ack_tracker_destroy(t);
}

Test(ack, a_gap_longer_than_the_window_is_crossed_by_retrying_after_advance) {
    ack_tracker_t *t = ack_tracker_new(0, 64);
    cr_assert_eq(ack_tracker_track(t, 0), KAFFE_OK);
    int64_t far = 100000;
    int rounds = 0;
    kaffe_status_t st;
    while ((st = ack_tracker_track(t, far)) == KAFFE_ERR_WINDOW_FULL) {
        cr_assert_lt(ack_tracker_watermark(t), far);
        if (rounds == 0) {
            cr_assert_eq(ack_tracker_advance(t), 0, "offset 0 is not acked");
            cr_assert_eq(ack_tracker_ack(t, 0), KAFFE_OK);
        }
        ack_tracker_advance(t);
        cr_assert_lt(++rounds, 10000);
    }
    cr_assert_eq(st, KAFFE_OK);
    cr_assert_eq(ack_tracker_advance(t), far, "everything below the far offset was a gap");
    cr_assert_eq(ack_tracker_ack(t, far), KAFFE_OK);
    cr_assert_eq(ack_tracker_advance(t), far + 1);
    ack_tracker_destroy(t);
}

Test(ack, the_window_wraps_around_over_a_thousand_windows) {
    enum { CAP = 128, WINDOWS = 1000 };
    ack_tracker_t *t = ack_tracker_new(3, CAP);
    unsigned seed = 7;
    int64_t next = 3;
    int64_t batch[CAP];
    int64_t refused = -1; /* an offset the full window refused: retried first */
    for (int w = 0; w < WINDOWS; w++) {
        /* Track as much as fits (up to a full window), with a gap now and then. */
        size_t n = 0;
        while (n < CAP) {
            int64_t o = refused >= 0 ? refused : next + (rand_r(&seed) % 50 == 0 ? 3 : 0);
            kaffe_status_t st = ack_tracker_track(t, o);
            if (st == KAFFE_ERR_WINDOW_FULL) {
                refused = o;
                break;
            }
            cr_assert_eq(st, KAFFE_OK);
            refused = -1;
            batch[n++] = o;
            next = o + 1;
        }
        cr_assert_gt(n, 0);
        shuffle(batch, n, &seed);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(ack_tracker_ack(t, batch[i]), KAFFE_OK);
            if (i + 1 < n) {
                cr_assert_lt(ack_tracker_advance(t), next, "not everything is acked yet");
            }
        }
        /* Up to the last tracked offset, or past it over a refused gap's
         * skipped part. */
        int64_t end = ack_tracker_tracked_end(t);
        cr_assert(end == next || (refused > next && end <= refused));
        cr_assert_eq(ack_tracker_advance(t), end, "window %d", w);
    }
    cr_assert_gt(next, (int64_t)CAP * WINDOWS / 2);
    ack_tracker_destroy(t);
}

Test(ack, duplicate_stale_and_untracked_acks_return_their_codes_and_change_nothing) {
    ack_tracker_t *t = ack_tracker_new(100, 64);
    bool acked[64] = {false};
    for (int64_t o = 100; o < 140; o++) {
        cr_assert_eq(ack_tracker_track(t, o), KAFFE_OK);
    }
    int64_t done[] = {100, 101, 105, 139};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(ack_tracker_ack(t, done[i]), KAFFE_OK);
        acked[done[i] - 100] = true;
    }
    cr_assert_eq(ack_tracker_advance(t), 102);
    acked[0] = acked[1] = false; /* below the watermark: not in snapshots */
    assert_snapshot_matches(t, acked, 100);

    cr_assert_eq(ack_tracker_ack(t, 105), KAFFE_ERR_ACK_DUPLICATE);
    cr_assert_eq(ack_tracker_ack(t, 139), KAFFE_ERR_ACK_DUPLICATE);
    cr_assert_eq(ack_tracker_ack(t, 101), KAFFE_ERR_ACK_STALE);
    cr_assert_eq(ack_tracker_ack(t, 99), KAFFE_ERR_ACK_STALE);
    cr_assert_eq(ack_tracker_ack(t, -5), KAFFE_ERR_ACK_STALE);
    cr_assert_eq(ack_tracker_ack(t, 140), KAFFE_ERR_ACK_UNTRACKED);
    cr_assert_eq(ack_tracker_ack(t, 1000000), KAFFE_ERR_ACK_UNTRACKED);
    cr_assert_eq(ack_tracker_ack(t, INT64_MAX), KAFFE_ERR_ACK_UNTRACKED);

    cr_assert_eq(ack_tracker_advance(t), 102);
    cr_assert_eq(ack_tracker_tracked_end(t), 140);
    assert_snapshot_matches(t, acked, 100);
    ack_tracker_destroy(t);
}

Test(ack, a_stale_ack_after_its_word_was_recycled_is_refused) {
    ack_tracker_t *t = ack_tracker_new(0, 64);
    for (int64_t o = 0; o < 64; o++) {
        cr_assert_eq(ack_tracker_track(t, o), KAFFE_OK);
        cr_assert_eq(ack_tracker_ack(t, o), KAFFE_OK);
    }
    cr_assert_eq(ack_tracker_advance(t), 64);
    cr_assert_eq(ack_tracker_track(t, 64), KAFFE_OK); /* reuses offset 0's slot */
    cr_assert_eq(ack_tracker_ack(t, 0), KAFFE_ERR_ACK_STALE);
    cr_assert_eq(ack_tracker_ack(t, 64 - 64), KAFFE_ERR_ACK_STALE);
    cr_assert_eq(ack_tracker_advance(t), 64, "64 was not acked: the stale ack did not mark it");
    ack_tracker_destroy(t);
}

Test(ack, going_backwards_is_refused) {
    ack_tracker_t *t = ack_tracker_new(50, 64);
    cr_assert_eq(ack_tracker_track(t, 49), KAFFE_ERR_OFFSET_BACKWARDS);
    cr_assert_eq(ack_tracker_track(t, 52), KAFFE_OK);
    cr_assert_eq(ack_tracker_track(t, 52), KAFFE_ERR_OFFSET_BACKWARDS, "the same offset twice");
    cr_assert_eq(ack_tracker_track(t, 51), KAFFE_ERR_OFFSET_BACKWARDS);
    cr_assert_eq(ack_tracker_tracked_end(t), 53);
    ack_tracker_destroy(t);
}

Test(ack, reset_forgets_everything) {
    ack_tracker_t *t = ack_tracker_new(0, 64);
    for (int64_t o = 0; o < 64; o++) {
        cr_assert_eq(ack_tracker_track(t, o), KAFFE_OK);
    }
    cr_assert_eq(ack_tracker_ack(t, 0), KAFFE_OK);
    cr_assert_eq(ack_tracker_ack(t, 5), KAFFE_OK);
    ack_tracker_reset(t, 3);
    cr_assert_eq(ack_tracker_watermark(t), 3);
    cr_assert_eq(ack_tracker_tracked_end(t), 3);
    cr_assert_eq(ack_tracker_ack(t, 5), KAFFE_ERR_ACK_UNTRACKED);
    cr_assert_eq(ack_tracker_track(t, 3), KAFFE_OK, "rewound");
    cr_assert_eq(ack_tracker_track(t, 5), KAFFE_OK);
    cr_assert_eq(ack_tracker_ack(t, 5), KAFFE_OK, "the old ack of 5 is gone");
    cr_assert_eq(ack_tracker_advance(t), 3);
    cr_assert_eq(ack_tracker_ack(t, 3), KAFFE_OK);
    cr_assert_eq(ack_tracker_advance(t), 6);

    ack_tracker_reset(t, 1000000); /* forward, far */
    cr_assert_eq(ack_tracker_track(t, 1000000), KAFFE_OK);
    cr_assert_eq(ack_tracker_ack(t, 1000000), KAFFE_OK);
    cr_assert_eq(ack_tracker_advance(t), 1000001);
    ack_tracker_destroy(t);
}

Test(ack, snapshot_holds_the_done_offsets_above_the_watermark) {
    ack_tracker_t *t = ack_tracker_new(30, 256);
    bool acked[200] = {false};
    for (int64_t o = 30; o < 230; o++) {
        cr_assert_eq(ack_tracker_track(t, o), KAFFE_OK);
    }
    unsigned seed = 3;
    for (int64_t o = 31; o < 230; o++) {
        if (rand_r(&seed) % 3 == 0) {
            cr_assert_eq(ack_tracker_ack(t, o), KAFFE_OK);
            acked[o - 30] = true;
        }
    }
    ack_snapshot_t snap = {0};
    cr_assert_eq(ack_tracker_snapshot(t, &snap), KAFFE_OK);
    cr_assert_eq(snap.watermark, 30);
    cr_assert_eq(snap.end, 230);
    cr_assert_eq(snap.bit_count, 200);
    for (int64_t o = 0; o < 300; o++) {
        bool want = o >= 30 && o < 230 && acked[o - 30];
        cr_assert_eq(ack_snapshot_is_done(&snap, o), want, "offset %lld", (long long)o);
    }
    /* Reused buffer after the watermark moved. */
    cr_assert_eq(ack_tracker_ack(t, 30), KAFFE_OK);
    cr_assert_eq(ack_tracker_snapshot(t, &snap), KAFFE_OK);
    cr_assert_gt(snap.watermark, 30);
    cr_assert_eq(ack_snapshot_is_done(&snap, snap.watermark), false);
    for (int64_t o = snap.watermark; o < 230; o++) {
        cr_assert_eq(ack_snapshot_is_done(&snap, o), acked[o - 30]);
    }
    ack_snapshot_free(&snap);
    ack_tracker_destroy(t);
}

Test(ack, memory_is_three_bits_per_offset_plus_a_header) {
    /* 64-bit word (32 done bits + 32-bit tag) and a 32-bit skip word per 32
     * offsets. */
    ack_tracker_t *t = ack_tracker_new(0, 65536);
    size_t bytes = ack_tracker_memory(t);
    cr_assert_geq(bytes, 65536 * 3 / 8);
    cr_assert_leq(bytes, 65536 * 3 / 8 + 256, "got %zu", bytes);
    ack_tracker_destroy(t);
}
