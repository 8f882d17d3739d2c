/* Compression against the real broker: kaffe's producer with compression =
 * gzip, snappy, lz4 and zstd; every message read back intact; and the
 * record batches as the broker stored them, read from the partition's log
 * segment on disk (KAFFE_BROKER_DIR/data/<topic>-0): each batch's codec
 * (the low three bits of its attributes) and the segment's size against the
 * uncompressed payload.
 *
 * librdkafka before 2.11.1 uses gzip, snappy and lz4 only with a broker
 * that advertises Produce version 0 (zstd has a check of the same kind,
 * which a broker advertising Produce v7 or below passes); otherwise it
 * sends the batches uncompressed, and says so ("Broker does not support
 * compression type ...: not compressing batch") only in a debug line
 * (rdkafka.debug=msg; librdkafka issues #4948, #4956;
 * src/common/rdkafka_compat.h). KIP-896 removed Produce v0-v2 from Apache
 * Kafka 4.0, but 4.0 and 4.1 still advertise them (KAFKA-18659), so a stock
 * broker compresses with either librdkafka. The test asks the broker which
 * Produce versions it advertises: with an affected librdkafka and a broker
 * that does not advertise them, it expects exactly that limit (uncompressed
 * batches, the debug line) and says so, instead of failing; otherwise
 * every batch must carry the codec asked for and the segment must be well
 * below the payload. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <kaffe/kaffe.h>

#include "common/rdkafka_compat.h"
#include "support/broker_env.h"
#include "support/plain_client.h"

#define MESSAGES 2000
#define VALUE_BYTES 1000

static void load_env(void) {
    char err[512];
    cr_assert(broker_env_load(err, sizeof err), "%s", err);
}

TestSuite(compression, .init = load_env, .timeout = 180);

/* The Produce versions the broker advertises (its ApiVersions answer, as
 * librdkafka's "feature" debug lines report it). */
static atomic_int produce_min = -1, produce_max = -1;

static void probe_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *line) {
    (void)rk;
    (void)level;
    (void)fac;
    const char *v = strstr(line, "ApiKey Produce (0) Versions ");
    int lo, hi;
    if (v && sscanf(v, "ApiKey Produce (0) Versions %d..%d", &lo, &hi) == 2) {
        atomic_store(&produce_min, lo);
        atomic_store(&produce_max, hi);
    }
}

