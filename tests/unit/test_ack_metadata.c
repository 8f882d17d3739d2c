/* The commit-metadata codec: round trips, the byte budget, and garbage that
 * must always decode as "replay everything". */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ack/ack.h"

#define BUDGET 4096

/* A snapshot at base with bit_count bits, none set. */
static ack_snapshot_t make_snapshot(int64_t base, size_t bit_count) {
    ack_snapshot_t snap = {
        .watermark = base, .end = base + (int64_t)bit_count, .bit_count = bit_count};
    snap.bits_capacity = (bit_count + 63) / 64 + 1;
    snap.bits = calloc(snap.bits_capacity, sizeof *snap.bits);
    return snap;
}

static void set_done(ack_snapshot_t *snap, size_t i) {
    snap->bits[i / 64] |= (uint64_t)1 << (i % 64);
}

static bool is_set(const ack_snapshot_t *snap, size_t i) {
    return (snap->bits[i / 64] >> (i % 64)) & 1;
}

/* Decoded says done exactly for the offsets src says done (the base itself
 * excepted: it is never encoded as done), within the decoded span. When
 * complete, the span covers every done offset of src. */
static void assert_same_set(const ack_snapshot_t *src, const ack_snapshot_t *got, bool complete) {
    cr_assert_eq(got->watermark, src->watermark);
    cr_assert_eq(got->end, got->watermark + (int64_t)got->bit_count);
    for (size_t i = 0; i < src->bit_count; i++) {
        int64_t o = src->watermark + (int64_t)i;
        bool want = i > 0 && is_set(src, i);
        if (i >= got->bit_count) {
            cr_assert(!complete || !want, "offset %lld missing from a complete encoding",
                      (long long)o);
            cr_assert_eq(ack_snapshot_is_done(got, o), false);
            continue;
        }
        cr_assert_eq(ack_snapshot_is_done(got, o), want, "offset %lld", (long long)o);
    }
}

/* Encodes src within budget, decodes it back, compares. Returns the length. */
static size_t round_trip(const ack_snapshot_t *src, size_t budget, bool expect_complete) {
    char *text = malloc(budget);
    bool complete = !expect_complete;
    size_t len = ack_metadata_encode(src, text, budget, &complete);
    cr_assert_eq(complete, expect_complete, "complete");
    cr_assert_lt(len, budget);
    cr_assert_eq(strlen(text), len);
    for (size_t i = 0; i < len; i++) {
        cr_assert(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", text[i]),
            "printable base64url at %zu", i);
    }
    ack_snapshot_t got = {0};
    cr_assert_eq(ack_metadata_decode(text, len, src->watermark, &got), KAFFE_OK, "%s", text);
    assert_same_set(src, &got, complete);
    ack_snapshot_free(&got);
    free(text);
    return len;
}

static void assert_replay(const char *text, size_t len, int64_t committed) {
    ack_snapshot_t got = make_snapshot(5, 100); /* a used buffer: must come back empty */
    set_done(&got, 7);
    cr_assert_eq(ack_metadata_decode(text, len, committed, &got), KAFFE_ERR_INVALID_ARG,
                 "accepted: %.*s", (int)len, text);
    cr_assert_eq(got.watermark, committed);
    cr_assert_eq(got.end, committed);
    cr_assert_eq(got.bit_count, 0);
    cr_assert_eq(ack_snapshot_is_done(&got, committed + 7), false);
    ack_snapshot_free(&got);
}

/* A valid-looking payload built by hand: "k1" + base64url(bytes + crc). */
static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t hand_made(char *out, const uint8_t *payload, size_t n) {
    uint8_t buf[256];
    memcpy(buf, payload, n);
    uint32_t crc = crc32_ieee(payload, n);
    for (int k = 0; k < 4; k++) {
        buf[n++] = (uint8_t)(crc >> (8 * k));
    }
    size_t pos = 0;
    out[pos++] = 'k';
    out[pos++] = '1';
    for (size_t i = 0; i < n; i += 3) {
        uint32_t acc = (uint32_t)buf[i] << 16;
        size_t have = n - i < 3 ? n - i : 3;
        if (have > 1) {
            acc |= (uint32_t)buf[i + 1] << 8;
        }
        if (have > 2) {
            acc |= buf[i + 2];
        }
        for (size_t c = 0; c < have + 1; c++) {
            out[pos++] = alphabet[(acc >> (18 - 6 * c)) & 63];
        }
    }
    out[pos] = '\0';
    return pos;
}

