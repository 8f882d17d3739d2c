/* src/producer — the producer room's door.
 *
 * The producer itself is public API (include/kaffe/producer.h). This header
 * gives the rest of kaffe (the CLI, tests, benchmarks) the partition
 * strategies' pure functions, so a tool can say where a key would go without
 * a producer. All functions here are pure and thread-safe, except the two
 * test hooks at the end. */
#ifndef KAFFE_SRC_PRODUCER_H
#define KAFFE_SRC_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kaffe/producer.h>

/* The RFC 1321 MD5 digest of len bytes at data (data may be NULL if len is 0). */
void producer_md5(const void *data, size_t len, uint8_t digest[16]);

/* Kaffe's md5 strategy: (sum of the 16 digest bytes of md5(key)) mod
 * partition_count. partition_count must be > 0. */
int32_t producer_partition_md5(const void *key, size_t key_len, int32_t partition_count);

/* The Java client's Utils.murmur2 (MurmurHash2, seed 0x9747b28c, little-endian
 * 4-byte blocks), as an unsigned 32-bit value; cast to int32_t for Java's. */
uint32_t producer_murmur2(const void *key, size_t key_len);

/* The Java client's keyed choice: (murmur2(key) & 0x7fffffff) mod
 * partition_count. partition_count must be > 0. */
int32_t producer_partition_murmur2(const void *key, size_t key_len, int32_t partition_count);

/* Test hooks for the deferred destruction of delivery reports (see
 * "Freeing delivery reports" in producer.c). Any thread.
 * producer_has_deferred: whether delivery reports whose callbacks have run
 * are waiting for a producing thread to free them (a snapshot).
 * producer_set_defer_max_ms: how long they may wait before the delivery
 * thread frees them itself (default 5 ms); takes effect at its next wake-up
 * (at most 1 s). */
bool producer_has_deferred(kaffe_producer_t *p);
void producer_set_defer_max_ms(kaffe_producer_t *p, int ms);

#endif
