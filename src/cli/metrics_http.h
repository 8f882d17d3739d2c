/* src/cli — the /metrics HTTP endpoint of `kaffe consume --metrics-addr`.
 *
 * Served by libmicrohttpd (Debian: libmicrohttpd-dev) on its own internal
 * thread: GET /metrics answers the Prometheus text of the consumer's stats
 * (kaffe_consumer_stats + kaffe_consumer_stats_prometheus, taken per
 * request); other paths get 404, other methods 405. Requests are served
 * one at a time on that thread, which owns the snapshot and text buffers. */
#ifndef KAFFE_SRC_CLI_METRICS_HTTP_H
#define KAFFE_SRC_CLI_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <kaffe/consumer.h>

typedef struct cli_metrics_server cli_metrics_server_t;

/* Parses "host:port" (IPv4 literal, port 0..65535; 0 picks a free port).
 * Returns 0, or -1 with a message in err. */
int cli_metrics_parse_addr(const char *addr, char *host, size_t host_size, uint16_t *port,
                           char *err, size_t err_size);

/* Starts serving c's metrics at addr. c must outlive the server (stop the
 * server before destroying the consumer). NULL with a message in err on a
 * bad address or when the socket cannot be bound. Any thread. */
cli_metrics_server_t *cli_metrics_serve(const char *addr, kaffe_consumer_t *c, char *err,
                                        size_t err_size);

/* The port actually bound (useful with port 0). */
uint16_t cli_metrics_port(const cli_metrics_server_t *s);

/* Stops the server: waits for a request in progress, then frees it. NULL
 * is allowed. */
void cli_metrics_stop(cli_metrics_server_t *s);

#endif
