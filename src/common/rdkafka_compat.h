/* src/common — the librdkafka bugs kaffe works around, and which librdkafka
 * versions have them. The one place that knows librdkafka's version
 * numbers: each workaround asks its predicate here, which answers from
 * rd_kafka_version() at run time (the library actually loaded, which may
 * differ from the headers kaffe was built with). A workaround a fixed
 * librdkafka does not need is off there.
 *
 * Each entry names the bug, its librdkafka issue and the first release
 * without it (librdkafka's CHANGELOG.md), and where kaffe works around it. */
#ifndef KAFFE_SRC_COMMON_RDKAFKA_COMPAT_H
#define KAFFE_SRC_COMMON_RDKAFKA_COMPAT_H

#include <stdbool.h>

typedef enum rdkafka_bug {
    /* Closing and destroying a consumer that has joined a cooperative-sticky
     * group but not yet had its first assignment aborts (an assertion in
     * rd_kafka_sticky_assignor_state_destroy, or a crash). librdkafka issue
     * #4312, fixed in 2.3.0 (#4381). Worked around by the consumer's stop,
     * which waits for the first assignment (src/consumer/poll.c,
     * consumer_poll_await_first_assignment). */
    RDKAFKA_BUG_CLOSE_BEFORE_FIRST_ASSIGNMENT_ABORTS,
    /* A commit sent while the member's JoinGroup is pending reaches the
     * coordinator in the next generation, is refused with
     * ILLEGAL_GENERATION, and librdkafka then drops the generation it has
     * just joined: the member loses its assignment and rejoins, and a group
     * committing at short intervals may never settle. librdkafka issue
     * #4059, fixed in 2.10.0 (#4908). Worked around by holding interval
     * commits while the member rebalances (src/consumer/commit.c,
     * consumer_commit_hold). */
    RDKAFKA_BUG_COMMIT_DURING_JOIN_DROPS_GENERATION,
    /* gzip, snappy and lz4 are used only when the broker advertises
     * Produce version 0 (the check matches one version instead of a range;
     * zstd's check is of the same kind, passed by a broker advertising
     * Produce v7 or below); otherwise batches are
     * sent uncompressed, silently but for a debug line (rdkafka.debug=msg)
     * "Broker does not support compression type ...: not compressing
     * batch". KIP-896 removed
     * Produce v0-v2 from Apache Kafka 4.0, but Kafka 4.0 and 4.1 still
     * advertise them for these clients (KAFKA-18659), so they are affected
     * only by a broker or proxy that stops advertising them. librdkafka
     * issues #4948 and #4956, fixed in 2.11.1 (#5130). Not worked around
     * (the codec is librdkafka's choice); documented, and tested by the
     * broker tier (test_broker_compression). */
    RDKAFKA_BUG_COMPRESSION_NEEDS_PRODUCE_V0,
    /* SASL/SCRAM sends the client nonce twice in the client-final message.
     * Kafka 3.8.1 to 3.9 accept it (their check was relaxed for these
     * clients); Kafka 4 refuses it as invalid credentials. librdkafka issue
     * #4895, fixed in 2.6.1. Not worked around (the SASL exchange is
     * librdkafka's); documented, and tested by the broker tier
     * (test_broker_sasl: against Kafka 4 with such a librdkafka, SCRAM is
     * refused and PLAIN works). */
    RDKAFKA_BUG_SCRAM_NONCE_SENT_TWICE,
    RDKAFKA_BUG_COUNT
} rdkafka_bug_t;

/* Whether the librdkafka loaded has the bug: its version is below the
 * bug's fixed-in version (or a test said otherwise, rdkafka_bug_assume).
 * Thread-safe; cheap (a relaxed load and a comparison). */
bool rdkafka_has_bug(rdkafka_bug_t bug);

/* "librdkafka issue #4312 (fixed in 2.3.0)": for messages and test output.
 * Static storage. */
const char *rdkafka_bug_str(rdkafka_bug_t bug);

/* Tests only: has = 1 / 0 makes rdkafka_has_bug answer that whatever the
 * version (to turn a workaround off where the bug is, or on where it is
 * not); -1 goes back to the version's answer. Process-wide, any thread;
 * set it before the code it affects runs. */
void rdkafka_bug_assume(rdkafka_bug_t bug, int has);

/* The predicates the workarounds read (see the enum for each bug). */
static inline bool rdkafka_close_before_first_assignment_aborts(void) {
    return rdkafka_has_bug(RDKAFKA_BUG_CLOSE_BEFORE_FIRST_ASSIGNMENT_ABORTS);
}

static inline bool rdkafka_commit_during_join_drops_generation(void) {
    return rdkafka_has_bug(RDKAFKA_BUG_COMMIT_DURING_JOIN_DROPS_GENERATION);
}

static inline bool rdkafka_compression_needs_produce_v0(void) {
    return rdkafka_has_bug(RDKAFKA_BUG_COMPRESSION_NEEDS_PRODUCE_V0);
}

static inline bool rdkafka_scram_nonce_sent_twice(void) {
    return rdkafka_has_bug(RDKAFKA_BUG_SCRAM_NONCE_SENT_TWICE);
}

#endif
