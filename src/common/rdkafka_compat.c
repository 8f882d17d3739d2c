/* Which librdkafka versions have the bugs of rdkafka_compat.h. */
#include <stdatomic.h>

#include <librdkafka/rdkafka.h>

#include "common/rdkafka_compat.h"

/* rd_kafka_version()'s layout: 0xMMmmrrpp (pp: pre-release id, 0xff for a
 * release). Only major.minor.revision is compared. */
#define RDKAFKA_VERSION_OF(major, minor, revision)                                                 \
    (((major) << 24) | ((minor) << 16) | ((revision) << 8))

static const struct {
    int fixed_in; /* the first release without the bug */
    const char *str;
} bugs[RDKAFKA_BUG_COUNT] = {
    [RDKAFKA_BUG_CLOSE_BEFORE_FIRST_ASSIGNMENT_ABORTS] =
        {RDKAFKA_VERSION_OF(2, 3, 0), "librdkafka issue #4312 (fixed in 2.3.0)"},
    [RDKAFKA_BUG_COMMIT_DURING_JOIN_DROPS_GENERATION] =
        {RDKAFKA_VERSION_OF(2, 10, 0), "librdkafka issue #4059 (fixed in 2.10.0)"},
    [RDKAFKA_BUG_COMPRESSION_NEEDS_PRODUCE_V0] = {RDKAFKA_VERSION_OF(2, 11, 1),
                                                  "librdkafka issue #4956 (fixed in 2.11.1)"},
    [RDKAFKA_BUG_SCRAM_NONCE_SENT_TWICE] = {RDKAFKA_VERSION_OF(2, 6, 1),
                                            "librdkafka issue #4895 (fixed in 2.6.1)"},
};

/* -1: by version; 0 / 1: a test's rdkafka_bug_assume. relaxed: a standalone
 * switch, set before the code it affects runs. */
static atomic_int assumed[RDKAFKA_BUG_COUNT] = {-1, -1, -1, -1};
_Static_assert(RDKAFKA_BUG_COUNT == 4, "one -1 per bug in assumed[]");

bool rdkafka_has_bug(rdkafka_bug_t bug) {
    int a = atomic_load_explicit(&assumed[bug], memory_order_relaxed);
    if (a >= 0)
        return a != 0;
    return (rd_kafka_version() & ~0xff) < bugs[bug].fixed_in;
}

const char *rdkafka_bug_str(rdkafka_bug_t bug) {
    return bugs[bug].str;
}

void rdkafka_bug_assume(rdkafka_bug_t bug, int has) {
    atomic_store_explicit(&assumed[bug], has < 0 ? -1 : has != 0, memory_order_relaxed);
}
