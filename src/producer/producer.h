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

/* Kaffe's md5 strategy: (sum of the 16 bytes of the MD5 digest of key,
 * through OpenSSL) mod partition_count. partition_count must be > 0. */
int32_t producer_partition_md5(const void *key, size_t key_len, int32_t partition_count);

/* The Java client's keyed choice: (Utils.murmur2(key) & 0x7fffffff) mod
 * partition_count, through librdkafka's murmur2 partitioner. partition_count
 * must be > 0. */
int32_t producer_partition_murmur2(const void *key, size_t key_len, int32_t partition_count);

/* Test hooks (testing.c) for the deferred destruction of delivery reports
 * (src/producer/defer.c). Any thread.
 * producer_has_deferred: whether delivery reports whose callbacks have run
 * are waiting for a producing thread to free them (a snapshot).
 * producer_set_defer_max_ms: how long they may wait before the delivery
 * thread frees them itself (default 5 ms); takes effect at its next wake-up
 * (at most 1 s). */
bool producer_has_deferred(kaffe_producer_t *p);
void producer_set_defer_max_ms(kaffe_producer_t *p, int ms);

#endif