static void probe_produce_versions(const char *bootstraps) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err),
                 RD_KAFKA_CONF_OK, "%s", err);
    cr_assert_eq(rd_kafka_conf_set(conf, "debug", "feature", err, sizeof err), RD_KAFKA_CONF_OK,
                 "%s", err);
    rd_kafka_conf_set_log_cb(conf, probe_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    const struct rd_kafka_metadata *md = NULL;
    cr_assert_eq(rd_kafka_metadata(rk, 0, NULL, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    cr_assert_geq(atomic_load(&produce_min), 0, "no ApiVersions line for Produce in the debug log");
}

/* Message i's value: compressible text that still differs per message. */
static void make_value(char *buf, long i) {
    int n = snprintf(buf, VALUE_BYTES + 1, "value-%ld:", i);
    static const char filler[] = "kaffe compresses this repetitive line of text. ";
    for (int j = n; j < VALUE_BYTES; j++)
        buf[j] = filler[(j - n) % (sizeof filler - 1)];
    buf[VALUE_BYTES] = '\0';
}

static atomic_int not_compressing; /* librdkafka's "not compressing batch" lines */

static void log_cb(int level, const char *facility, const char *message, void *opaque) {
    (void)level;
    (void)facility;
    (void)opaque;
    if (strstr(message, "not compressing batch"))
        atomic_fetch_add(&not_compressing, 1);
}

static atomic_int delivered, failed;

static void delivery_cb(const kaffe_delivery_report_t *report, void *opaque) {
    (void)opaque;
    atomic_fetch_add(report->status == KAFFE_OK ? &delivered : &failed, 1);
}

/* The record batches of one log segment: how many, by codec (0 none,
 * 1 gzip, 2 snappy, 3 lz4, 4 zstd), and the file's size. */
typedef struct segment {
    long batches, by_codec[8];
    long long bytes;
} segment_t;

static int read_be16(const unsigned char *p) {
    return (p[0] << 8) | p[1];
}

static long read_be32(const unsigned char *p) {
    return (long)(((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) |
                  ((unsigned long)p[2] << 8) | p[3]);
}

/* Record batch v2 (magic 2): baseOffset int64, batchLength int32 (the bytes
 * after it), partitionLeaderEpoch int32, magic int8, crc uint32,
 * attributes int16, ... */
static void read_segment(const char *path, segment_t *seg) {
    memset(seg, 0, sizeof *seg);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "no log segment at %s", path);
    unsigned char head[23];
    while (fread(head, 1, sizeof head, f) == sizeof head) {
        long length = read_be32(head + 8);
        cr_assert_eq(head[16], 2, "%s: batch %ld has magic %d, not 2", path, seg->batches,
                     head[16]);
        seg->by_codec[read_be16(head + 21) & 7]++;
        seg->batches++;
        cr_assert_eq(fseek(f, 12 + length - (long)sizeof head, SEEK_CUR), 0);
    }
    struct stat st;
    cr_assert_eq(fstat(fileno(f), &st), 0);
    seg->bytes = (long long)st.st_size;
    fclose(f);
}

static void produce_and_check(const char *codec, int codec_id) {
    char topic[128], err[512], prefix[64];
    snprintf(prefix, sizeof prefix, "compress-%s", codec);
    broker_unique_topic(topic, sizeof topic, prefix);
    cr_assert_eq(broker_create_topic(topic, 1, err, sizeof err), 0, "%s", err);
    const char *b = broker_env("KAFFE_BROKER_PLAINTEXT");

    kaffe_conf_t *conf = kaffe_conf_new();
    cr_assert_eq(kaffe_conf_set(conf, "endpoints", b, err, sizeof err), KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "topics", topic, err, sizeof err), KAFFE_OK, "%s", err);
    cr_assert_eq(kaffe_conf_set(conf, "compression", codec, err, sizeof err), KAFFE_OK, "%s", err);
    kaffe_conf_set_log_cb(conf, log_cb, NULL);
    /* librdkafka 2.0.2 tells of the limit only in a "msg" debug line. */
    cr_assert_eq(kaffe_conf_set(conf, "rdkafka.debug", "msg", err, sizeof err), KAFFE_OK);
    cr_assert_eq(kaffe_conf_set(conf, "log_level", "debug", err, sizeof err), KAFFE_OK);
    kaffe_producer_t *p = kaffe_producer_new(conf, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    char key[32], value[VALUE_BYTES + 1];
    long long payload = 0;
    for (long i = 0; i < MESSAGES; i++) {
        snprintf(key, sizeof key, "key-%ld", i);
        make_value(value, i);
        kaffe_produce_msg_t m = KAFFE_PRODUCE_MSG_INIT;
        m.partition = 0;
        m.key = key;
        m.key_len = strlen(key);
        m.value = value;
        m.value_len = VALUE_BYTES;
        payload += (long long)(m.key_len + m.value_len);
        cr_assert_eq(kaffe_produce_async(p, &m, delivery_cb, NULL), KAFFE_OK);
    }
    cr_assert_eq(kaffe_producer_flush(p, 60000), KAFFE_OK);
    kaffe_producer_destroy(p);
    cr_assert_eq(atomic_load(&delivered), MESSAGES, "delivered %d, failed %d",
                 atomic_load(&delivered), atomic_load(&failed));

    plain_message_t *msgs = NULL;
    size_t n = plain_consume_all(b, topic, MESSAGES, 3000, &msgs);
    cr_assert_eq(n, MESSAGES, "read back %zu of %d", n, MESSAGES);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(msgs[i].offset, (int64_t)i);
        snprintf(key, sizeof key, "key-%zu", i);
        make_value(value, (long)i);
        cr_assert_str_eq(msgs[i].key, key);
        cr_assert_eq(msgs[i].value_len, VALUE_BYTES);
        cr_assert(memcmp(msgs[i].value, value, VALUE_BYTES) == 0, "value of offset %zu", i);
    }
    plain_messages_free(msgs, n);

    char path[1024];
    snprintf(path, sizeof path, "%s/data/%s-0/00000000000000000000.log",
             broker_env("KAFFE_BROKER_DIR"), topic);
    segment_t seg;
    read_segment(path, &seg);
    /* The affected librdkafka uses gzip, snappy and lz4 only if the broker
     * advertises Produce v0, zstd only if it advertises v7 or below. */
    probe_produce_versions(b);
    int lowest = atomic_load(&produce_min);
    bool limited =
        rdkafka_compression_needs_produce_v0() && (codec_id == 4 ? lowest > 7 : lowest > 0);
    fprintf(stderr,
            "compression %s: librdkafka %s, broker Produce v%d..v%d: %ld batches (%ld %s, %ld "
            "uncompressed), "
            "segment %lld bytes for %lld bytes of keys and values (%.1f%%); %d "
            "\"not compressing batch\" log lines%s%s\n",
            codec, rd_kafka_version_str(), lowest, atomic_load(&produce_max), seg.batches,
            seg.by_codec[codec_id], codec, seg.by_codec[0], seg.bytes, payload,
            100.0 * (double)seg.bytes / (double)payload, atomic_load(&not_compressing),
            limited ? "; expected, the limit of " : "",
            limited ? rdkafka_bug_str(RDKAFKA_BUG_COMPRESSION_NEEDS_PRODUCE_V0) : "");
    cr_assert_gt(seg.batches, 0);
    if (limited) {
        /* The documented limit: sent uncompressed, and said so in the log. */
        cr_assert_eq(seg.by_codec[0], seg.batches, "%s: expected uncompressed batches (%s)", codec,
                     rdkafka_bug_str(RDKAFKA_BUG_COMPRESSION_NEEDS_PRODUCE_V0));
        cr_assert_geq(seg.bytes, payload);
        cr_assert_gt(atomic_load(&not_compressing), 0);
        return;
    }
    cr_assert_eq(seg.by_codec[codec_id], seg.batches, "%s: %ld of %ld batches compressed so", codec,
                 seg.by_codec[codec_id], seg.batches);
    cr_assert_lt(seg.bytes, payload / 4, "%s: segment %lld bytes for a payload of %lld", codec,
                 seg.bytes, payload);
    cr_assert_eq(atomic_load(&not_compressing), 0);
}

Test(compression, gzip) {
    produce_and_check("gzip", 1);
}

Test(compression, snappy) {
    produce_and_check("snappy", 2);
}

Test(compression, lz4) {
    produce_and_check("lz4", 3);
}

Test(compression, zstd) {
    produce_and_check("zstd", 4);
}
