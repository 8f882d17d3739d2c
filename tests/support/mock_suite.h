/* tests/support — the embedded cluster of a Criterion suite (integration
 * tier): start it asserting, and the suite fixture most integration tests
 * share. Header-only, for Criterion binaries only (it asserts with
 * cr_assert; the race programs use mock_cluster_start() directly).
 *
 * Criterion runs a suite's .init in each test's own process, before the
 * test, and .fini after it: every test gets a fresh cluster. */
#ifndef KAFFE_TESTS_SUPPORT_MOCK_SUITE_H
#define KAFFE_TESTS_SUPPORT_MOCK_SUITE_H

#include <stddef.h>

#include <criterion/criterion.h>

#include "mock/mock_cluster.h"

/* Starts an embedded cluster of broker_count brokers with topic_count
 * topics (topics may be NULL when topic_count is 0). Never returns NULL: if
 * the cluster cannot start, the calling test (or suite init) fails with
 * mock_cluster_start()'s message. The caller stops it with
 * mock_cluster_stop(). */
static inline mock_cluster_t *test_mock_cluster_start(int broker_count, const mock_topic_t *topics,
                                                      size_t topic_count) {
    char err[256];
    mock_cluster_t *mc = mock_cluster_start(broker_count, topics, topic_count, err, sizeof err);
    cr_assert_not_null(mc, "%s", err);
    return mc;
}

/* MOCK_CLUSTER_SUITE(suite, broker_count, timeout_s, topics...) declares,
 * at file scope:
 *   - `static mock_cluster_t *mc;` the running cluster, for the tests;
 *   - the Criterion suite `suite` with .timeout = timeout_s, whose .init
 *     starts mc (test_mock_cluster_start: broker_count brokers, the listed
 *     topics, each written {"name", partitions}; none listed: no topics)
 *     and whose .fini stops it.
 * E.g. MOCK_CLUSTER_SUITE(stats, 1, 120, {"st", 3}, {"stp", 2});
 * A suite that needs more than that at start (data, fault injection, other
 * globals) writes its own .init around test_mock_cluster_start().
 *
 * The topic table starts with a placeholder entry that is never passed on,
 * so that an empty list is still valid C11 (no empty initializer). */
#define MOCK_CLUSTER_SUITE(suite, broker_count, timeout_s, ...)                                    \
    static mock_cluster_t *mc;                                                                     \
    static const mock_topic_t suite##_topics[] = {{NULL, 0}, __VA_ARGS__};                         \
    static void suite##_start_cluster(void) {                                                      \
        mc = test_mock_cluster_start((broker_count), suite##_topics + 1,                           \
                                     sizeof suite##_topics / sizeof suite##_topics[0] - 1);        \
    }                                                                                              \
    static void suite##_stop_cluster(void) {                                                       \
        mock_cluster_stop(mc);                                                                     \
    }                                                                                              \
    TestSuite(suite, .init = suite##_start_cluster, .fini = suite##_stop_cluster,                  \
              .timeout = (timeout_s))

#endif
