/* src/conf — declarations shared by the conf room's own files only. */
#ifndef KAFFE_SRC_CONF_INTERNAL_H
#define KAFFE_SRC_CONF_INTERNAL_H

#include <stddef.h>

#include <kaffe/conf.h>

/* The rdkafka.<property> passthrough pairs, in the order first set. */
size_t conf_passthrough_count(const kaffe_conf_t *conf);
void conf_passthrough_at(const kaffe_conf_t *conf, size_t i, const char **name, const char **value);

#endif
