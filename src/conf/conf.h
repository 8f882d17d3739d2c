/* src/conf — the configuration room's door for the rest of kaffe.
 *
 * The public half (kaffe_conf_set/get/load) is in include/kaffe/conf.h. This
 * header gives the other rooms typed, validated reads and the one place
 * where a kaffe configuration becomes a librdkafka configuration.
 *
 * Thread safety: a kaffe_conf_t is immutable once a consumer or producer owns
 * it, so these getters may then be called from any thread. */
#ifndef KAFFE_SRC_CONF_H
#define KAFFE_SRC_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include <kaffe/conf.h>

typedef enum conf_role {
    CONF_ROLE_CONSUMER = 1,
    CONF_ROLE_PRODUCER = 2,
} conf_role_t;

/* The value of a known property (its default when unset). The name must be
 * in the table: an unknown name is a programming error and aborts. The
 * returned string lives as long as conf and is never NULL. */
const char *conf_str(const kaffe_conf_t *conf, const char *name);

/* True when name was set (directly, or through an alias such as
 * offset_commit_interval_seconds for commit_interval_ms), false when it
 * still has its default. Accepts "rdkafka.<property>" too; any other unknown
 * name is a programming error and aborts, as in conf_str(). */
bool conf_is_set(const kaffe_conf_t *conf, const char *name);

/* Typed reads of int and bool properties (validated at set time). */
int64_t conf_int(const kaffe_conf_t *conf, const char *name);
bool conf_bool(const kaffe_conf_t *conf, const char *name);

/* The position of an enum property's value in its row's choices, counted
 * from 0 in table order ("stop|retry|dead_letter|pause": "retry" is 1), so a
 * room maps a value to its own enum by declaring the enum in the same order.
 * The name must be a PROP_ENUM row (anything else aborts, as in conf_str());
 * the value was validated at set time, so the result is always in range. */
int conf_choice(const kaffe_conf_t *conf, const char *name);

/* Splits a comma-separated list property (e.g. "topics") into a
 * NULL-terminated array of trimmed, non-empty strings. Returns the count;
 * *out is owned by the caller and freed with conf_list_free(). */
size_t conf_list(const kaffe_conf_t *conf, const char *name, char ***out);
void conf_list_free(char **list);

/* Callbacks set through the public setters (NULL when unset). */
kaffe_message_handler_t conf_message_handler(const kaffe_conf_t *conf, void **opaque);
kaffe_batch_handler_t conf_batch_handler(const kaffe_conf_t *conf, void **opaque);

/* Topic routes: a topic's own handler (kaffe_conf_set_topic_handler) and
 * settings (topic.<topic>.<property>, for the properties of
 * conf_route_props). conf_route_value is NULL where the route has no value
 * of its own (the consumer's applies); conf_route_handler NULL where it
 * has no handler of its own (the default handler applies). */
#define CONF_ROUTE_PROPS 5
extern const char *const conf_route_props[CONF_ROUTE_PROPS];
size_t conf_route_count(const kaffe_conf_t *conf);
const char *conf_route_topic(const kaffe_conf_t *conf, size_t i);
kaffe_message_handler_t conf_route_handler(const kaffe_conf_t *conf, size_t i, void **opaque);
const char *conf_route_value(const kaffe_conf_t *conf, size_t i, const char *prop);
kaffe_error_cb_t conf_error_cb(const kaffe_conf_t *conf, void **opaque);
kaffe_partitioner_t conf_partitioner(const kaffe_conf_t *conf, void **opaque);
kaffe_log_cb_t conf_log_cb(const kaffe_conf_t *conf, void **opaque);

/* Logging (log.c). Any thread, once conf is owned by a consumer or
 * producer (immutable). A line below the log_level property is dropped;
 * otherwise every secret value of conf (and any PEM private key block) is
 * replaced by "[redacted]" and the line goes to the log callback, or to
 * stderr when none is set. */