Test(ack_metadata, nothing_done_encodes_as_empty_text_and_decodes_as_nothing_done) {
    ack_snapshot_t snap = make_snapshot(42, 1000);
    char text[BUDGET];
    bool complete = false;
    cr_assert_eq(ack_metadata_encode(&snap, text, sizeof text, &complete), 0);
    cr_assert_str_eq(text, "");
    cr_assert(complete);
    set_done(&snap, 0); /* the base itself is never encoded as done */
    cr_assert_eq(ack_metadata_encode(&snap, text, sizeof text, &complete), 0);
    cr_assert(complete);
    ack_snapshot_t got = {0};
    cr_assert_eq(ack_metadata_decode("", 0, 42, &got), KAFFE_OK);
    cr_assert_eq(got.watermark, 42);
    cr_assert_eq(got.bit_count, 0);
    ack_snapshot_free(&got);
    ack_snapshot_free(&snap);
}

Test(ack_metadata, random_sets_round_trip) {
    unsigned seed = 1;
    for (int round = 0; round < 300; round++) {
        size_t count = 1 + (size_t)rand_r(&seed) % 3000;
        int density = rand_r(&seed) % 101; /* percent */
        int64_t base = round % 3 == 0 ? rand_r(&seed) : (int64_t)rand_r(&seed) << 24;
        ack_snapshot_t snap = make_snapshot(base, count);
        for (size_t i = 0; i < count; i++) {
            if (rand_r(&seed) % 100 < density) {
                set_done(&snap, i);
            }
        }
        round_trip(&snap, BUDGET, true);
        ack_snapshot_free(&snap);
    }
}

Test(ack_metadata, a_dense_set_fits_as_a_bitmap) {
    /* 50% random over 24000 offsets: run-length would need ~12000 pairs
     * (>= 24000 bytes); the bitmap is 3000 bytes, 4000 characters. */
    unsigned seed = 9;
    ack_snapshot_t snap = make_snapshot(1000000, 24000);
    for (size_t i = 1; i < 24000; i++) {
        if (rand_r(&seed) % 2) {
            set_done(&snap, i);
        }
    }
    set_done(&snap, 23999);
    size_t len = round_trip(&snap, BUDGET, true);
    cr_assert_lt(len, 4020, "got %zu", len); /* 3000 + ~10 bytes, in base64 */
    ack_snapshot_free(&snap);
}

Test(ack_metadata, everything_done_but_the_base_is_a_few_bytes) {
    ack_snapshot_t snap = make_snapshot(77, 65536);
    for (size_t i = 1; i < 65536; i++) {
        set_done(&snap, i);
    }
    size_t len = round_trip(&snap, BUDGET, true);
    cr_assert_lt(len, 24, "got %zu", len);
    ack_snapshot_free(&snap);
}

Test(ack_metadata, a_sparse_set_is_run_length_encoded) {
    ack_snapshot_t snap = make_snapshot(5, 1 << 20);
    for (size_t i = 1000; i < (1 << 20); i += 100000) {
        set_done(&snap, i);
    }
    size_t len = round_trip(&snap, BUDGET, true);
    cr_assert_lt(len, 80, "got %zu", len);
    ack_snapshot_free(&snap);
}

Test(ack_metadata, long_runs_round_trip) {
    ack_snapshot_t snap = make_snapshot(INT64_C(1) << 40, 1 << 22);
    for (size_t i = 3; i < 200000; i++) {
        set_done(&snap, i);
    }
    for (size_t i = 1000000; i < (1 << 22) - 1; i++) {
        set_done(&snap, i);
    }
    size_t len = round_trip(&snap, BUDGET, true);
    cr_assert_lt(len, 40, "got %zu", len);
    ack_snapshot_free(&snap);
}

