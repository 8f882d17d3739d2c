/* src/ack — the commit-metadata codec (see ack.h for the contract).
 *
 * Text format, version 1:
 *
 *     "k1" base64url(payload)          (alphabet A-Z a-z 0-9 - _, no padding)
 *
 * payload (binary; varint = unsigned LEB128, canonical: no superfluous
 * trailing 0x80-continued zero bytes):
 *
 *     mode        1 byte: 0 = runs, 1 = bitmap
 *     base        varint: the committed offset (the watermark)
 *     span        varint: L >= 1; the payload describes offsets [base, base+L)
 *     body        runs:   pairs (varint gap, varint run): gap offsets not
 *                         done, then run offsets done; first gap >= 1 (the
 *                         base itself is never done), later gaps >= 1,
 *                         runs >= 1, the pairs add up to exactly L;
 *                 bitmap: ceil(L/8) bytes, bit i (byte i/8, bit i%8) is
 *                         offset base+i; bit 0 and bits past L are 0
 *     crc         4 bytes, little-endian CRC-32 (IEEE) of everything above
 *
 * Offsets at or past base + L are not done (they are replayed). The decoder
 * checks all of it and answers "replay everything" on any doubt. */
#include "ack/ack.h"
#include "ack/internal.h"

#include <string.h>

#define MODE_RUNS 0
#define MODE_BITMAP 1
#define HEADER_CHARS 2 /* "k1" */

static const char base64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int base64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

