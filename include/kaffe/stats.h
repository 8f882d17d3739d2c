/** @file
 * kaffe — statistics of a running consumer or producer, and their
 * Prometheus text rendering.
 *
 * Ownership: the caller allocates the stats struct (on the stack is fine)
 * and passes it to kaffe_consumer_stats() / kaffe_producer_stats(), which
 * fill it. The consumer's per-partition array is allocated by kaffe and
 * belongs to the struct: release it with kaffe_consumer_stats_free() (which
 * leaves the struct zeroed; calling it on a zeroed struct is harmless). A
 * filled struct may be passed again to kaffe_consumer_stats(): it reuses
 * the array (no allocation in the steady state).
 *
 * Threads and cost: any thread may call the stats functions at any time
 * between new and destroy, concurrently with the consumer's own threads
 * and with each other (on distinct structs). They take no lock the
 * consumer's message path takes: per partition they read a few atomics
 * inside an RCU read-side section, plus librdkafka's cached high watermark
 * (rd_kafka_get_watermark_offsets: no broker round trip). Counters are read
 * one by one with relaxed loads, so a snapshot is not one instant: counters
 * may be a few messages apart from each other (never torn). Measured
 * (bench/bench_stats.c, 2 shared cores, under full load): median 13 us per
 * call with 64 partitions, 43 us with 256; rendering 53 us / 188 us. */
#ifndef KAFFE_STATS_H
#define KAFFE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <kaffe/consumer.h>
#include <kaffe/error.h>
#include <kaffe/export.h>
#include <kaffe/producer.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Latency histogram buckets exported: upper bounds 1, 2, 5 x 10^k ns from
 * 1 us to 5 s, then 10 s and +Inf. kaffe records latencies in log-linear
 * buckets (1/16 of a power of two wide) and folds them into these bounds,
 * so an observation within ~6% above a bound may be counted in it. */
#define KAFFE_STATS_LATENCY_BUCKETS 23

/** A latency histogram. bucket_le_ns[i] is the inclusive upper bound of
 * counts[i] (cumulative, Prometheus style: counts[i] observations were
 * <= bucket_le_ns[i]); the last bound is UINT64_MAX (+Inf) and its count
 * equals count. */
typedef struct kaffe_latency_stats {
    uint64_t count;   /**< observations */
    uint64_t sum_ns;  /**< their sum, in ns */
    uint64_t max_ns;  /**< the largest, in ns */
    uint64_t p50_ns;  /**< median, within ~6% (log-linear buckets) */
    uint64_t p99_ns;  /**< 99th percentile, within ~6% */
    uint64_t p999_ns; /**< 99.9th percentile, within ~6% */
    uint64_t bucket_le_ns[KAFFE_STATS_LATENCY_BUCKETS]; /**< inclusive upper bounds, in ns */
    uint64_t bucket_count[KAFFE_STATS_LATENCY_BUCKETS]; /**< cumulative counts per bound */
} kaffe_latency_stats_t;

/** One assigned partition. */
typedef struct kaffe_partition_stats {
    char topic[256];          /**< NUL-terminated (a Kafka topic name is at most 249 bytes) */
    int32_t partition;        /**< partition number */
    int assigned;             /**< 1: in this consumer's assignment; 0: after stop, a
                                 partition it had, with its last figures (the last
                                 committed offset, the watermark, the log end it saw) */
    uint64_t generation;      /**< assignment generation (grows on every re-assignment) */
    int64_t committed_offset; /**< last offset kaffe committed, or the group's at
                                 assignment; -1 if none yet */
    int64_t watermark;        /**< lowest offset not acked yet; -1 before any message */
    int64_t next_offset;      /**< one past the highest offset dispatched; -1 before */
    int64_t log_end_offset;   /**< the broker's high watermark as last fetched; -1 unknown */
    int64_t lag;              /**< log_end_offset - committed_offset; -1 if either is unknown */
    int64_t in_flight;        /**< delivered to a handler, not yet acked */
    int64_t in_flight_bytes;  /**< their key + value bytes */
    int paused;               /**< 1: fetching is paused (back-pressure) */
    int dispatch_paused;      /**< 1: new messages are parked, not handed to workers */
    /** Age of the oldest message not yet acked (the one at the watermark),
     * in ms; 0 when nothing is in flight. Measured from the dispatch of
     * the latest sampled offset at or below the watermark (samples every
     * ack_window/64 offsets and whenever the partition had nothing in
     * flight), with the watermark refreshed every ~100 ms: an upper
     * bound, exact for a message that arrived at an idle partition. */
    int64_t oldest_unacked_age_ms;
    size_t commit_metadata_bytes; /**< size of the metadata of the last commit */
} kaffe_partition_stats_t;

