/* tests/support — the real Apache Kafka cluster of the real-cluster tier
 * (tests/cluster).
 *
 * scripts/kafka/cluster.sh start writes an env file (KEY=VALUE lines: the
 * proxies' bootstrap, per node its pid, ports and Toxiproxy proxy) and
 * scripts/test.sh passes its path in KAFFE_CLUSTER_ENV. These helpers read
 * it and drive the cluster through the same script (node signals and
 * restarts, "serves again" waits, the active controller, partition leaders,
 * Toxiproxy toxics), so a test does exactly what a person at the shell
 * would. Not thread-safe: call from the test's main thread. */
#ifndef KAFFE_TESTS_SUPPORT_CLUSTER_ENV_H
#define KAFFE_TESTS_SUPPORT_CLUSTER_ENV_H

#include <stdbool.h>
#include <stddef.h>

/* Checks that $KAFFE_CLUSTER_ENV names a readable env file. false, with a
 * message saying how to run the tier, otherwise. */
bool cluster_env_load(char *errstr, size_t errstr_size);

/* A value of the env file as it is now (pids change on restarts), copied to
 * buf; NULL when the key is missing. */
const char *cluster_env(const char *key, char *buf, size_t size);

/* The bootstrap list through the proxies (static for the run). */
const char *cluster_bootstrap(void);

/* Node count. */
int cluster_nodes(void);

/* Runs `scripts/kafka/cluster.sh COMMAND $KAFFE_CLUSTER_ENV ARGS`, ARGS
 * formatted from fmt (may be ""). Its stdout (trimmed) goes to out when out
 * is not NULL. Returns the exit status (0: done), -1 if it could not run. */
int cluster_ctl(char *out, size_t out_size, const char *command, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The integer a query command (controller, leader, coordinator) printed,
 * or -1. */
int cluster_query(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
