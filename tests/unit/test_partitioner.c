/* The keyed partition strategies against fixed vectors: the md5 strategy
 * against RFC 1321's test suite and Kaffe's known answers, murmur2 against
 * the Java client's UtilsTest.testMurmur2 vectors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "producer/producer.h"

/* The md5 strategy's partition over 4081 partitions is the digest's byte
 * sum itself (at most 16 * 255 = 4080): the RFC's digests, summed here,
 * check the digest through the strategy. */
static void expect_md5(const void *data, size_t len, const char *want_hex) {
    uint32_t sum = 0;
    for (int i = 0; i < 16; i++) {
        unsigned byte;
        sscanf(want_hex + 2 * i, "%2x", &byte);
        sum += byte;
    }
    cr_expect_eq(producer_partition_md5(data, len, 4081), (int32_t)sum, "md5 of %zu bytes", len);
}

Test(partitioner, md5_matches_the_rfc_1321_test_suite) {
    expect_md5(NULL, 0, "d41d8cd98f00b204e9800998ecf8427e");
    expect_md5("a", 1, "0cc175b9c0f1b6a831c399e269772661");
    expect_md5("abc", 3, "900150983cd24fb0d6963f7d28e17f72");
    expect_md5("message digest", 14, "f96b697d7cb7938d525a2f31aaf161d0");
    expect_md5("abcdefghijklmnopqrstuvwxyz", 26, "c3fcd3d76192e4007dfb496cca67e13b");
    const char *alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    expect_md5(alnum, strlen(alnum), "d174ab98d277d9f5a5611c2c9f419d9f");
    const char *digits = "1234567890123456789012345678901234567890"
                         "1234567890123456789012345678901234567890";
    expect_md5(digits, strlen(digits), "57edf4a22be3c955ac49da2e2107b67a");
}

Test(partitioner, md5_strategy_places_keys_like_kaffe) {
    /* Kaffe: sum of the bytes of md5("key1") is 2457. */
    cr_expect_eq(producer_partition_md5("key1", 4, 10), 7);
    cr_expect_eq(producer_partition_md5("key1", 4, 32), 25);
    cr_expect_eq(producer_partition_md5("key1", 4, 1), 0);
    /* An empty key is hashed, not treated as null: md5("") sums to 2121. */
    cr_expect_eq(producer_partition_md5("", 0, 12), 2121 % 12);
}

/* org.apache.kafka.common.utils.UtilsTest.testMurmur2 (the Java client). */
static const struct {
    const char *key;
    int32_t java_hash;
} java_vectors[] = {
    {"21", -973932308},
    {"foobar", -790332482},
    {"a-little-bit-long-string", -985981536},
    {"a-little-bit-longer-string", -1486304829},
    {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
    {"abc", 479470107},
};

Test(partitioner, murmur2_matches_the_java_client_vectors) {
    for (size_t i = 0; i < sizeof java_vectors / sizeof java_vectors[0]; i++) {
        const char *key = java_vectors[i].key;
        /* Over INT32_MAX partitions the choice is the positive hash itself
         * (the vectors' hashes are all below INT32_MAX once masked). */
        cr_expect_eq(producer_partition_murmur2(key, strlen(key), INT32_MAX),
                     (int32_t)((uint32_t)java_vectors[i].java_hash & 0x7fffffffu), "murmur2(%s)",
                     key);
        /* Java's partition for a key: toPositive(murmur2(key)) % n. */
        for (int32_t n = 1; n <= 64; n++) {
            int32_t want =
                (int32_t)(((uint32_t)java_vectors[i].java_hash & 0x7fffffffu) % (uint32_t)n);
            cr_expect_eq(producer_partition_murmur2(key, strlen(key), n), want, "%s of %d", key, n);
        }
    }
    /* Spot values worked out by hand from the vectors. */
    cr_expect_eq(producer_partition_murmur2("21", 2, 10), 0);
    cr_expect_eq(producer_partition_murmur2("foobar", 6, 10), 6);
    cr_expect_eq(producer_partition_murmur2("abc", 3, 7), 4);
}

Test(partitioner, keyed_choices_stay_in_range) {
    char key[32];
    for (int i = 0; i < 5000; i++) {
        int len = snprintf(key, sizeof key, "k%d", i);
        int32_t n = 1 + i % 50;
        int32_t a = producer_partition_md5(key, (size_t)len, n);
        int32_t b = producer_partition_murmur2(key, (size_t)len, n);
        cr_assert(a >= 0 && a < n && b >= 0 && b < n);
    }
}