void conf_log(const kaffe_conf_t *conf, int level, const char *facility, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An error for the application (status, one line of text): to conf's error
 * callback when one is set, otherwise logged at error level under facility
 * (redacted as conf_log). Never both, so one fault is told once. Any thread. */
void conf_report_error(const kaffe_conf_t *conf, const char *facility, int status,
                       const char *text);

/* A librdkafka log line (its syslog level and facility) through conf's log
 * sink: the mapping behind conf_route_rdkafka_logs(). */
void conf_log_rdkafka(const kaffe_conf_t *conf, int level, const char *fac, const char *line);

/* Routes the librdkafka log lines of the client made from rdconf through
 * conf_log_rdkafka(), on librdkafka's threads. Call before rd_kafka_new.
 * librdkafka 2.0.2 hands a log callback nothing but the rd_kafka_t, whose
 * one user pointer (rd_kafka_opaque) the owner's other callbacks need too;
 * so the convention: the rd_kafka_t's opaque points to a struct whose first
 * member is its `const kaffe_conf_t *` (the owner states it in its
 * internal.h with a static assert that its offset is 0), set before
 * rd_kafka_new and immutable while the client lives. A NULL opaque drops the
 * lines. (log.queue would move the lines onto the owner's own threads, and
 * a table keyed by rd_kafka_t misses the lines rd_kafka_new logs before it
 * returns.) */
void conf_route_rdkafka_logs(rd_kafka_conf_t *rdconf);

/* Checks that everything the role needs is set and consistent (endpoints or
 * heroku_kafka_env, topics, consumer_group and a handler for a consumer,
 * settings that exclude or need each other, SASL credentials) and that TLS
 * material is usable: PEM files readable, certificates and keys parse, the
 * key matches the certificate. With heroku_kafka_env=true it reads and checks
 * KAFKA_URL and the PEM variables. Nothing connects. Returns KAFFE_OK, or
 * KAFFE_ERR_INVALID_CONF (a setting), KAFFE_ERR_ENV (a Heroku variable) or
 * KAFFE_ERR_IO (an unreadable PEM file) with a message naming the setting or
 * variable and never containing a key, certificate or password. */
kaffe_status_t conf_validate(const kaffe_conf_t *conf, conf_role_t role, char *errstr,
                             size_t errstr_size);

/* True when the consumer is to use KIP-848's consumer group protocol:
 * group_protocol=consumer, or rdkafka.group.protocol=consumer with
 * group_protocol unset. conf_validate refuses it on a librdkafka older than
 * 2.12.0 and together with the classic protocol's settings. Any thread
 * (conf is immutable once owned). */
bool conf_group_protocol_consumer(const kaffe_conf_t *conf);

/* Builds the librdkafka configuration for the role: bootstrap servers,
 * security, mapped Kaffe names, and every rdkafka.<property> passthrough.
 * For a consumer also group.id, enable.auto.commit=false,
 * enable.auto.offset.store=false, auto.offset.reset from
 * start_with_earliest_message, and group.protocol=consumer or (classic)
 * partition.assignment.strategy=cooperative-sticky. Returns NULL with errstr
 * set on failure; the caller owns the result (rd_kafka_conf_destroy, or hand
 * it to rd_kafka_new). */
rd_kafka_conf_t *conf_to_rdkafka(const kaffe_conf_t *conf, conf_role_t role, char *errstr,
                                 size_t errstr_size);

/* conf_to_rdkafka with the reason as a status (conf_validate's codes): on
 * success *out is the caller's, on failure NULL. A kaffe setting never loses
 * silently to an rdkafka.<property> that says otherwise: that is an error. */
kaffe_status_t conf_build_rdkafka(const kaffe_conf_t *conf, conf_role_t role, rd_kafka_conf_t **out,
                                  char *errstr, size_t errstr_size);

/* Writes docs/CONFIGURATION.md (Markdown, generated from the property table)
 * to out. Returns 0, or -1 on a write error. */
int conf_write_docs(FILE *out);

#endif /* KAFFE_SRC_CONF_H */
