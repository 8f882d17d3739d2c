/* The Prometheus text rendering of the stats structs, checked by a strict
 * parser of the exposition format (0.0.4), and the latency buckets. */
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kaffe/stats.h>

#include "metrics/histogram.h"
#include "metrics/stats_export.h"

/* --- a strict parser ------------------------------------------------------ */

typedef struct label {
    char name[64];
    char value[512]; /* unescaped */
} label_t;

typedef struct sample {
    char name[128];
    label_t labels[8];
    int label_count;
    double value;
} sample_t;

typedef struct family {
    char name[128];
    char type[16];
    int has_help;
} family_t;

typedef struct parsed {
    family_t families[64];
    int family_count;
    sample_t samples[512];
    int sample_count;
} parsed_t;

static int valid_name(const char *s, size_t n) {
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return 0;
    return 1;
}

static family_t *family_of(parsed_t *p, const char *name) {
    for (int i = 0; i < p->family_count; i++)
        if (strcmp(p->families[i].name, name) == 0)
            return &p->families[i];
    return NULL;
}

/* The family a sample belongs to (histogram suffixes stripped). */
static family_t *family_for_sample(parsed_t *p, const char *name) {
    family_t *f = family_of(p, name);
    if (f)
        return f;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(name), k = strlen(suffixes[i]);
        if (n > k && strcmp(name + n - k, suffixes[i]) == 0) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(n - k), name);
            f = family_of(p, base);
            if (f && strcmp(f->type, "histogram") == 0)
                return f;
        }
    }
    return NULL;
}

static void parse(const char *text, parsed_t *p) {
    memset(p, 0, sizeof *p);
    const char *line = text;
    cr_assert(text[0] == '\0' || text[strlen(text) - 1] == '\n', "text must end with a newline");
    while (*line) {
        const char *end = strchr(line, '\n');
        cr_assert_not_null(end);
        size_t len = (size_t)(end - line);
        char buf[1024];
        cr_assert_lt(len, sizeof buf);
        memcpy(buf, line, len);
        buf[len] = '\0';
        if (strncmp(buf, "# HELP ", 7) == 0 || strncmp(buf, "# TYPE ", 7) == 0) {
            char *name = buf + 7;
            char *sp = strchr(name, ' ');
            cr_assert_not_null(sp, "%s", buf);
            *sp = '\0';
            cr_assert(valid_name(name, strlen(name)), "bad name in %s", buf);
            family_t *f = family_of(p, name);
            if (!f) {
                f = &p->families[p->family_count++];
                snprintf(f->name, sizeof f->name, "%s", name);
            }
            if (buf[2] == 'H') {
                cr_assert_not(f->has_help, "two HELP lines for %s", name);
                cr_assert_gt(strlen(sp + 1), 0);
                f->has_help = 1;
            } else {
                cr_assert_eq(f->type[0], '\0', "two TYPE lines for %s", name);
                const char *t = sp + 1;
                cr_assert(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0 ||
                              strcmp(t, "histogram") == 0,
                          "type %s", t);
                snprintf(f->type, sizeof f->type, "%s", t);
            }
        } else {
            cr_assert_neq(buf[0], '#', "unexpected comment %s", buf);
            sample_t *s = &p->samples[p->sample_count++];
            memset(s, 0, sizeof *s);
            const char *c = buf;
            size_t n = strcspn(c, "{ ");
            cr_assert(valid_name(c, n), "bad sample name in %s", buf);
            snprintf(s->name, sizeof s->name, "%.*s", (int)n, c);
            c += n;
            if (*c == '{') {
                c++;
                while (*c != '}') {
                    label_t *l = &s->labels[s->label_count++];
                    size_t ln = strcspn(c, "=");
                    cr_assert(valid_name(c, ln), "bad label name in %s", buf);
                    snprintf(l->name, sizeof l->name, "%.*s", (int)ln, c);
                    c += ln;
                    cr_assert_eq(*c++, '=');
                    cr_assert_eq(*c++, '"', "unquoted label value in %s", buf);
                    size_t vi = 0;
                    while (*c != '"') {
                        cr_assert_neq(*c, '\0', "unterminated label value in %s", buf);
                        char ch = *c++;
                        if (ch == '\\') {
                            char e = *c++;
                            cr_assert(e == '\\' || e == '"' || e == 'n', "bad escape in %s", buf);
                            ch = e == 'n' ? '\n' : e;
                        }
                        l->value[vi++] = ch;
                    }
                    c++;
                    if (*c == ',')
                        c++;
                    else
                        cr_assert_eq(*c, '}', "bad label list in %s", buf);
                }
                c++;
            }
            cr_assert_eq(*c++, ' ', "no value in %s", buf);
            char *vend;
            s->value = strtod(c, &vend);
            cr_assert(vend != c && *vend == '\0', "bad value in %s", buf);
            family_t *f = family_for_sample(p, s->name);
            cr_assert_not_null(f, "sample %s without HELP/TYPE", s->name);
            cr_assert(f->has_help && f->type[0], "sample %s before its HELP and TYPE", s->name);
        }
        line = end + 1;
    }
}

