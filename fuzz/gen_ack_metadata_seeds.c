/* Writes the seed corpus of fuzz_ack_metadata into a directory, from the real
 * encoder (ack_metadata_encode): each done-set below becomes two seeds, the
 * text as committed (flag byte 0x40) and its payload without the CRC (flag
 * 0x41, wrapped by the harness). Plus a few malformed texts.
 *
 *   gen_ack_metadata_seeds fuzz/corpus/ack_metadata */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ack/ack.h"
#include "metadata_wire.h"

static const char *dir;

static void write_seed(const char *name, uint8_t flag, const void *bytes, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&flag, 1, 1, f) != 1 || (n && fwrite(bytes, 1, n, f) != n) || fclose(f)) {
        perror(path);
        exit(1);
    }
}

/* Encodes watermark + the done bits set by mark(i) for i in [0, count). */
static void seed(const char *name, int64_t watermark, size_t count, bool (*mark)(size_t)) {
    /* end is not read by the encoder (and would overflow near INT64_MAX). */
    ack_snapshot_t s = {.watermark = watermark, .end = watermark, .bit_count = count};
    s.bits_capacity = (count + 63) / 64;
    s.bits = calloc(s.bits_capacity ? s.bits_capacity : 1, sizeof *s.bits);
    for (size_t i = 0; i < count; i++) {
        if (mark(i)) {
            s.bits[i / 64] |= (uint64_t)1 << (i % 64);
        }
    }
    char text[4096];
    bool complete;
    size_t len = ack_metadata_encode(&s, text, sizeof text, &complete);
    if (len == 0 || !complete) {
        fprintf(stderr, "%s: did not encode completely\n", name);
        exit(1);
    }
    char file[256];
    snprintf(file, sizeof file, "%s.text", name);
    write_seed(file, 0x40, text, len);
    uint8_t payload[4096];
    size_t n = wire_unwrap(text, len, payload, sizeof payload);
    snprintf(file, sizeof file, "%s.payload", name);
    write_seed(file, 0x41, payload, n - 4); /* without the CRC */
    free(s.bits);
}

static bool only_one(size_t i) {
    return i == 1;
}
static bool every_other(size_t i) {
    return i % 2 == 1;
}
static bool scattered(size_t i) {
    return (i * 2654435761u) % 7 < 3 && i != 0;
}
static bool long_run(size_t i) {
    return i >= 2;
}
static bool runs_and_gaps(size_t i) {
    return (i / 100) % 3 == 1 || i == 5 || i == 999;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    seed("one_done", 0, 2, only_one);
    seed("every_other", 42, 100, every_other);
    seed("scattered_bitmap", 1000000, 300, scattered);
    seed("long_run", 7, (size_t)1 << 20, long_run);
    seed("runs_and_gaps", 123456789012, 1000, runs_and_gaps);
    seed("near_int64_max", INT64_MAX - 1000, 64, every_other);
    seed("past_int64_max", INT64_MAX - 10, 64, every_other); /* base + span > INT64_MAX */
    write_seed("empty", 0x00, "", 0);
    write_seed("header_only", 0x00, "k1", 2);
    write_seed("wrong_version", 0x00, "k2AQAB", 6);
    write_seed("not_base64", 0x00, "k1AQ!B", 6);
    write_seed("empty_payload", 0x01, "", 0);
    return 0;
}
