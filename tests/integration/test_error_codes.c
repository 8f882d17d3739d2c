/* One fault, one code: a refused broker is told with kaffe's codes to the
 * consumer's and the producer's error callbacks alike, once each (not also
 * as log lines), and the produce call fails with the same code. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <kaffe/kaffe.h>

#include "common/clock.h"

#define REFUSED "127.0.0.1:1" /* nothing listens on port 1 */
#define MAX_SEEN 64

typedef struct seen {
    pthread_mutex_t lock;
    int statuses[MAX_SEEN];
    int count;
    int error_log_lines; /* log lines at KAFFE_LOG_ERROR */
} seen_t;

static void seen_error(int status, const char *reason, void *opaque) {
    (void)reason;
    seen_t *s = opaque;
    pthread_mutex_lock(&s->lock);
    if (s->count < MAX_SEEN)
        s->statuses[s->count++] = status;
    pthread_mutex_unlock(&s->lock);
}

static void seen_log(int level, const char *facility, const char *line, void *opaque) {
    seen_t *s = opaque;
    if (level != KAFFE_LOG_ERROR)
        return;
    cr_log_info("error log line: %s: %s", facility, line);
    pthread_mutex_lock(&s->lock);
    s->error_log_lines++;
    pthread_mutex_unlock(&s->lock);
}

static int seen_count(seen_t *s) {
    pthread_mutex_lock(&s->lock);
    int n = s->count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static kaffe_conf_t *refused_conf(seen_t *s, const char *extra_name, const char *extra_value) {
    kaffe_conf_t *conf = kaffe_conf_new();
    char err[256];
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", REFUSED, err, sizeof err), KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "topics", "codes", err, sizeof err), KAFFE_OK, "%s", err);
    if (extra_name)
        cr_assert_eq(kaffe_conf_set(conf, extra_name, extra_value, err, sizeof err), KAFFE_OK, "%s",
                     err);
    kaffe_conf_set_error_cb(conf, seen_error, s);
    kaffe_conf_set_log_cb(conf, seen_log, s);
    return conf;
}

/* Every status s saw is kaffe's code for a refused broker. */
static void assert_broker_codes(seen_t *s, const char *side) {
    pthread_mutex_lock(&s->lock);
    cr_assert_gt(s->count, 0, "%s: no error told", side);
    for (int i = 0; i < s->count; i++)
        cr_assert(s->statuses[i] == KAFFE_ERR_TRANSPORT ||
                      s->statuses[i] == KAFFE_ERR_ALL_BROKERS_DOWN,
                  "%s: told %s (%d)", side, kaffe_err_name(s->statuses[i]), s->statuses[i]);
    cr_assert_eq(s->error_log_lines, 0, "%s: an error told to the callback was also logged", side);
    pthread_mutex_unlock(&s->lock);
}

static int noop_handler(kaffe_message_t *m, void *opaque) {
    (void)m;
    (void)opaque;
    return KAFFE_OK;
}

Test(error_codes, a_refused_broker_has_the_same_codes_on_both_sides, .timeout = 60) {
    seen_t cs = {.lock = PTHREAD_MUTEX_INITIALIZER}, ps = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char err[256];

    kaffe_conf_t *cconf = refused_conf(&cs, "consumer_group", "g-codes");
    kaffe_conf_set_message_handler(cconf, noop_handler, NULL);
    kaffe_consumer_t *c = kaffe_consumer_new(cconf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);

    kaffe_producer_t *p =
        kaffe_producer_new(refused_conf(&ps, "produce_timeout_ms", "2000"), err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    kaffe_status_t produced = kaffe_produce_sync(p, "k", 1, "v", 1);
    cr_assert(produced == KAFFE_ERR_ALL_BROKERS_DOWN || produced == KAFFE_ERR_TRANSPORT,
              "produce: %s", kaffe_err_name(produced));

    int64_t deadline = clock_now_ms() + 20000;
    while ((seen_count(&cs) == 0 || seen_count(&ps) == 0) && clock_now_ms() < deadline)
        clock_sleep_ms(20);
    kaffe_producer_destroy(p);
    int last = kaffe_consumer_last_error(c, NULL, 0);
    kaffe_consumer_destroy(c);
    assert_broker_codes(&cs, "consumer");
    assert_broker_codes(&ps, "producer");
    cr_assert(last == KAFFE_ERR_TRANSPORT || last == KAFFE_ERR_ALL_BROKERS_DOWN, "last error %s",
              kaffe_err_name(last));
}

Test(error_codes, names_are_the_c_enum_names) {
    cr_assert_str_eq(kaffe_err_name(KAFFE_ERR_TRANSPORT), "KAFFE_ERR_TRANSPORT");
    cr_assert_str_eq(kaffe_err_name(KAFFE_ERR_ALL_BROKERS_DOWN), "KAFFE_ERR_ALL_BROKERS_DOWN");
    cr_assert_str_eq(kaffe_err_name(-195), "RD_KAFKA_RESP_ERR__TRANSPORT");
    cr_assert_str_eq(kaffe_err_name(27), "RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS");
}
