/* src/metrics — turning internal histograms into the public stats types,
 * and the Prometheus text rendering (src/metrics/prometheus.c). */
#ifndef KAFFE_SRC_METRICS_STATS_EXPORT_H
#define KAFFE_SRC_METRICS_STATS_EXPORT_H

#include <kaffe/stats.h>

#include "metrics/histogram.h"

/* Fills out from h (relaxed reads of every bucket: a histogram being
 * recorded into gives a consistent-enough, never torn, picture; count is
 * the sum of the buckets read, so count == the +Inf bucket). Any thread. */
void metrics_latency_from_histogram(const histogram_t *h, kaffe_latency_stats_t *out);

#endif