static uint32_t crc32_update(uint32_t crc, uint8_t byte) {
    crc ^= byte;
    for (int k = 0; k < 8; k++) {
        crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return crc;
}

static size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* ---- bit scanning over a snapshot ---------------------------------------- */

/* First index in [from, count) whose bit equals want, or count. */
static size_t next_bit(const uint64_t *bits, size_t count, size_t from, bool want) {
    while (from < count) {
        uint64_t word = bits[from / 64];
        if (!want) {
            word = ~word;
        }
        word >>= from % 64;
        if (word) {
            size_t at = from + (size_t)__builtin_ctzll(word);
            return at < count ? at : count;
        }
        from = (from / 64 + 1) * 64;
    }
    return count;
}

/* One past the last set bit below count, or 0 when none is set. */
static size_t end_of_last_set(const uint64_t *bits, size_t count) {
    size_t words = (count + 63) / 64;
    while (words > 0) {
        uint64_t word = bits[words - 1];
        size_t valid = count - (words - 1) * 64;
        if (valid < 64) {
            word &= ((uint64_t)1 << valid) - 1;
        }
        if (word) {
            return (words - 1) * 64 + 64 - (size_t)__builtin_clzll(word);
        }
        words--;
    }
    return 0;
}

/* ---- encoding -------------------------------------------------------------- */

typedef struct writer {
    char *out;
    size_t pos;
    uint32_t acc; /* pending bytes of the current 3-byte group */
    int pending;
    uint32_t crc;
} writer_t;

static void put_raw(writer_t *w, uint8_t byte) {
    w->acc = (w->acc << 8) | byte;
    if (++w->pending == 3) {
        for (int shift = 18; shift >= 0; shift -= 6) {
            w->out[w->pos++] = base64url[(w->acc >> shift) & 63];
        }
        w->acc = 0;
        w->pending = 0;
    }
}

static void put_byte(writer_t *w, uint8_t byte) {
    w->crc = crc32_update(w->crc, byte);
    put_raw(w, byte);
}

static void put_varint(writer_t *w, uint64_t v) {
    while (v >= 0x80) {
        put_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte(w, (uint8_t)v);
}

static void finish(writer_t *w) {
    uint32_t crc = ~w->crc;
    for (int k = 0; k < 4; k++) {
        put_raw(w, (uint8_t)(crc >> (8 * k)));
    }
    if (w->pending == 1) { /* 8 bits -> 2 chars, low 4 bits zero */
        w->out[w->pos++] = base64url[(w->acc >> 2) & 63];
        w->out[w->pos++] = base64url[(w->acc << 4) & 63];
    } else if (w->pending == 2) { /* 16 bits -> 3 chars, low 2 bits zero */
        w->out[w->pos++] = base64url[(w->acc >> 10) & 63];
        w->out[w->pos++] = base64url[(w->acc >> 4) & 63];
        w->out[w->pos++] = base64url[(w->acc << 2) & 63];
    }
    w->out[w->pos] = '\0';
}

size_t ack_metadata_encode(const ack_snapshot_t *snap, char *out, size_t max_bytes,
                           bool *complete) {
    bool ignored;
    if (!complete) {
        complete = &ignored;
    }
    if (max_bytes > 0) {
        out[0] = '\0';
    }
    /* The base (the watermark) is never encoded as done: it is what the
     * commit names as the next offset to consume. An ack that reached it
     * after advance() is simply replayed. */
    size_t full = snap->bits ? end_of_last_set(snap->bits, snap->bit_count) : 0;
    if (full == 1) {
        full = 0;
    }
    *complete = full == 0;
    if (full == 0 || snap->watermark < 0 || max_bytes < HEADER_CHARS + 1) {
        return 0;
    }
    /* Binary bytes that fit: n bytes take 4(n/3) chars, plus n%3 + 1 for a
     * partial last group. */
    size_t chars = max_bytes - 1 - HEADER_CHARS;
    size_t budget = chars / 4 * 3 + (chars % 4 >= 2 ? chars % 4 - 1 : 0);
    size_t fixed = 1 + varint_size((uint64_t)snap->watermark) + 4; /* mode, base, crc */
    if (budget <= fixed) {
        return 0;
    }

    /* Runs: the longest prefix of whole pairs that fits. */
    size_t runs_span = 0, runs_body = 0, body = 0;
    for (size_t pos = 0; pos < full;) {
        size_t done = next_bit(snap->bits, full, pos ? pos : 1, true);
        size_t undone = next_bit(snap->bits, full, done, false);
        body += varint_size(done - pos) + varint_size(undone - done);
        if (fixed + varint_size(undone) + body > budget) {
            break;
        }
        runs_span = undone;
        runs_body = body;
        pos = undone;
    }
    size_t runs_size = fixed + varint_size(runs_span) + runs_body;

    /* Bitmap: the longest prefix that fits, trimmed to its last done bit. */
    size_t bitmap_span = 0;
    for (size_t span_bytes = 1; span_bytes <= 10; span_bytes++) {
        if (fixed + span_bytes >= budget) {
            break;
        }
        size_t room = (budget - fixed - span_bytes) * 8;
        size_t span = room < full ? room : full;
        if (varint_size(span) <= span_bytes && span > bitmap_span) {
            bitmap_span = span;
        }
    }
    bitmap_span = end_of_last_set(snap->bits, bitmap_span);
    if (bitmap_span == 1) {
        bitmap_span = 0;
    }
    size_t bitmap_size = fixed + varint_size(bitmap_span) + (bitmap_span + 7) / 8;

    int mode;
    size_t span;
    if (runs_span > bitmap_span || (runs_span == bitmap_span && runs_size <= bitmap_size)) {
        mode = MODE_RUNS;
        span = runs_span;
    } else {
        mode = MODE_BITMAP;
        span = bitmap_span;
    }
    if (span == 0) {
        return 0;
    }
    *complete = span == full;

    memcpy(out, "k1", HEADER_CHARS);
    writer_t w = {.out = out, .pos = HEADER_CHARS, .crc = 0xffffffffu};
    put_byte(&w, (uint8_t)mode);
    put_varint(&w, (uint64_t)snap->watermark);
    put_varint(&w, span);
    if (mode == MODE_RUNS) {
        for (size_t pos = 0; pos < span;) {
            size_t done = next_bit(snap->bits, span, pos ? pos : 1, true);
            size_t undone = next_bit(snap->bits, span, done, false);
            put_varint(&w, done - pos);
            put_varint(&w, undone - done);
            pos = undone;
        }
    } else {
        for (size_t i = 0; i < span; i += 8) {
            uint8_t byte = (uint8_t)(snap->bits[i / 64] >> (i % 64));
            if (span - i < 8) {
                byte &= (uint8_t)((1u << (span - i)) - 1);
            }
            if (i == 0) {
                byte &= 0xfe; /* the base is never done */
            }
            put_byte(&w, byte);
        }
    }
    finish(&w);
    return w.pos;
}

/* ---- decoding -------------------------------------------------------------- */

typedef struct reader {
    const char *text;
    size_t len, at; /* characters */
    uint32_t acc;
    int bits;    /* undelivered bits in acc */
    size_t left; /* payload bytes still readable */
    bool bad;
} reader_t;

static uint8_t get_raw(reader_t *r) {
    while (r->bits < 8) {
        int v = r->at < r->len ? base64url_value((unsigned char)r->text[r->at]) : -1;
        if (v < 0) {
            r->bad = true;
            return 0;
        }
        r->at++;
        r->acc = (r->acc << 6) | (uint32_t)v;
        r->bits += 6;
    }
    r->bits -= 8;
    uint8_t byte = (uint8_t)(r->acc >> r->bits);
    r->acc &= (1u << r->bits) - 1;
    return byte;
}

static uint8_t get_byte(reader_t *r) {
    if (r->left == 0) {
        r->bad = true;
        return 0;
    }
    r->left--;
    return get_raw(r);
}

static uint64_t get_varint(reader_t *r) {
    uint64_t v = 0;
    for (int k = 0; k < 10 && !r->bad; k++) {
        uint8_t byte = get_byte(r);
        if (k == 9 && byte > 1) { /* more than 64 bits */
            break;
        }
        v |= (uint64_t)(byte & 0x7f) << (7 * k);
        if (!(byte & 0x80)) {
            if (byte == 0 && k > 0) { /* not canonical */
                break;
            }
            return v;
        }
    }
    r->bad = true;
    return 0;
}

/* Sets bits [from, to) of bits. */
static void set_range(uint64_t *bits, size_t from, size_t to) {
    while (from < to) {
        size_t word_end = (from / 64 + 1) * 64;
        size_t stop = to < word_end ? to : word_end;
        size_t n = stop - from;
        uint64_t mask = n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
        bits[from / 64] |= mask << (from % 64);
        from = stop;
    }
}

static void empty(ack_snapshot_t *snap, int64_t committed_offset) {
    snap->watermark = committed_offset;
    snap->end = committed_offset;
    snap->bit_count = 0;
}

static kaffe_status_t reject(ack_snapshot_t *snap, int64_t committed_offset) {
    empty(snap, committed_offset);
    return KAFFE_ERR_INVALID_ARG;
}

kaffe_status_t ack_metadata_decode(const char *metadata, size_t len, int64_t committed_offset,
                                   ack_snapshot_t *snap) {
    empty(snap, committed_offset);
    if (len == 0) {
        return committed_offset >= 0 ? KAFFE_OK : KAFFE_ERR_INVALID_ARG;
    }
    if (!metadata || committed_offset < 0 || len < HEADER_CHARS || metadata[0] != 'k' ||
        metadata[1] != '1') {
        return reject(snap, committed_offset);
    }
    size_t chars = len - HEADER_CHARS;
    if (chars % 4 == 1) {
        return reject(snap, committed_offset);
    }
    size_t total = chars / 4 * 3 + (chars % 4 ? chars % 4 - 1 : 0);
    if (total < 1 + 1 + 1 + 4) {
        return reject(snap, committed_offset);
    }

    /* Pass 1: every character valid, canonical tail, checksum right. */
    reader_t r = {.text = metadata + HEADER_CHARS, .len = chars, .left = total};
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < total - 4; i++) {
        crc = crc32_update(crc, get_byte(&r));
    }
    uint32_t stored = 0;
    for (int k = 0; k < 4; k++) {
        stored |= (uint32_t)get_byte(&r) << (8 * k);
    }
    if (r.bad || r.at != r.len || r.acc != 0 || stored != ~crc) {
        return reject(snap, committed_offset);
    }

    /* Pass 2: the structure. */
    r = (reader_t){.text = metadata + HEADER_CHARS, .len = chars, .left = total - 4};
    uint8_t mode = get_byte(&r);
    uint64_t base = get_varint(&r);
    uint64_t span = get_varint(&r);
    /* span <= INT64_MAX - base: the end offset must be an int64_t (a base
     * near INT64_MAX would otherwise overflow snap->end). */
    if (r.bad || (mode != MODE_RUNS && mode != MODE_BITMAP) || base != (uint64_t)committed_offset ||
        span == 0 || span > ACK_METADATA_MAX_SPAN ||
        span > (uint64_t)(INT64_MAX - committed_offset)) {
        return reject(snap, committed_offset);
    }
    if (mode == MODE_BITMAP && r.left != (span + 7) / 8) {
        return reject(snap, committed_offset);
    }
    if (ack__snapshot_reserve(snap, (size_t)span) != KAFFE_OK) {
        empty(snap, committed_offset);
        return KAFFE_ERR_NOMEM;
    }
    if (mode == MODE_RUNS) {
        uint64_t pos = 0;
        while (r.left > 0 && !r.bad) {
            uint64_t gap = get_varint(&r);
            uint64_t run = get_varint(&r);
            if (r.bad || gap == 0 || run == 0 || gap > span - pos || run > span - pos - gap) {
                return reject(snap, committed_offset);
            }
            set_range(snap->bits, (size_t)(pos + gap), (size_t)(pos + gap + run));
            pos += gap + run;
        }
        if (r.bad || pos != span) {
            return reject(snap, committed_offset);
        }
    } else {
        for (uint64_t i = 0; i < span; i += 8) {
            uint64_t byte = get_byte(&r);
            if (span - i < 8 && (byte >> (span - i)) != 0) {
                return reject(snap, committed_offset);
            }
            snap->bits[i / 64] |= byte << (i % 64);
        }
        if (r.bad || (snap->bits[0] & 1)) {
            return reject(snap, committed_offset);
        }
    }
    snap->watermark = committed_offset;
    snap->end = committed_offset + (int64_t)span;
    snap->bit_count = (size_t)span;
    return KAFFE_OK;
}
