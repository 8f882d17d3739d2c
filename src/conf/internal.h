/* src/conf — declarations shared by the conf room's own files only. */
#ifndef KAFFE_SRC_CONF_INTERNAL_H
#define KAFFE_SRC_CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <kaffe/conf.h>

/* The rdkafka.<property> passthrough pairs, in the order first set. */
size_t conf_passthrough_count(const kaffe_conf_t *conf);
void conf_passthrough_at(const kaffe_conf_t *conf, size_t i, const char **name, const char **value);

/* The value of rdkafka.<name> if set, else NULL. */
const char *conf_passthrough_find(const kaffe_conf_t *conf, const char *name);

/* True when librdkafka stores the same value for name given a or b (so
 * "earliest" equals "smallest"); a value it rejects compares by string. */
bool conf_rdkafka_equal(const char *name, const char *a, const char *b);

/* True for librdkafka property names whose values must never be echoed
 * (passwords, keys, PEM text, secrets). */
bool conf_rdkafka_name_is_secret(const char *name);

#endif
