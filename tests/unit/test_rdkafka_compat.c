/* src/common/rdkafka_compat: which librdkafka versions have which bug. The
 * expected answers are written here from librdkafka's CHANGELOG.md, apart
 * from the table in rdkafka_compat.c, so a wrong threshold there fails. */
#include <criterion/criterion.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "common/rdkafka_compat.h"

/* The loaded librdkafka as major.minor.revision in one comparable int. */
static int loaded(void) {
    int v = rd_kafka_version();
    return ((v >> 24) & 0xff) * 10000 + ((v >> 16) & 0xff) * 100 + ((v >> 8) & 0xff);
}

Test(rdkafka_compat, answers_by_the_loaded_version) {
    int v = loaded();
    cr_log_info("librdkafka %s", rd_kafka_version_str());
    /* #4312: fixed in 2.3.0 (#4381). */
    cr_assert_eq(rdkafka_close_before_first_assignment_aborts(), v < 20300, "librdkafka %s",
                 rd_kafka_version_str());
    /* #4059: fixed in 2.10.0 (#4908). */
    cr_assert_eq(rdkafka_commit_during_join_drops_generation(), v < 21000, "librdkafka %s",
                 rd_kafka_version_str());
    /* #4956: fixed in 2.11.1 (#5130). */
    cr_assert_eq(rdkafka_compression_needs_produce_v0(), v < 21101, "librdkafka %s",
                 rd_kafka_version_str());
    /* #4895: fixed in 2.6.1. */
    cr_assert_eq(rdkafka_scram_nonce_sent_twice(), v < 20601, "librdkafka %s",
                 rd_kafka_version_str());
}

Test(rdkafka_compat, a_test_can_assume_either_answer) {
    for (int b = 0; b < RDKAFKA_BUG_COUNT; b++) {
        bool by_version = rdkafka_has_bug((rdkafka_bug_t)b);
        rdkafka_bug_assume((rdkafka_bug_t)b, 1);
        cr_assert(rdkafka_has_bug((rdkafka_bug_t)b));
        rdkafka_bug_assume((rdkafka_bug_t)b, 0);
        cr_assert_not(rdkafka_has_bug((rdkafka_bug_t)b));
        rdkafka_bug_assume((rdkafka_bug_t)b, -1);
        cr_assert_eq(rdkafka_has_bug((rdkafka_bug_t)b), by_version);
    }
}

Test(rdkafka_compat, each_bug_names_its_issue_and_fix) {
    for (int b = 0; b < RDKAFKA_BUG_COUNT; b++) {
        const char *s = rdkafka_bug_str((rdkafka_bug_t)b);
        cr_assert(strstr(s, "librdkafka issue #") && strstr(s, "fixed in "), "%s", s);
    }
}
