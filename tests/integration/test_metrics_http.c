/* The /metrics endpoint (src/cli/metrics_http.c, behind `kaffe consume
 * --metrics-addr`): scraped over real HTTP while a consumer consumes, the
 * body validated by promtool. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kaffe/kaffe.h>

#include "cli/metrics_http.h"
#include "consumer_helpers.h"
#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"

MOCK_CLUSTER_SUITE(metrics_http, 1, 120, {"mh", 2});

/* A plain HTTP/1.0 request; returns the whole response (malloc'ed). */
static char *http(uint16_t port, const char *method, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static int promtool_ok(const char *body, char *out, size_t out_size) {
    char path[] = "/tmp/kaffe-scrape-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, out_size - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(path);
    return st == 0;
}

/* The value of the first sample line starting with prefix, or -1. */
static double sample(const char *body, const char *prefix) {
    const char *at = body;
    while ((at = strstr(at, prefix))) {
        if (at == body || at[-1] == '\n')
            return strtod(strchr(at, ' ') + 1, NULL);
        at++;
    }
    return -1;
}

/* Slow enough (0.5 ms a message, 2 partitions in parallel: ~1 s) that the
 * scrapes happen while messages flow. */
static int slow_handler(kaffe_message_t *m, void *opaque) {
    struct timespec ts = {0, 500000};
    nanosleep(&ts, NULL);
    return record_handler(m, opaque);
}

Test(metrics_http, scraped_while_consuming_and_valid_for_promtool) {
    const char *b = mock_cluster_bootstraps(mc);
    for (int p = 0; p < 2; p++)
        cr_assert_eq(plain_produce(b, "mh", p, 2000, 0, 0), 2000);
    recorder_t r;
    recorder_init(&r);
    char err[512];
    kaffe_consumer_t *c = kaffe_consumer_new(
        test_conf(b, "mh", "g-metrics-http", slow_handler, &r, NULL), err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cli_metrics_server_t *srv = cli_metrics_serve("127.0.0.1:0", c, err, sizeof err);
    cr_assert_not_null(srv, "%s", err);
    uint16_t port = cli_metrics_port(srv);
    cr_assert_gt(port, 0);
    cr_assert_eq(kaffe_consumer_start(c), KAFFE_OK);

    /* Scrape repeatedly while messages flow: each answer is valid, and the
     * handled counter never goes back. */
    double last = -1;
    int scrapes = 0, mid_flight = 0;
    int64_t deadline = clock_now_ms() + 30000;
    while (clock_now_ms() < deadline) {
        char *resp = http(port, "GET", "/metrics");
        cr_assert_eq(strncmp(resp, "HTTP/1.", 7), 0);
        cr_assert_eq(strncmp(resp + 9, "200", 3), 0, "%.200s", resp);
        cr_assert_not_null(strstr(resp, "text/plain; version=0.0.4"), "%.300s", resp);
        char *body = strstr(resp, "\r\n\r\n");
        cr_assert_not_null(body);
        body += 4;
        double handled =
            sample(body, "kaffe_consumer_messages_handled_total{group=\"g-metrics-http\"}");
        cr_assert_geq(handled, last);
        last = handled;
        if (handled > 0 && handled < 4000)
            mid_flight++;
        char out[4096];
        if (scrapes % 10 == 0) /* promtool takes ~50 ms: check every 10th */
            cr_assert(promtool_ok(body, out, sizeof out), "promtool: %s\n%s", out, body);
        scrapes++;
        if (handled == 4000) {
            /* Both partitions are labelled. */
            cr_assert_neq(sample(body, "kaffe_consumer_partition_assigned{group=\"g-metrics-"
                                       "http\",topic=\"mh\",partition=\"1\"}"),
                          -1);
            free(resp);
            break;
        }
        free(resp);
        clock_sleep_ms(2);
    }
    cr_assert_eq(last, 4000, "handled %f after %d scrapes", last, scrapes);
    cr_assert_gt(mid_flight, 0, "no scrape happened while messages flowed");
    char *resp = http(port, "GET", "/nope");
    cr_assert_eq(strncmp(resp + 9, "404", 3), 0, "%.200s", resp);
    free(resp);
    resp = http(port, "POST", "/metrics");
    cr_assert_eq(strncmp(resp + 9, "405", 3), 0, "%.200s", resp);
    free(resp);
    cli_metrics_stop(srv);
    kaffe_consumer_destroy(c);
    recorder_free(&r);
}

Test(metrics_http, bad_addresses_are_refused_with_a_message) {
    char host[64], err[256];
    uint16_t port;
    cr_assert_eq(
        cli_metrics_parse_addr("127.0.0.1:9400", host, sizeof host, &port, err, sizeof err), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 9400);
    cr_assert_eq(cli_metrics_parse_addr("9400", host, sizeof host, &port, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "HOST:PORT"));
    cr_assert_eq(
        cli_metrics_parse_addr("127.0.0.1:99999", host, sizeof host, &port, err, sizeof err), -1);
    cr_assert_eq(cli_metrics_parse_addr("localhost:80", host, sizeof host, &port, err, sizeof err),
                 -1);
    cr_assert_null(cli_metrics_serve("nonsense", NULL, err, sizeof err));
}
