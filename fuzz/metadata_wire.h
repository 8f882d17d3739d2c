/* fuzz/ — an independent writer of kaffe's commit-metadata text (format: see
 * src/ack/metadata.c), for the fuzz harness and its seed generator.
 *
 * The fuzzer mutates the binary payload and this wraps it (CRC-32, base64url,
 * "k1"), so that mutations reach the decoder's structure checks instead of
 * dying at the checksum. It is deliberately written apart from metadata.c:
 * it shares no code with what it tests. */
#ifndef KAFFE_FUZZ_METADATA_WIRE_H
#define KAFFE_FUZZ_METADATA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char wire_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static inline uint32_t wire_crc32(const uint8_t *p, size_t n) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1u) ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
        }
    }
    return ~crc;
}

/* "k1" + base64url(payload + CRC-32 LE), no padding. malloc'ed, NUL-terminated;
 * *len receives its length. */
static inline char *wire_wrap(const uint8_t *payload, size_t n, size_t *len) {
    uint8_t *bytes = malloc(n + 4);
    char *out = malloc(2 + (n + 4 + 2) / 3 * 4 + 1);
    if (!bytes || !out) {
        abort();
    }
    memcpy(bytes, payload, n);
    uint32_t crc = wire_crc32(payload, n);
    for (int k = 0; k < 4; k++) {
        bytes[n + (size_t)k] = (uint8_t)(crc >> (8 * k));
    }
    size_t total = n + 4, pos = 2;
    out[0] = 'k';
    out[1] = '1';
    for (size_t i = 0; i < total; i += 3) {
        size_t left = total - i;
        uint32_t group = (uint32_t)bytes[i] << 16;
        if (left > 1) {
            group |= (uint32_t)bytes[i + 1] << 8;
        }
        if (left > 2) {
            group |= bytes[i + 2];
        }
        size_t chars = left >= 3 ? 4 : left + 1;
        for (size_t c = 0; c < chars; c++) {
            out[pos++] = wire_alphabet[(group >> (18 - 6 * c)) & 63];
        }
    }
    out[pos] = '\0';
    free(bytes);
    *len = pos;
    return out;
}

/* base64url-decodes text (after "k1") into at most cap bytes; returns the byte
 * count, or (size_t)-1 when text is not "k1" + base64url. Lenient about the
 * tail bits: only used to peek at the base offset. */
static inline size_t wire_unwrap(const char *text, size_t len, uint8_t *out, size_t cap) {
    if (len < 2 || text[0] != 'k' || text[1] != '1') {
        return (size_t)-1;
    }
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 2; i < len; i++) {
        const char *at = memchr(wire_alphabet, text[i], 64);
        if (!at || text[i] == '\0') {
            return (size_t)-1;
        }
        acc = (acc << 6) | (uint32_t)(at - wire_alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < cap) {
                out[n++] = (uint8_t)(acc >> bits);
            }
            acc &= (1u << bits) - 1;
        }
    }
    return n;
}

/* The base offset a payload names (mode byte, then a LEB128 varint), or -1. */
static inline int64_t wire_peek_base(const uint8_t *payload, size_t n) {
    uint64_t v = 0;
    for (size_t i = 1; i < n && i <= 10; i++) {
        v |= (uint64_t)(payload[i] & 0x7f) << (7 * (i - 1));
        if (!(payload[i] & 0x80)) {
            return v <= (uint64_t)INT64_MAX ? (int64_t)v : -1;
        }
    }
    return -1;
}

#endif
