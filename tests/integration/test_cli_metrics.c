/* `kaffe consume --metrics-addr 127.0.0.1:PORT` as a user runs it: /metrics
 * is scraped over HTTP while the command consumes (it is held mid-way by
 * its own stdout pipe, which the test drains slowly), the text passes
 * `promtool check metrics`, the counters match what the command printed,
 * and the server goes away with the command. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mock/mock_cluster.h"
#include "support/mock_suite.h"
#include "support/plain_client.h"
#include "support/subprocess.h"

enum { PER_PARTITION = 10000 }; /* 2 x 10000 value lines: ~220 KB > a pipe */

MOCK_CLUSTER_SUITE(cli_metrics, 1, 180, {"cm", 2});

/* A port that was free a moment ago (the kernel's pick for port 0). */
static uint16_t free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

/* GET path over HTTP/1.0; the response (malloc'ed), or NULL if nothing
 * listens. */
static char *http_get(uint16_t port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return NULL;
    }
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0)
        if ((len += (size_t)r) + 1 == cap)
            buf = realloc(buf, cap *= 2);
    buf[len] = '\0';
    close(fd);
    return buf;
}

static double sample(const char *body, const char *prefix) {
    for (const char *at = body; (at = strstr(at, prefix)); at++)
        if (at == body || at[-1] == '\n')
            return strtod(strchr(at, ' ') + 1, NULL);
    return -1;
}

static void check_with_promtool(const char *body) {
    char path[] = "/tmp/kaffe-cli-scrape-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    char cmd[256], out[4096];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(path);
    cr_assert_eq(st, 0, "promtool: %s\n%.2000s", out, body);
}

/* Scrapes until the endpoint answers 200; returns the body (malloc'ed). */
static char *scrape(uint16_t port) {
    for (int i = 0; i < 500; i++) {
        char *resp = http_get(port, "/metrics");
        if (resp) {
            cr_assert_eq(strncmp(resp + 9, "200", 3), 0, "%.300s", resp);
            char *body = strstr(resp, "\r\n\r\n");
            cr_assert_not_null(body);
            memmove(resp, body + 4, strlen(body + 4) + 1);
            return resp;
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("nothing listens on port %u", port);
    return NULL;
}

#define HANDLED "kaffe_consumer_messages_handled_total{group=\"g-cli-metrics\"}"

Test(cli_metrics, consume_serves_valid_metrics_while_consuming) {
    const char *b = mock_cluster_bootstraps(mc);
    for (int p = 0; p < 2; p++)
        cr_assert_eq(plain_produce(b, "cm", p, PER_PARTITION, 10000, 0), PER_PARTITION);
    uint16_t port = free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    char *argv[] = {KAFFE_CLI_PATH,
                    "consume",
                    "-b",
                    (char *)b,
                    "-t",
                    "cm",
                    "-g",
                    "g-cli-metrics",
                    "--earliest",
                    "--format",
                    "value",
                    "--metrics-addr",
                    addr,
                    "-X",
                    "rdkafka.log_level=2",
                    NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    char line[256];
    long read_lines = 0;
    for (; read_lines < 1000; read_lines++)
        cr_assert_eq(subprocess_read_line(&sp, line, sizeof line, 30000), 0);

    /* Mid-way: the command blocks on its stdout pipe until we read more. */
    char *body = scrape(port);
    check_with_promtool(body);
    double handled = sample(body, HANDLED);
    cr_assert_geq(handled, 1000, "%.1500s", body);
    cr_assert_lt(handled, 2 * PER_PARTITION, "not mid-way: %f", handled);
    cr_assert_neq(sample(body, "kaffe_consumer_partition_assigned{group=\"g-cli-metrics\","
                               "topic=\"cm\",partition=\"1\"}"),
                  -1);
    free(body);

    for (; read_lines < 2 * PER_PARTITION; read_lines++)
        cr_assert_eq(subprocess_read_line(&sp, line, sizeof line, 30000), 0);
    /* Everything printed: the counters reach the total (the last handler
     * calls return just after printing; a message counts as acked only
     * after its handler call is counted). */
    int64_t deadline = time(NULL) + 10;
    for (;;) {
        body = scrape(port);
        handled = sample(body, HANDLED);
        if ((handled == 2 * PER_PARTITION &&
             sample(body, "kaffe_consumer_messages_acked_total{group=\"g-cli-metrics\"}") ==
                 2 * PER_PARTITION) ||
            time(NULL) > deadline)
            break;
        free(body);
    }
    cr_assert_eq(handled, 2 * PER_PARTITION);
    cr_assert_eq(sample(body, "kaffe_consumer_messages_acked_total{group=\"g-cli-metrics\"}"),
                 2 * PER_PARTITION);
    check_with_promtool(body);
    free(body);

    cr_assert_eq(subprocess_stop(&sp, SIGTERM, 30000), 0);
    char *gone = http_get(port, "/metrics");
    cr_assert_null(gone, "the server outlived the command");
}

Test(cli_metrics, a_bad_metrics_addr_is_a_usage_error) {
    char *argv[] = {KAFFE_CLI_PATH,   "consume",   "-b", "127.0.0.1:1", "-t", "cm", "-g", "g",
                    "--metrics-addr", "localhost", NULL};
    subprocess_t sp;
    cr_assert_eq(subprocess_start(&sp, argv, 0), 0);
    cr_assert_eq(subprocess_wait(&sp, 10000), 2);
}
