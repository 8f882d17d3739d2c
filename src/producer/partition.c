/* Partition choice, every strategy together (producer_partition_*).
 *
 * Owns: the strategies round_robin (each topic entry's ticket counter),
 * random, md5 (Kaffe's), murmur2 (the Java client's) and the application's
 * partitioner function, and the check of a partition a message names.
 * Threads: caller threads, inside each produce call; the keyed functions
 * (producer_partition_md5, producer_partition_murmur2) are pure and any
 * thread may call them. */
#include <pthread.h>

#include <openssl/evp.h>

#include "common/prng.h"
#include "producer/internal.h"
#include "producer/producer.h"

/* OpenSSL's MD5, fetched once: a fetch per digest would search the
 * providers every time. NULL when no provider offers MD5 (a FIPS
 * configuration); kaffe_producer_new refuses the md5 strategy then. */
static EVP_MD *md5_md;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;

static void md5_fetch(void) {
    md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
}

bool producer_partition_md5_available(void) {
    pthread_once(&md5_once, md5_fetch);
    return md5_md != NULL;
}

int32_t producer_partition_md5(const void *key, size_t key_len, int32_t partition_count) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    static const unsigned char empty = 0;
    if (!producer_partition_md5_available() ||
        !EVP_Digest(key_len ? key : &empty, key_len, digest, &digest_len, md5_md, NULL))
        return 0; /* unreachable for a producer: it checked availability */
    uint32_t sum = 0;
    for (unsigned int i = 0; i < digest_len; i++)
        sum += digest[i];
    return (int32_t)(sum % (uint32_t)partition_count);
}

int32_t producer_partition_murmur2(const void *key, size_t key_len, int32_t partition_count) {
    /* librdkafka's murmur2 partitioner is the Java client's
     * (Utils.murmur2, seed 0x9747b28c, then & 0x7fffffff % count) and reads
     * none of rkt, rkt_opaque and msg_opaque (rdkafka_msg.c), so no topic
     * handle is needed. */
    return rd_kafka_msg_partitioner_murmur2(NULL, key, key_len, partition_count, NULL, NULL);
}

static int32_t round_robin(topic_entry_t *e, int32_t count) {
    uint64_t ticket = atomic_fetch_add_explicit(&e->round_robin_next, 1, memory_order_relaxed);
    return (int32_t)(ticket % (uint64_t)count);
}

kaffe_status_t producer_partition_choose(kaffe_producer_t *p, topic_entry_t *e,
                                         const kaffe_produce_msg_t *msg, int32_t *partition) {
    int32_t count = atomic_load_explicit(&e->partition_count, memory_order_relaxed);
    if (msg->partition != KAFFE_PARTITION_ANY) {
        if (msg->partition < 0)
            return KAFFE_ERR_UNKNOWN_PARTITION;
        if (msg->partition >= count) {
            /* Maybe the topic grew since the last refresh. */
            producer_topic_refresh_if_stale(p, e);
            count = atomic_load_explicit(&e->partition_count, memory_order_relaxed);
            if (msg->partition >= count)
                return KAFFE_ERR_UNKNOWN_PARTITION;
        }
        *partition = msg->partition;
        return KAFFE_OK;
    }
    switch (p->strategy) {
        case STRATEGY_FUNCTION: {
            int32_t chosen = p->partitioner(e->name, count, msg->key, msg->key_len, msg->value,
                                            msg->value_len, p->partitioner_opaque);
            if (chosen < 0 || chosen >= count)
                return KAFFE_ERR_PARTITIONER;
            *partition = chosen;
            return KAFFE_OK;
        }
        case STRATEGY_RANDOM:
            *partition = (int32_t)(prng_thread_u32() % (uint32_t)count);
            return KAFFE_OK;
        case STRATEGY_MD5:
            *partition = msg->key ? producer_partition_md5(msg->key, msg->key_len, count)
                                  : round_robin(e, count);
            return KAFFE_OK;
        case STRATEGY_MURMUR2:
            *partition = msg->key ? producer_partition_murmur2(msg->key, msg->key_len, count)
                                  : round_robin(e, count);
            return KAFFE_OK;
        case STRATEGY_ROUND_ROBIN:
        default:
            *partition = round_robin(e, count);
            return KAFFE_OK;
    }
}
