/* tests/support — what the consumer race programs (tests/race) share: a
 * clock, a short nap, the embedded cluster with its data, the consumer
 * configuration they all start from, a queue of messages handed from
 * handlers to acking threads and taken in random order, and the end-of-run
 * commit check.
 *
 * Threads: race_queue_* may be called from any thread (the queue has its
 * own lock); race_wait_for from any thread; the rest from the thread that
 * runs the case. */
#ifndef KAFFE_TESTS_SUPPORT_RACE_SUPPORT_H
#define KAFFE_TESTS_SUPPORT_RACE_SUPPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kaffe/kaffe.h>

/* The topic every race program consumes. */
#define RACE_TOPIC "race"

/* Sleeps 200 us: the poll interval of the waits and helper threads. */
void race_nap(void);

/* Waits (napping) until *counter >= want or timeout_ms passed; returns the
 * last value read. */
long race_wait_for(atomic_long *counter, long want, int64_t timeout_ms);

/* The number N in a value "value-N" (plain_produce's values), or -1. */
int race_value_index(kaffe_message_t *m);

struct mock_cluster;

/* Starts a one-broker embedded cluster with RACE_TOPIC of `partitions`
 * partitions and produces `messages` values "value-0".. (16 keys) to it;
 * NULL (with a message on stderr) on failure. */
struct mock_cluster *race_start_cluster(int partitions, int messages);

/* A consumer configuration on RACE_TOPIC from the earliest message: short
 * session/heartbeat/fetch waits, commits every 50 ms, quiet librdkafka;
 * then the (name, value) pairs extra[0..extra_count) on top. A property
 * that is refused fails the current case (CHECK). */
kaffe_conf_t *race_consumer_conf(const char *bootstraps, const char *group,
                                 kaffe_message_handler_t handler, void *opaque,
                                 const char *const (*extra)[2], size_t extra_count);

/* CHECKs that group's committed offset on every partition 0..partitions-1
 * of RACE_TOPIC is the log end. */
void race_check_committed_to_the_end(const char *bootstraps, const char *group, int partitions);

/* A sync run to the end: a consumer from conf (taken), started, CHECKed to
 * reach *handled == want within 120 s, stopped, and CHECKed to have
 * committed every partition of RACE_TOPIC to the log end. */
void race_run_sync(const char *bootstraps, const char *group, kaffe_conf_t *conf,
                   atomic_long *handled, long want, int partitions);

/* Key order across workers: a (partition, key id) runs one handler at a
 * time and sees its offsets rise. race_keys_enter/_leave bracket handling a
 * message of partition with key id kid (0..15) at offset; violations are
 * counted in bad. */
enum { RACE_KEY_PARTITIONS = 4, RACE_KEY_IDS = 16 };
typedef struct race_keys {
    atomic_int busy[RACE_KEY_PARTITIONS][RACE_KEY_IDS];
    int64_t last[RACE_KEY_PARTITIONS][RACE_KEY_IDS]; /* plain: ordered by the lanes */
    atomic_int bad;
} race_keys_t;

void race_keys_init(race_keys_t *k);
void race_keys_enter(race_keys_t *k, int partition, int kid);
void race_keys_saw(race_keys_t *k, int partition, int kid, int64_t offset);
void race_keys_leave(race_keys_t *k, int partition, int kid);

/* The key id (0..15) of m ("key-<n>" keys), or -1 for a null key. */
int race_key_id(kaffe_message_t *m);

/* What a case's helper threads share: the consumer, the flag that ends
 * them, and the count of unexpected results. */
typedef struct race_run {
    kaffe_consumer_t *c;
    atomic_int done;
    atomic_int bad;
} race_run_t;

/* Thread bodies on a race_run_t: kaffe_consumer_commit every 20 ms until
 * done (KAFFE_OK or KAFFE_ERR_STOPPED expected); kaffe_consumer_stop once
 * (KAFFE_OK expected). */
void *race_committer_main(void *run);
void *race_stopper_main(void *run);

/* Messages handed from handlers to acking threads. */
typedef struct race_queue {
    pthread_mutex_t lock;
    kaffe_message_t **items; /* [cap], under lock */
    size_t head, tail, cap;  /* under lock */
} race_queue_t;

void race_queue_init(race_queue_t *q, size_t cap);
void race_queue_destroy(race_queue_t *q);
/* Appends m; false when the queue is full (m is not kept). */
bool race_queue_push(race_queue_t *q, kaffe_message_t *m);
/* Takes a random pending message (seed: the caller's rand_r state), or NULL
 * when none is pending. */
kaffe_message_t *race_queue_take_random(race_queue_t *q, unsigned *seed);

#endif
