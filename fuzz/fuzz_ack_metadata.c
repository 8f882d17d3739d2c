/* Fuzz target: the commit-metadata decoder, ack_metadata_decode (src/ack).
 *
 * Input: one flag byte, then either the metadata text as committed (flag bit 0
 * clear) or a binary payload without its CRC (bit 0 set), which the harness
 * wraps into valid text (metadata_wire.h) so that mutations get past the
 * checksum. The committed offset is the base offset the payload names (or 0),
 * so that well-formed inputs decode. The other flag bits pick the size of a
 * short output buffer for the partial-encode check.
 *
 * Properties checked (beyond "no crash, no leak, no UB"):
 *  - a failed decode leaves the snapshot empty at the committed offset;
 *  - a successful one has watermark == committed offset, end == watermark +
 *    bit_count, and the committed offset itself not done;
 *  - round trip: encode(decode(x)) fits a buffer of 2 * len + 64, is
 *    complete, decodes again, and names exactly the same done offsets;
 *    encoding that again gives the same text (the encoder is canonical);
 *  - the same (non-empty) text with another committed offset is rejected;
 *  - encoding into a short buffer yields a prefix: every offset below the
 *    short encoding's end is done in it exactly when it is done in the full
 *    set, and it claims to be complete only if nothing done is left out. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ack/ack.h"
#include "fuzz_support.h"
#include "metadata_wire.h"

/* Reused across runs, like a consumer reuses its snapshot: the decoder must
 * clear what a previous decode left in the buffer. */
static ack_snapshot_t first, second, third;

static void check_empty(const ack_snapshot_t *s, int64_t committed) {
    FUZZ_CHECK(s->watermark == committed);
    FUZZ_CHECK(s->end == committed);
    FUZZ_CHECK(s->bit_count == 0);
}

static bool bit_at(const ack_snapshot_t *s, size_t i) {
    return i < s->bit_count && ((s->bits[i / 64] >> (i % 64)) & 1);
}

/* a and b (same watermark) agree on every offset below limit (bit index);
 * word at a time, since spans reach 2^26. */
static void check_same_below(const ack_snapshot_t *a, const ack_snapshot_t *b, size_t limit) {
    FUZZ_CHECK(a->watermark == b->watermark);
    size_t whole = limit / 64;
    for (size_t w = 0; w < whole; w++) {
        uint64_t wa = w * 64 < a->bit_count ? a->bits[w] : 0;
        uint64_t wb = w * 64 < b->bit_count ? b->bits[w] : 0;
        FUZZ_CHECK(wa == wb);
    }
    for (size_t i = whole * 64; i < limit; i++) {
        FUZZ_CHECK(bit_at(a, i) == bit_at(b, i));
    }
}

/* True when s has a done offset at or past bit index from. */
static bool any_done_from(const ack_snapshot_t *s, size_t from) {
    for (size_t i = from; i < s->bit_count; i++) {
        if (i % 64 == 0 && s->bits[i / 64] == 0) {
            i += 63;
            continue;
        }
        if (bit_at(s, i)) {
            return true;
        }
    }
    return false;
}

static void check_decoded(const char *text, size_t len, int64_t committed, unsigned short_size) {
    kaffe_status_t st = ack_metadata_decode(text, len, committed, &first);
    if (st != KAFFE_OK) {
        FUZZ_CHECK(st == KAFFE_ERR_INVALID_ARG || st == KAFFE_ERR_NOMEM);
        check_empty(&first, committed);
        return;
    }
    FUZZ_CHECK(first.watermark == committed);
    FUZZ_CHECK(first.bit_count <= ACK_METADATA_MAX_SPAN);
    FUZZ_CHECK(first.end - first.watermark == (int64_t)first.bit_count);
    FUZZ_CHECK(!ack_snapshot_is_done(&first, committed));
    FUZZ_CHECK(!ack_snapshot_is_done(&first, first.end));

    /* Round trip. */
    size_t cap = 2 * len + 64;
    char *again = malloc(cap);
    char *twice = malloc(cap);
    FUZZ_CHECK(again && twice);
    bool complete = false;
    size_t n = ack_metadata_encode(&first, again, cap, &complete);
    FUZZ_CHECK(complete);
    FUZZ_CHECK(n < cap && strlen(again) == n);
    FUZZ_CHECK(ack_metadata_decode(again, n, committed, &second) == KAFFE_OK);
    size_t longest = first.bit_count > second.bit_count ? first.bit_count : second.bit_count;
    check_same_below(&first, &second, longest);
    size_t n2 = ack_metadata_encode(&second, twice, cap, &complete);
    FUZZ_CHECK(complete && n2 == n && memcmp(again, twice, n) == 0);

    /* Bound to its committed offset (empty metadata goes with any). */
    if (len > 0 && committed < INT64_MAX) {
        FUZZ_CHECK(ack_metadata_decode(text, len, committed + 1, &third) == KAFFE_ERR_INVALID_ARG);
        check_empty(&third, committed + 1);
    }

    /* A short buffer: a prefix of the same set. */
    char small[160];
    size_t max_bytes = short_size % sizeof small;
    size_t m = ack_metadata_encode(&first, small, max_bytes, &complete);
    FUZZ_CHECK(max_bytes == 0 || m < max_bytes);
    if (m == 0) {
        FUZZ_CHECK(max_bytes == 0 || small[0] == '\0');
        FUZZ_CHECK(complete == !any_done_from(&first, 0));
    } else {
        FUZZ_CHECK(ack_metadata_decode(small, m, committed, &third) == KAFFE_OK);
        check_same_below(&first, &third, third.bit_count);
        FUZZ_CHECK(complete == !any_done_from(&first, third.bit_count));
    }
    free(again);
    free(twice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    uint8_t flags = data[0];
    data++;
    size--;
    char *text;
    size_t len;
    int64_t committed;
    if (flags & 1) {
        text = wire_wrap(data, size, &len);
        committed = wire_peek_base(data, size);
    } else {
        text = fuzz_strndup(data, size); /* keeps embedded NULs: len is size */
        len = size;
        uint8_t payload[16];
        size_t n = wire_unwrap(text, len, payload, sizeof payload);
        committed = n == (size_t)-1 ? -1 : wire_peek_base(payload, n);
    }
    if (committed < 0) {
        committed = 0;
    }
    check_decoded(text, len, committed, flags >> 1);
    free(text);
    return 0;
}