static const char *label_value(const sample_t *s, const char *name) {
    for (int i = 0; i < s->label_count; i++)
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    return NULL;
}

/* Checks each histogram family: le ascending, counts cumulative, +Inf last
 * and equal to _count. */
static void check_histograms(const parsed_t *p) {
    for (int fi = 0; fi < p->family_count; fi++) {
        const family_t *f = &p->families[fi];
        if (strcmp(f->type, "histogram") != 0)
            continue;
        char bucket[160], count[160];
        snprintf(bucket, sizeof bucket, "%s_bucket", f->name);
        snprintf(count, sizeof count, "%s_count", f->name);
        double last_le = -1, last_count = 0, inf_count = -1, total = -1;
        int buckets = 0;
        for (int i = 0; i < p->sample_count; i++) {
            const sample_t *s = &p->samples[i];
            if (strcmp(s->name, bucket) == 0) {
                const char *le = label_value(s, "le");
                cr_assert_not_null(le);
                cr_assert_lt(inf_count, 0, "bucket after +Inf");
                double v = strcmp(le, "+Inf") == 0 ? 1e300 : strtod(le, NULL);
                cr_assert_gt(v, last_le, "le not ascending in %s", f->name);
                cr_assert_geq(s->value, last_count, "buckets not cumulative in %s", f->name);
                last_le = v;
                last_count = s->value;
                if (strcmp(le, "+Inf") == 0)
                    inf_count = s->value;
                buckets++;
            } else if (strcmp(s->name, count) == 0) {
                total = s->value;
            }
        }
        cr_assert_gt(buckets, 1);
        cr_assert_geq(inf_count, 0, "no +Inf bucket in %s", f->name);
        cr_assert_eq(inf_count, total, "+Inf bucket != _count in %s", f->name);
    }
}

/* --- fixtures ------------------------------------------------------------- */

static histogram_t hist;

static kaffe_consumer_stats_t sample_stats(kaffe_partition_stats_t *parts) {
    kaffe_consumer_stats_t s = {0};
    snprintf(s.group, sizeof s.group, "billing");
    s.running = 1;
    s.messages_dispatched = 10;
    s.messages_handled = 9;
    s.messages_acked = 8;
    histogram_reset(&hist);
    histogram_record(&hist, 500);        /* 0.5 us */
    histogram_record(&hist, 1500000);    /* 1.5 ms */
    histogram_record(&hist, 3000000000); /* 3 s */
    histogram_record(&hist, UINT64_C(100000000000));
    metrics_latency_from_histogram(&hist, &s.handler_latency);
    memset(parts, 0, 2 * sizeof *parts);
    snprintf(parts[0].topic, sizeof parts[0].topic, "orders");
    parts[0].partition = 0;
    parts[0].assigned = 1;
    parts[0].committed_offset = 5;
    parts[0].lag = 7;
    parts[0].in_flight = 3;
    parts[0].oldest_unacked_age_ms = 1234;
    snprintf(parts[1].topic, sizeof parts[1].topic, "we\"ird\\to\npic");
    parts[1].partition = 12;
    parts[1].committed_offset = -1;
    parts[1].lag = -1;
    parts[1].paused = 1;
    s.partitions = parts;
    s.partition_count = 2;
    return s;
}

static const sample_t *find(const parsed_t *p, const char *name, const char *topic,
                            const char *partition) {
    for (int i = 0; i < p->sample_count; i++) {
        const sample_t *s = &p->samples[i];
        if (strcmp(s->name, name) != 0)
            continue;
        const char *t = label_value(s, "topic"), *pa = label_value(s, "partition");
        if ((!topic || (t && strcmp(t, topic) == 0)) &&
            (!partition || (pa && strcmp(pa, partition) == 0)))
            return s;
    }
    return NULL;
}

/* --- tests ---------------------------------------------------------------- */