Test(ack_metadata, past_the_budget_the_longest_prefix_is_encoded_and_decodes) {
    unsigned seed = 5;
    ack_snapshot_t snap = make_snapshot(123456, 100000);
    for (size_t i = 1; i < 100000; i++) {
        if (rand_r(&seed) % 2) {
            set_done(&snap, i);
        }
    }
    set_done(&snap, 99999);
    char text[BUDGET];
    bool complete = true;
    size_t len = ack_metadata_encode(&snap, text, sizeof text, &complete);
    cr_assert_not(complete);
    cr_assert_gt(len, BUDGET - 8, "uses the budget: %zu", len);
    cr_assert_lt(len, BUDGET);
    ack_snapshot_t got = {0};
    cr_assert_eq(ack_metadata_decode(text, len, 123456, &got), KAFFE_OK);
    cr_assert_gt(got.bit_count, 3000 * 8 - 64, "a bitmap prefix: %zu", got.bit_count);
    assert_same_set(&snap, &got, false);
    ack_snapshot_free(&got);

    /* Every budget, tiny to large, is respected and decodable. */
    for (size_t budget = 0; budget < 700; budget += 1 + budget / 16) {
        char small[700];
        complete = true;
        len = ack_metadata_encode(&snap, small, budget, &complete);
        cr_assert_not(complete);
        if (budget > 0) {
            cr_assert_lt(len, budget);
            cr_assert_eq(strlen(small), len);
        }
        if (len > 0) {
            cr_assert_eq(ack_metadata_decode(small, len, 123456, &got), KAFFE_OK);
            assert_same_set(&snap, &got, false);
        }
    }
    ack_snapshot_free(&got);
    ack_snapshot_free(&snap);
}

Test(ack_metadata, a_tracker_snapshot_round_trips) {
    ack_tracker_t *t = ack_tracker_new(500, 4096);
    unsigned seed = 11;
    for (int64_t o = 500; o < 4500; o++) {
        cr_assert_eq(ack_tracker_track(t, o + (o > 3000 ? 3 : 0)), KAFFE_OK);
        if (o > 3000) {
            o += 3;
        }
    }
    for (int64_t o = 501; o < 4503; o++) {
        if (rand_r(&seed) % 4 == 0) {
            kaffe_status_t st = ack_tracker_ack(t, o);
            cr_assert(st == KAFFE_OK || st == KAFFE_ERR_ACK_UNTRACKED);
        }
    }
    ack_snapshot_t snap = {0};
    cr_assert_eq(ack_tracker_snapshot(t, &snap), KAFFE_OK);
    round_trip(&snap, BUDGET, true);
    ack_snapshot_free(&snap);
    ack_tracker_destroy(t);
}

Test(ack_metadata, a_wrong_base_offset_means_replay) {
    ack_snapshot_t snap = make_snapshot(1000, 100);
    set_done(&snap, 10);
    char text[BUDGET];
    size_t len = ack_metadata_encode(&snap, text, sizeof text, NULL);
    cr_assert_gt(len, 0);
    assert_replay(text, len, 999);
    assert_replay(text, len, 1001);
    assert_replay(text, len, 0);
    assert_replay(text, len, -1);
    ack_snapshot_free(&snap);
}

Test(ack_metadata, an_unknown_version_means_replay) {
    ack_snapshot_t snap = make_snapshot(1000, 100);
    set_done(&snap, 10);
    char text[BUDGET];
    size_t len = ack_metadata_encode(&snap, text, sizeof text, NULL);
    cr_assert_eq(text[0], 'k');
    cr_assert_eq(text[1], '1');
    text[1] = '2';
    assert_replay(text, len, 1000);
    text[1] = '1';
    text[0] = 'K';
    assert_replay(text, len, 1000);
    ack_snapshot_free(&snap);
}

