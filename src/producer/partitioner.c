/* The keyed partition strategies: Kaffe's md5 and the Java client's murmur2.
 * Pure functions; the stateful ones (round_robin, random) live with the
 * producer's per-topic state in producer.c. */
#include "producer/producer.h"

int32_t producer_partition_md5(const void *key, size_t key_len, int32_t partition_count) {
    uint8_t digest[16];
    producer_md5(key, key_len, digest);
    uint32_t sum = 0;
    for (int i = 0; i < 16; i++)
        sum += digest[i];
    return (int32_t)(sum % (uint32_t)partition_count);
}

/* MurmurHash2 as the Java client computes it (Utils.murmur2): seed
 * 0x9747b28c, 4-byte little-endian blocks, the tail mixed in byte by byte. */
uint32_t producer_murmur2(const void *key, size_t key_len) {
    const uint32_t m = 0x5bd1e995u;
    const unsigned r = 24;
    const uint8_t *data = key;
    uint32_t h = 0x9747b28cu ^ (uint32_t)key_len;
    size_t blocks = key_len / 4;
    for (size_t i = 0; i < blocks; i++) {
        const uint8_t *b = data + 4 * i;
        uint32_t k =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const uint8_t *tail = data + 4 * blocks;
    switch (key_len & 3) {
        case 3:
            h ^= (uint32_t)tail[2] << 16;
            /* fall through */
        case 2:
            h ^= (uint32_t)tail[1] << 8;
            /* fall through */
        case 1:
            h ^= (uint32_t)tail[0];
            h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

int32_t producer_partition_murmur2(const void *key, size_t key_len, int32_t partition_count) {
    return (int32_t)((producer_murmur2(key, key_len) & 0x7fffffffu) % (uint32_t)partition_count);
}