Test(stats_prometheus, consumer_text_parses_with_labels_types_and_histogram) {
    kaffe_partition_stats_t parts[2];
    kaffe_consumer_stats_t s = sample_stats(parts);
    static char text[65536];
    size_t len = kaffe_consumer_stats_prometheus(&s, text, sizeof text);
    cr_assert_eq(len, strlen(text));
    static parsed_t p;
    parse(text, &p);
    check_histograms(&p);
    for (int i = 0; i < p.family_count; i++) {
        cr_assert_eq(strncmp(p.families[i].name, "kaffe_", 6), 0, "%s", p.families[i].name);
        size_t n = strlen(p.families[i].name);
        if (strcmp(p.families[i].type, "counter") == 0)
            cr_assert_str_eq(p.families[i].name + n - 6, "_total");
    }
    for (int i = 0; i < p.sample_count; i++)
        cr_assert_str_eq(label_value(&p.samples[i], "group"), "billing", "%s", p.samples[i].name);
    const sample_t *x = find(&p, "kaffe_consumer_partition_lag_messages", "orders", "0");
    cr_assert_not_null(x);
    cr_assert_eq(x->value, 7);
    x = find(&p, "kaffe_consumer_partition_paused", "we\"ird\\to\npic", "12");
    cr_assert_not_null(x, "escaped topic did not round-trip:\n%s", text);
    cr_assert_eq(x->value, 1);
    x = find(&p, "kaffe_consumer_partition_committed_offset", "we\"ird\\to\npic", "12");
    cr_assert_eq(x->value, -1);
    x = find(&p, "kaffe_consumer_partition_oldest_unacked_age_seconds", "orders", "0");
    cr_assert_float_eq(x->value, 1.234, 1e-9);
    x = find(&p, "kaffe_consumer_messages_acked_total", NULL, NULL);
    cr_assert_eq(x->value, 8);
    x = find(&p, "kaffe_consumer_handler_latency_seconds_count", NULL, NULL);
    cr_assert_eq(x->value, 4);
    x = find(&p, "kaffe_consumer_handler_latency_seconds_sum", NULL, NULL);
    cr_assert_float_eq(x->value, 103.0015015, 1e-6);
}

Test(stats_prometheus, latency_buckets_place_known_values) {
    histogram_reset(&hist);
    histogram_record(&hist, 500);                    /* <= 1 us */
    histogram_record(&hist, 1500000);                /* <= 2 ms */
    histogram_record(&hist, 3000000000);             /* <= 5 s */
    histogram_record(&hist, UINT64_C(100000000000)); /* +Inf only */
    kaffe_latency_stats_t l;
    metrics_latency_from_histogram(&hist, &l);
    cr_assert_eq(l.count, 4);
    cr_assert_eq(l.bucket_le_ns[0], 1000);
    cr_assert_eq(l.bucket_count[0], 1);
    /* Index of 2 ms: decades from 1 us: k=3 -> 0..2, k=4 -> 3..5, k=5 -> 6..8, k=6 -> 9..11. */
    cr_assert_eq(l.bucket_le_ns[10], 2000000);
    cr_assert_eq(l.bucket_count[9], 1, "1 ms bucket");
    cr_assert_eq(l.bucket_count[10], 2, "2 ms bucket");
    cr_assert_eq(l.bucket_le_ns[20], UINT64_C(5000000000));
    cr_assert_eq(l.bucket_count[19], 2);
    cr_assert_eq(l.bucket_count[20], 3);
    cr_assert_eq(l.bucket_le_ns[21], UINT64_C(10000000000));
    cr_assert_eq(l.bucket_count[21], 3);
    cr_assert_eq(l.bucket_le_ns[22], UINT64_MAX);
    cr_assert_eq(l.bucket_count[22], 4);
    cr_assert_eq(l.sum_ns, UINT64_C(103001500500));
}

Test(stats_prometheus, short_buffer_is_truncated_like_snprintf) {
    kaffe_partition_stats_t parts[2];
    kaffe_consumer_stats_t s = sample_stats(parts);
    static char full[65536];
    size_t len = kaffe_consumer_stats_prometheus(&s, full, sizeof full);
    char small[100];
    memset(small, 'x', sizeof small);
    cr_assert_eq(kaffe_consumer_stats_prometheus(&s, small, sizeof small), len);
    cr_assert_eq(strlen(small), sizeof small - 1);
    cr_assert_eq(strncmp(small, full, sizeof small - 1), 0);
    cr_assert_eq(kaffe_consumer_stats_prometheus(&s, NULL, 0), len);
}

Test(stats_prometheus, producer_text_parses) {
    kaffe_producer_stats_t s = {
        .messages_produced = 3, .messages_failed = 1, .messages_in_flight = 2};
    histogram_reset(&hist);
    histogram_record(&hist, 2500000);
    metrics_latency_from_histogram(&hist, &s.produce_latency);
    static char text[16384];
    static parsed_t p;
    kaffe_producer_stats_prometheus(&s, NULL, text, sizeof text);
    parse(text, &p);
    check_histograms(&p);
    cr_assert_eq(p.samples[0].label_count, 0, "no name: no labels");
    kaffe_producer_stats_prometheus(&s, "orders", text, sizeof text);
    parse(text, &p);
    check_histograms(&p);
    const sample_t *x = find(&p, "kaffe_producer_messages_failed_total", NULL, NULL);
    cr_assert_eq(x->value, 1);
    cr_assert_str_eq(label_value(x, "producer"), "orders");
}