Test(ack_metadata, every_truncation_of_a_valid_payload_means_replay) {
    unsigned seed = 2;
    for (int density = 5; density <= 95; density += 45) {
        ack_snapshot_t snap = make_snapshot(31337, 2000);
        for (size_t i = 1; i < 2000; i++) {
            if (rand_r(&seed) % 100 < density) {
                set_done(&snap, i);
            }
        }
        char text[BUDGET];
        size_t len = ack_metadata_encode(&snap, text, sizeof text, NULL);
        cr_assert_gt(len, 10);
        for (size_t cut = 1; cut < len; cut++) {
            assert_replay(text, cut, 31337);
        }
        ack_snapshot_free(&snap);
    }
}

Test(ack_metadata, any_single_character_changed_means_replay) {
    ack_snapshot_t snap = make_snapshot(8, 300);
    for (size_t i = 1; i < 300; i += 3) {
        set_done(&snap, i);
    }
    char text[BUDGET];
    size_t len = ack_metadata_encode(&snap, text, sizeof text, NULL);
    for (size_t at = 2; at < len; at++) {
        char was = text[at];
        for (const char *c = "AQgw_-9z+/= .\x01"; *c; c++) {
            if (*c != was) {
                text[at] = *c;
                assert_replay(text, len, 8);
            }
        }
        text[at] = was;
    }
    ack_snapshot_free(&snap);
}

Test(ack_metadata, random_bytes_mean_replay) {
    unsigned seed = 77;
    char text[600];
    for (int round = 0; round < 20000; round++) {
        size_t len = 1 + (size_t)rand_r(&seed) % (sizeof text - 1);
        bool from_alphabet = round % 2;
        for (size_t i = 0; i < len; i++) {
            text[i] = from_alphabet ? alphabet[rand_r(&seed) % 64] : (char)(rand_r(&seed) % 256);
        }
        if (round % 4 < 2) {
            text[0] = 'k';
            if (len > 1) {
                text[1] = '1';
            }
        }
        assert_replay(text, len, rand_r(&seed) % 4 ? 0 : rand_r(&seed));
    }
}

Test(ack_metadata, a_nul_inside_the_text_means_replay) {
    ack_snapshot_t snap = make_snapshot(8, 300);
    set_done(&snap, 100);
    char text[BUDGET];
    size_t len = ack_metadata_encode(&snap, text, sizeof text, NULL);
    text[len / 2] = '\0';
    assert_replay(text, len, 8);
    ack_snapshot_free(&snap);
}

