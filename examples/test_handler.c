/* test_handler — testing your own handler with <kaffe/testing.h> and
 * Criterion: an embedded cluster in the test's process, fixture messages,
 * the real handler run through a kaffe consumer until a condition holds,
 * then assertions on what it did and on the committed offsets.
 *
 * The handler under test adds up order amounts per customer: the key is the
 * customer, the value "amount=<cents>". A value it cannot parse is a
 * failure (it returns 1); with on_error = dead_letter such a message goes to
 * the dead-letter topic and the rest carries on.
 *
 * Build: cc test_handler.c -lkaffe -lcriterion; run: ./test_handler. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/kaffe.h>
#include <kaffe/testing.h>

/* --- the application's code under test ----------------------------------- */

typedef struct totals {
    pthread_mutex_t lock;
    char customer[8][16];
    long cents[8];
    int customers;
    long orders; /* handled */
} totals_t;

static int add_order(kaffe_message_t *m, void *opaque) {
    totals_t *t = opaque;
    size_t klen, vlen;
    const char *key = kaffe_message_key(m, &klen);
    const char *value = kaffe_message_value(m, &vlen);
    char buf[32];
    long cents;
    snprintf(buf, sizeof buf, "%.*s", value ? (int)vlen : 0, value ? value : "");
    if (!key || klen >= 16 || sscanf(buf, "amount=%ld", &cents) != 1)
        return 1; /* a failure: on_error decides */
    pthread_mutex_lock(&t->lock);
    int i = 0;
    while (i < t->customers && strncmp(t->customer[i], key, klen) != 0)
        i++;
    if (i == t->customers && t->customers < 8)
        snprintf(t->customer[t->customers++], 16, "%.*s", (int)klen, key);
    if (i < 8)
        t->cents[i] += cents;
    t->orders++;
    pthread_mutex_unlock(&t->lock);
    return KAFFE_OK;
}

/* --- the tests ------------------------------------------------------------ */

static kaffe_test_cluster_t *cluster;
static totals_t totals;

static void setup(void) {
    char err[256];
    cluster = kaffe_test_cluster_new(1, err, sizeof err);
    cr_assert_not_null(cluster, "%s", err);
    cr_assert_eq(kaffe_test_cluster_create_topic(cluster, "orders", 2), KAFFE_OK);
    cr_assert_eq(kaffe_test_cluster_create_topic(cluster, "orders-dead", 1), KAFFE_OK);
    memset(&totals, 0, sizeof totals);
    pthread_mutex_init(&totals.lock, NULL);
}

static void teardown(void) {
    kaffe_test_cluster_destroy(cluster);
    pthread_mutex_destroy(&totals.lock);
}

TestSuite(orders, .init = setup, .fini = teardown, .timeout = 60);

static void order(const char *customer, const char *value) {
    cr_assert_eq(kaffe_test_cluster_produce(cluster, "orders", -1, customer, strlen(customer),
                                            value, strlen(value), NULL),
                 KAFFE_OK);
}

static long orders_handled(void) {
    pthread_mutex_lock(&totals.lock);
    long n = totals.orders;
    pthread_mutex_unlock(&totals.lock);
    return n;
}

static int five_orders(void *opaque) {
    (void)opaque;
    return orders_handled() >= 5;
}

static long cents_of(const char *customer) {
    for (int i = 0; i < totals.customers; i++)
        if (strcmp(totals.customer[i], customer) == 0)
            return totals.cents[i];
    return 0;
}

static int64_t committed_total(const char *group) {
    int64_t total = 0;
    for (int p = 0; p < 2; p++) {
        int64_t offset;
        cr_assert_eq(kaffe_test_cluster_committed(cluster, group, "orders", p, &offset), KAFFE_OK);
        total += offset < 0 ? 0 : offset;
    }
    return total;
}

static kaffe_consumer_t *consumer(const char *group, const char *on_error) {
    kaffe_conf_t *conf = kaffe_test_cluster_consumer_conf(cluster, group, "orders");
    char err[512];
    cr_assert_eq(kaffe_conf_set(conf, "on_error", on_error, err, sizeof err), KAFFE_OK, "%s", err);
    if (strcmp(on_error, "dead_letter") == 0)
        cr_assert_eq(kaffe_conf_set(conf, "dead_letter_topic", "orders-dead", err, sizeof err),
                     KAFFE_OK, "%s", err);
    kaffe_conf_set_message_handler(conf, add_order, &totals);
    kaffe_consumer_t *c = kaffe_consumer_new(conf, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

Test(orders, amounts_add_up_per_customer_and_everything_is_committed) {
    order("alice", "amount=1000");
    order("bob", "amount=250");
    order("alice", "amount=500");
    order("carol", "amount=1");
    order("bob", "amount=250");
    kaffe_consumer_t *c = consumer("billing", "stop");
    cr_assert_eq(kaffe_test_consume_until(c, five_orders, NULL, 30000), KAFFE_OK);
    kaffe_consumer_destroy(c);
    cr_assert_eq(cents_of("alice"), 1500);
    cr_assert_eq(cents_of("bob"), 500);
    cr_assert_eq(cents_of("carol"), 1);
    cr_assert_eq(committed_total("billing"), 5);
}

Test(orders, an_unreadable_order_is_dead_lettered_and_the_rest_handled) {
    order("alice", "amount=1000");
    order("bob", "twelve euros");
    order("alice", "amount=1");
    order("bob", "amount=2");
    order("carol", "amount=3");
    order("dave", "amount=4");
    kaffe_consumer_t *c = consumer("billing-dl", "dead_letter");
    cr_assert_eq(kaffe_test_consume_until(c, five_orders, NULL, 30000), KAFFE_OK);
    kaffe_consumer_destroy(c);
    cr_assert_eq(cents_of("alice"), 1001);
    cr_assert_eq(cents_of("bob"), 2);
    cr_assert_eq(committed_total("billing-dl"), 6);
    int64_t dead;
    cr_assert_eq(kaffe_test_cluster_log_end(cluster, "orders-dead", 0, &dead), KAFFE_OK);
    cr_assert_eq(dead, 1, "dead-lettered: %lld", (long long)dead);
}
