/* GET /metrics over libmicrohttpd. See metrics_http.h. */
#include "cli/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include <kaffe/stats.h>

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct cli_metrics_server {
    struct MHD_Daemon *daemon;
    kaffe_consumer_t *consumer;
    uint16_t port;
    /* Owned by the daemon's single internal thread (requests are served
     * one at a time), reused across requests. */
    kaffe_consumer_stats_t stats;
    char *text;
    size_t text_size;
};

int cli_metrics_parse_addr(const char *addr, char *host, size_t host_size, uint16_t *port,
                           char *err, size_t err_size) {
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon || colon == addr || (size_t)(colon - addr) >= host_size) {
        snprintf(err, err_size,
                 "--metrics-addr: expected HOST:PORT (e.g. 127.0.0.1:9400), got \"%s\"",
                 addr ? addr : "");
        return -1;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535) {
        snprintf(err, err_size, "--metrics-addr: bad port in \"%s\" (0..65535)", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct in_addr probe;
    if (inet_pton(AF_INET, host, &probe) != 1) {
        snprintf(err, err_size, "--metrics-addr: \"%s\" is not an IPv4 address", host);
        return -1;
    }
    *port = (uint16_t)p;
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* The daemon thread: one request at a time. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    cli_metrics_server_t *s = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static const char msg[] = "only GET\n";
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, msg, sizeof msg - 1);
    }
    if (strcmp(url, "/metrics") != 0) {
        static const char msg[] = "not found: try /metrics\n";
        return reply(conn, MHD_HTTP_NOT_FOUND, msg, sizeof msg - 1);
    }
    if (kaffe_consumer_stats(s->consumer, &s->stats) != KAFFE_OK) {
        static const char msg[] = "stats unavailable (out of memory)\n";
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, msg, sizeof msg - 1);
    }
    size_t len = kaffe_consumer_stats_prometheus(&s->stats, s->text, s->text_size);
    if (len >= s->text_size) {
        size_t size = (len + 1) * 2;
        char *grown = realloc(s->text, size);
        if (!grown) {
            static const char msg[] = "out of memory\n";
            return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, msg, sizeof msg - 1);
        }
        s->text = grown;
        s->text_size = size;
        len = kaffe_consumer_stats_prometheus(&s->stats, s->text, s->text_size);
    }
    return reply(conn, MHD_HTTP_OK, s->text, len);
}

cli_metrics_server_t *cli_metrics_serve(const char *addr, kaffe_consumer_t *c, char *err,
                                        size_t err_size) {
    char host[64];
    uint16_t port;
    if (cli_metrics_parse_addr(addr, host, sizeof host, &port, err, err_size) != 0)
        return NULL;
    cli_metrics_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    s->consumer = c;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    /* One internal thread (no thread per connection): the handler's buffers
     * are the thread's own. */
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, port, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, err_size, "--metrics-addr: cannot listen on %s (address in use?)", addr);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : port;
    return s;
}

uint16_t cli_metrics_port(const cli_metrics_server_t *s) {
    return s->port;
}

void cli_metrics_stop(cli_metrics_server_t *s) {
    if (!s)
        return;
    MHD_stop_daemon(s->daemon); /* joins the internal thread */
    kaffe_consumer_stats_free(&s->stats);
    free(s->text);
    free(s);
}