Test(ack_metadata, well_formed_but_inconsistent_payloads_mean_replay) {
    char text[400];
    uint8_t p[200];
    size_t n;

    /* Sanity: the hand-made encoder makes payloads the decoder accepts. */
    n = 0;
    p[n++] = 0;                   /* runs */
    n += put_varint(p + n, 1000); /* base */
    n += put_varint(p + n, 10);   /* span */
    n += put_varint(p + n, 2);    /* gap */
    n += put_varint(p + n, 8);    /* run */
    ack_snapshot_t got = {0};
    cr_assert_eq(ack_metadata_decode(text, hand_made(text, p, n), 1000, &got), KAFFE_OK);
    cr_assert(ack_snapshot_is_done(&got, 1002));
    cr_assert_not(ack_snapshot_is_done(&got, 1001));
    ack_snapshot_free(&got);

    struct {
        const char *why;
        uint8_t mode;
        uint64_t base, span;
        uint64_t body[6];
        size_t body_len;
    } cases[] = {
        {"absurd span", 0, 1000, UINT64_C(1) << 40, {1, (UINT64_C(1) << 40) - 1}, 2},
        {"span past the limit", 0, 1000, ACK_METADATA_MAX_SPAN + 1, {1, ACK_METADATA_MAX_SPAN}, 2},
        {"zero span", 0, 1000, 0, {0}, 0},
        {"runs short of the span", 0, 1000, 10, {2, 5}, 2},
        {"runs past the span", 0, 1000, 10, {2, 9}, 2},
        {"the base marked done", 0, 1000, 10, {0, 10}, 2},
        {"a zero run", 0, 1000, 10, {2, 0, 1, 7}, 4},
        {"a zero gap", 0, 1000, 10, {2, 3, 0, 5}, 4},
        {"a dangling gap", 0, 1000, 10, {2, 8, 3}, 3},
        {"unknown mode", 2, 1000, 10, {2, 8}, 2},
        {"bitmap too short", 1, 1000, 20, {0xfe, 0xff}, 2},
        {"bitmap too long", 1, 1000, 8, {0xfe, 0x01}, 2},
        {"bitmap bits past the span", 1, 1000, 4, {0x12}, 1},
        {"bitmap base marked done", 1, 1000, 8, {0x03}, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        n = 0;
        p[n++] = cases[c].mode;
        n += put_varint(p + n, cases[c].base);
        n += put_varint(p + n, cases[c].span);
        for (size_t i = 0; i < cases[c].body_len; i++) {
            if (cases[c].mode == 1) {
                p[n++] = (uint8_t)cases[c].body[i];
            } else {
                n += put_varint(p + n, cases[c].body[i]);
            }
        }
        cr_log_info("case: %s", cases[c].why);
        assert_replay(text, hand_made(text, p, n), 1000);
    }

    /* A non-canonical varint (1000 as 3 bytes). */
    n = 0;
    p[n++] = 0;
    p[n++] = 0xe8;
    p[n++] = 0x87;
    p[n++] = 0x00;
    n += put_varint(p + n, 10);
    n += put_varint(p + n, 2);
    n += put_varint(p + n, 8);
    assert_replay(text, hand_made(text, p, n), 1000);

    /* A varint longer than 64 bits. */
    n = 0;
    p[n++] = 0;
    for (int i = 0; i < 11; i++) {
        p[n++] = 0xff;
    }
    p[n++] = 0x01;
    assert_replay(text, hand_made(text, p, n), 1000);

    /* A wrong checksum. */
    n = 0;
    p[n++] = 0;
    n += put_varint(p + n, 1000);
    n += put_varint(p + n, 10);
    n += put_varint(p + n, 2);
    n += put_varint(p + n, 8);
    size_t len = hand_made(text, p, n);
    text[len - 2] = text[len - 2] == 'A' ? 'B' : 'A';
    assert_replay(text, len, 1000);
}

/* Found by fuzz/fuzz_ack_metadata (UBSan: signed overflow computing the
 * decoded end): a well-formed payload whose base + span passes INT64_MAX.
 * The text is the encoder's output for base INT64_MAX - 10, span 64, every
 * other offset done (fuzz/corpus/ack_metadata/past_int64_max.text). */
Test(ack_metadata, a_span_past_int64_max_means_replay) {
    static const char past[] = "k1AfX_________f0Cqqqqqqqqqqrkai74";
    ack_snapshot_t got = {0};
    cr_assert_eq(ack_metadata_decode(past, strlen(past), INT64_MAX - 10, &got),
                 KAFFE_ERR_INVALID_ARG);
    cr_assert_eq(got.watermark, INT64_MAX - 10);
    cr_assert_eq(got.end, INT64_MAX - 10);
    cr_assert_eq(got.bit_count, 0);

    /* Just below the limit still decodes (base INT64_MAX - 1000, span 64). */
    static const char near[] = "k1AZf4________f0CqqqqqqqqqqiHFBnw";
    cr_assert_eq(ack_metadata_decode(near, strlen(near), INT64_MAX - 1000, &got), KAFFE_OK);
    cr_assert_eq(got.end, INT64_MAX - 1000 + 64);
    cr_assert(ack_snapshot_is_done(&got, INT64_MAX - 1000 + 63));
    cr_assert_not(ack_snapshot_is_done(&got, INT64_MAX - 1000 + 62));
    ack_snapshot_free(&got);
}
