/* Pieces of the `kaffe` command that need no broker: JSON lines (UTF-8
 * check, escapes, base64 for other bytes) and delayed acks. The command is
 * not a library, so its sources are compiled in here. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "cli/delayed_ack.c"
#include "cli/json_line.c"

static const char *field(const char *name, const void *bytes, size_t len, json_buf_t *b) {
    json_buf_reset(b);
    json_field_bytes(b, false, name, bytes, len);
    return b->data;
}

Test(cli_json, valid_utf8_is_accepted_and_malformed_is_not) {
    cr_assert(json_utf8_valid("", 0));
    cr_assert(json_utf8_valid("plain ascii", 11));
    cr_assert(json_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    cr_assert_not(json_utf8_valid("\xff", 1));
    cr_assert_not(json_utf8_valid("\xc3", 1));             /* truncated */
    cr_assert_not(json_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    cr_assert_not(json_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    cr_assert_not(json_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    cr_assert_not(json_utf8_valid("ok\x80", 3));
}

Test(cli_json, strings_are_escaped_as_json_requires) {
    json_buf_t b = {0};
    cr_assert_str_eq(field("v", "a\"b\\c\nd\te\x01", 10, &b),
                     "\"v\": \"a\\\"b\\\\c\\nd\\te\\u0001\"");
    cr_assert_str_eq(field("v", "caf\xc3\xa9", 5, &b), "\"v\": \"caf\xc3\xa9\"");
    cr_assert_str_eq(field("k", "", 0, &b), "\"k\": \"\"");
    cr_assert_str_eq(field("k", NULL, 0, &b), "\"k\": null");
    json_buf_free(&b);
}

Test(cli_json, other_bytes_go_to_a_base64_field) {
    json_buf_t b = {0};
    cr_assert_str_eq(field("value", "\xff", 1, &b), "\"value_base64\": \"/w==\"");
    cr_assert_str_eq(field("value", "\xff\x00", 2, &b), "\"value_base64\": \"/wA=\"");
    cr_assert_str_eq(field("value", "\xff\x00\x01", 3, &b), "\"value_base64\": \"/wAB\"");
    json_buf_free(&b);
}

Test(cli_json, a_whole_line) {
    json_buf_t b = {0};
    json_buf_raw(&b, "{", 1);
    json_field_bytes(&b, false, "topic", "t", 1);
    json_field_int(&b, true, "partition", 3);
    json_field_int(&b, true, "offset", -1);
    json_field_null(&b, true, "timestamp");
    json_buf_raw(&b, "}", 1);
    cr_assert_str_eq(b.data,
                     "{\"topic\": \"t\", \"partition\": 3, \"offset\": -1, \"timestamp\": null}");
    json_buf_free(&b);
}

typedef struct acks {
    pthread_mutex_t lock;
    long order[1000];
    size_t n;
    pthread_t thread[1000];
} acks_t;

static void record(void *item, void *opaque) {
    acks_t *a = opaque;
    pthread_mutex_lock(&a->lock);
    a->thread[a->n] = pthread_self();
    a->order[a->n++] = (long)(intptr_t)item;
    pthread_mutex_unlock(&a->lock);
}

Test(cli_delayed_ack, every_item_is_acked_once_from_another_thread_out_of_order) {
    static acks_t a = {.lock = PTHREAD_MUTEX_INITIALIZER};
    delayed_ack_t *d = delayed_ack_new(0, 2000, record, &a);
    cr_assert(d);
    for (long i = 1; i <= 1000; i++)
        delayed_ack_push(d, (void *)(intptr_t)i);
    /* Wait (bounded) until the thread has acked everything. */
    for (int i = 0; i < 500 && delayed_ack_pending(d) > 0; i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    cr_assert_eq(delayed_ack_pending(d), 0);
    delayed_ack_destroy(d);
    cr_assert_eq(a.n, 1000);
    static char seen[1001];
    size_t inversions = 0;
    for (size_t i = 0; i < a.n; i++) {
        cr_assert(a.order[i] >= 1 && a.order[i] <= 1000);
        cr_assert_eq(seen[a.order[i]], 0, "item %ld acked twice", a.order[i]);
        seen[a.order[i]] = 1;
        cr_assert_not(pthread_equal(a.thread[i], pthread_self()));
        if (i && a.order[i] < a.order[i - 1])
            inversions++;
    }
    cr_assert_gt(inversions, 0, "random delays should reorder 1000 acks");
}

Test(cli_delayed_ack, destroy_acks_what_is_still_pending) {
    static acks_t a = {.lock = PTHREAD_MUTEX_INITIALIZER};
    delayed_ack_t *d = delayed_ack_new(60000000, 60000000, record, &a); /* a minute */
    for (long i = 1; i <= 10; i++)
        delayed_ack_push(d, (void *)(intptr_t)i);
    cr_assert_eq(delayed_ack_pending(d), 10);
    delayed_ack_destroy(d);
    cr_assert_eq(a.n, 10);
}