/** A consumer. */
typedef struct kaffe_consumer_stats {
    char group[256];                 /**< consumer_group, truncated to fit */
    int running;                     /**< 1 between start and the end of stop */
    uint64_t messages_dispatched;    /**< fetched and handed to the workers */
    uint64_t messages_handled;       /**< handler calls that returned (with a batch
                                        handler: the messages of its calls) */
    uint64_t messages_acked;         /**< acks that counted (sync return, async ack, or a
                                        failure policy that settles a message as done) */
    uint64_t messages_failed;        /**< handler calls that returned an error */
    uint64_t messages_retried;       /**< failure policy: retry attempts scheduled */
    uint64_t messages_dead_lettered; /**< failure policy: written to the dead-letter topic */
    uint64_t messages_skipped;       /**< failure policy: failed messages skipped */
    uint64_t messages_already_acked; /**< skipped on replay: acked before, per commit metadata */
    kaffe_latency_stats_t handler_latency; /**< time the handler took per call (per
                                              batch with a batch handler) */
    size_t partition_count;                /**< entries in partitions */
    kaffe_partition_stats_t *partitions;   /**< owned by the struct (see above), sorted
                                              by topic, then partition */
    size_t partitions_capacity;            /**< private */
} kaffe_consumer_stats_t;

/** Fills *stats (see the ownership note above: zero-initialise before the
 * first call). While the consumer runs, partitions are its current
 * assignment; once it stopped (kaffe_consumer_stop returned, or it stopped by
 * itself), they are every partition it had, each as it was when taken away
 * (assigned 0: the last committed offset it knew, its watermark, its log
 * end). Returns KAFFE_OK, KAFFE_ERR_INVALID_ARG (NULL argument) or
 * KAFFE_ERR_NOMEM (stats then holds the consumer-wide figures and no
 * partitions). Any thread, including handlers and callbacks. */
KAFFE_API kaffe_status_t kaffe_consumer_stats(kaffe_consumer_t *c, kaffe_consumer_stats_t *stats);

/** Frees the partition array and zeroes *stats. NULL is allowed. */
KAFFE_API void kaffe_consumer_stats_free(kaffe_consumer_stats_t *stats);

/** A producer. */
typedef struct kaffe_producer_stats {
    uint64_t messages_produced;            /**< delivered: the broker acknowledged them */
    uint64_t messages_failed;              /**< delivery reports with an error */
    int64_t messages_in_flight;            /**< accepted by produce, no delivery report yet */
    kaffe_latency_stats_t produce_latency; /**< produce call to delivery report */
} kaffe_producer_stats_t;

/** Fills *stats (no allocation). KAFFE_OK or KAFFE_ERR_INVALID_ARG. Any
 * thread. */
KAFFE_API kaffe_status_t kaffe_producer_stats(kaffe_producer_t *p, kaffe_producer_stats_t *stats);

/** Prometheus text exposition format (version 0.0.4): HELP and TYPE lines,
 * metric names kaffe_consumer_... / kaffe_producer_..., labels group,
 * topic and partition, latency as a histogram in seconds
 * (_bucket{le=...}, _sum, _count). Writes at most size bytes including the
 * NUL into buf and returns the length of the full text (like snprintf):
 * a return value >= size means the text was truncated; call again with a
 * bigger buffer. Pure functions of their input: any thread. */
KAFFE_API size_t kaffe_consumer_stats_prometheus(const kaffe_consumer_stats_t *stats, char *buf,
                                                 size_t size);
/** name labels the producer's series (label producer="..."; NULL: none). */
KAFFE_API size_t kaffe_producer_stats_prometheus(const kaffe_producer_stats_t *stats,
                                                 const char *name, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* KAFFE_STATS_H */
