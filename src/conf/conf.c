/* The kaffe_conf_t object: storage, set/get/load, and typed reads. */
#include "conf/conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errstr.h"
#include "conf/internal.h"
#include "conf/properties.h"

#define RDKAFKA_PREFIX "rdkafka."
#define ROUTE_PREFIX "topic."

typedef struct passthrough {
    char *name; /* librdkafka property name, without the "rdkafka." prefix */
    char *value;
} passthrough_t;

/* A topic's own handler and settings (topic.<name>.<property>). */
typedef struct route {
    char *topic;
    kaffe_message_handler_t handler; /* NULL: the default handler */
    void *opaque;
    char *values[CONF_ROUTE_PROPS]; /* per conf_route_props[i]; NULL: the consumer's */
} route_t;

const char *const conf_route_props[CONF_ROUTE_PROPS] = {
    "ordering", "on_error", "max_in_flight_messages", "max_in_flight_bytes", "workers"};

struct kaffe_conf_s {
    char **values;  /* per property_at(i); NULL means "default" */
    char **derived; /* per property_at(i): the value an alias row set it to (NULL: none) */
    passthrough_t *passthrough;
    size_t passthrough_count;

    kaffe_message_handler_t handler;
    void *handler_opaque;
    kaffe_batch_handler_t batch_handler;
    void *batch_handler_opaque;
    kaffe_error_cb_t error_cb;
    void *error_opaque;
    kaffe_partitioner_t partitioner;
    void *partitioner_opaque;
    kaffe_log_cb_t log_cb;
    void *log_opaque;
    route_t *routes;
    size_t route_count;
};

KAFFE_API kaffe_conf_t *kaffe_conf_new(void) {
    kaffe_conf_t *conf = calloc(1, sizeof *conf);
    if (!conf)
        return NULL;
    conf->values = calloc(property_count(), sizeof *conf->values);
    conf->derived = calloc(property_count(), sizeof *conf->derived);
    if (!conf->values || !conf->derived) {
        free(conf->values);
        free(conf->derived);
        free(conf);
        return NULL;
    }
    return conf;
}

KAFFE_API void kaffe_conf_destroy(kaffe_conf_t *conf) {
    if (!conf)
        return;
    for (size_t i = 0; i < property_count(); i++) {
        free(conf->values[i]);
        free(conf->derived[i]);
    }
    free(conf->values);
    free(conf->derived);
    for (size_t i = 0; i < conf->passthrough_count; i++) {
        free(conf->passthrough[i].name);
        free(conf->passthrough[i].value);
    }
    free(conf->passthrough);
    for (size_t i = 0; i < conf->route_count; i++) {
        free(conf->routes[i].topic);
        for (size_t j = 0; j < CONF_ROUTE_PROPS; j++)
            free(conf->routes[i].values[j]);
    }
    free(conf->routes);
    free(conf);
}

/* The route of topic, made when create and there is none. NULL: none (or
 * out of memory when create). */
static route_t *route_of(kaffe_conf_t *conf, const char *topic, size_t topic_len, bool create) {
    for (size_t i = 0; i < conf->route_count; i++)
        if (strlen(conf->routes[i].topic) == topic_len &&
            memcmp(conf->routes[i].topic, topic, topic_len) == 0)
            return &conf->routes[i];
    if (!create)
        return NULL;
    route_t *grown = realloc(conf->routes, (conf->route_count + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    conf->routes = grown;
    route_t *r = &conf->routes[conf->route_count];
    memset(r, 0, sizeof *r);
    if (!(r->topic = strndup(topic, topic_len)))
        return NULL;
    conf->route_count++;
    return r;
}

static int route_prop_index(const char *name) {
    for (int i = 0; i < CONF_ROUTE_PROPS; i++)
        if (strcmp(conf_route_props[i], name) == 0)
            return i;
    return -1;
}

/* Splits "topic.<name>.<property>" (the topic name may hold dots; the
 * property is what follows the last one). false when it is not that form. */
static bool split_route_name(const char *name, const char **topic, size_t *topic_len,
                             const char **prop) {
    if (strncmp(name, ROUTE_PREFIX, strlen(ROUTE_PREFIX)) != 0)
        return false;
    *topic = name + strlen(ROUTE_PREFIX);
    const char *dot = strrchr(*topic, '.');
    if (!dot || dot == *topic)
        return false;
    *topic_len = (size_t)(dot - *topic);
    *prop = dot + 1;
    return true;
}

static kaffe_status_t set_route(kaffe_conf_t *conf, const char *name, const char *value,
                                char *errstr, size_t errstr_size) {
    const char *topic, *prop;
    size_t topic_len;
    int index = -1;
    if (!split_route_name(name, &topic, &topic_len, &prop) ||
        (index = route_prop_index(prop)) < 0) {
        errstr_printf(errstr, errstr_size,
                      "%s: unknown property (a topic's own settings are topic.<topic>.<property> "
                      "with ordering, on_error, max_in_flight_messages, max_in_flight_bytes or "
                      "workers)",
                      name);
        return KAFFE_ERR_UNKNOWN_CONF;
    }
    char why[256];
    if (property_validate(property_find(prop), value, why, sizeof why) != KAFFE_OK) {
        errstr_printf(errstr, errstr_size, "%s: %s", name, why);
        return KAFFE_ERR_INVALID_CONF;
    }
    route_t *r = route_of(conf, topic, topic_len, true);
    char *copy = r ? strdup(value) : NULL;
    if (!copy)
        return KAFFE_ERR_NOMEM;
    free(r->values[index]);
    r->values[index] = copy;
    return KAFFE_OK;
}

KAFFE_API kaffe_status_t kaffe_conf_set_topic_handler(kaffe_conf_t *conf, const char *topic,
                                                      kaffe_message_handler_t handler,
                                                      void *opaque) {
    if (!conf || !topic || !*topic || topic[0] == '^')
        return KAFFE_ERR_INVALID_ARG;
    route_t *r = route_of(conf, topic, strlen(topic), true);
    if (!r)
        return KAFFE_ERR_NOMEM;
    r->handler = handler;
    r->opaque = opaque;
    return KAFFE_OK;
}

size_t conf_route_count(const kaffe_conf_t *conf) {
    return conf->route_count;
}

const char *conf_route_topic(const kaffe_conf_t *conf, size_t i) {
    return conf->routes[i].topic;
}

kaffe_message_handler_t conf_route_handler(const kaffe_conf_t *conf, size_t i, void **opaque) {
    if (opaque)
        *opaque = conf->routes[i].opaque;
    return conf->routes[i].handler;
}

const char *conf_route_value(const kaffe_conf_t *conf, size_t i, const char *prop) {
    int index = route_prop_index(prop);
    return index < 0 ? NULL : conf->routes[i].values[index];
}

static kaffe_status_t passthrough_put(kaffe_conf_t *conf, const char *name, const char *value) {
    for (size_t i = 0; i < conf->passthrough_count; i++) {
        if (strcmp(conf->passthrough[i].name, name) == 0) {
            char *copy = strdup(value);
            if (!copy)
                return KAFFE_ERR_NOMEM;
            free(conf->passthrough[i].value);
            conf->passthrough[i].value = copy;
            return KAFFE_OK;
        }
    }
    passthrough_t *grown =
        realloc(conf->passthrough, (conf->passthrough_count + 1) * sizeof *conf->passthrough);
    if (!grown)
        return KAFFE_ERR_NOMEM;
    conf->passthrough = grown;
    passthrough_t *slot = &conf->passthrough[conf->passthrough_count];
    slot->name = strdup(name);
    slot->value = strdup(value);
    if (!slot->name || !slot->value) {
        free(slot->name);
        free(slot->value);
        return KAFFE_ERR_NOMEM;
    }
    conf->passthrough_count++;
    return KAFFE_OK;
}

KAFFE_API kaffe_conf_t *kaffe_conf_dup(const kaffe_conf_t *conf) {
    if (!conf)
        return NULL;
    kaffe_conf_t *copy = kaffe_conf_new();
    if (!copy)
        return NULL;
    for (size_t i = 0; i < property_count(); i++) {
        if (conf->values[i] && !(copy->values[i] = strdup(conf->values[i])))
            goto oom;
        if (conf->derived[i] && !(copy->derived[i] = strdup(conf->derived[i])))
            goto oom;
    }
    for (size_t i = 0; i < conf->passthrough_count; i++)
        if (passthrough_put(copy, conf->passthrough[i].name, conf->passthrough[i].value))
            goto oom;
    for (size_t i = 0; i < conf->route_count; i++) {
        const route_t *from = &conf->routes[i];
        route_t *to = route_of(copy, from->topic, strlen(from->topic), true);
        if (!to)
            goto oom;
        to->handler = from->handler;
        to->opaque = from->opaque;
        for (size_t j = 0; j < CONF_ROUTE_PROPS; j++)
            if (from->values[j] && !(to->values[j] = strdup(from->values[j])))
                goto oom;
    }
    copy->handler = conf->handler;
    copy->handler_opaque = conf->handler_opaque;
    copy->batch_handler = conf->batch_handler;
    copy->batch_handler_opaque = conf->batch_handler_opaque;
    copy->error_cb = conf->error_cb;
    copy->error_opaque = conf->error_opaque;
    copy->partitioner = conf->partitioner;
    copy->partitioner_opaque = conf->partitioner_opaque;
    copy->log_cb = conf->log_cb;
    copy->log_opaque = conf->log_opaque;
    return copy;
oom:
    kaffe_conf_destroy(copy);
    return NULL;
}

/* Edit distance, for "did you mean" suggestions. Names are short. */
static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return (size_t)-1;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The best "did you mean" candidate seen so far. */
typedef struct suggestion {
    char name[64];
    size_t distance;
} suggestion_t;

static void consider(suggestion_t *best, const char *name, const char *candidate) {
    size_t d = edit_distance(name, candidate);
    if (d < best->distance) {
        best->distance = d;
        snprintf(best->name, sizeof best->name, "%s", candidate);
    }
}

/* Only names that are plausibly what was meant. */
static bool plausible(const suggestion_t *best, const char *name) {
    return best->distance <= 3 || (best->name[0] && strstr(best->name, name));
}

static bool closest_name(const char *name, suggestion_t *best) {
    *best = (suggestion_t){.distance = (size_t)-1};
    for (size_t i = 0; i < property_count(); i++)
        consider(best, name, property_at(i)->name);
    return plausible(best, name);
}

/* The closest of librdkafka's own property names (global and topic), read
 * from its property table (rd_kafka_conf_properties_show: one Markdown row
 * per property, the name before the first '|'). Only on the error path. */
static bool closest_rdkafka_name(const char *name, suggestion_t *best) {
    *best = (suggestion_t){.distance = (size_t)-1};
    char *table = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&table, &size);
    if (!f)
        return false;
    rd_kafka_conf_properties_show(f);
    if (fclose(f) != 0) {
        free(table);
        return false;
    }
    char *save = NULL;
    for (char *row = strtok_r(table, "\n", &save); row; row = strtok_r(NULL, "\n", &save)) {
        char *bar = strchr(row, '|');
        if (!bar)
            continue;
        while (bar > row && bar[-1] == ' ')
            bar--;
        *bar = '\0';
        /* Names are lower-case words joined by dots (the header and the
         * separator row are not). */
        if (!*row || strspn(row, "abcdefghijklmnopqrstuvwxyz0123456789._") != strlen(row))
            continue;
        consider(best, name, row);
    }
    free(table);
    return plausible(best, name);
}

static kaffe_status_t set_rdkafka(kaffe_conf_t *conf, const char *name, const char *value,
                                  char *errstr, size_t errstr_size) {
    if (!*name) {
        errstr_printf(errstr, errstr_size, "rdkafka.: a librdkafka property name must follow");
        return KAFFE_ERR_UNKNOWN_CONF;
    }
    /* Let librdkafka validate now, so the error names the property at set time. */
    rd_kafka_conf_t *scratch = rd_kafka_conf_new();
    char rderr[256];
    rd_kafka_conf_res_t res = rd_kafka_conf_set(scratch, name, value, rderr, sizeof rderr);
    rd_kafka_conf_destroy(scratch);
    if (res == RD_KAFKA_CONF_UNKNOWN) {
        suggestion_t hint;
        if (strcmp(name, "group.protocol") == 0)
            errstr_printf(errstr, errstr_size,
                          "rdkafka.group.protocol: unknown to librdkafka %s (the KIP-848 "
                          "consumer protocol needs librdkafka >= 2.12.0 and Kafka brokers "
                          ">= 4.0; see group_protocol)",
                          rd_kafka_version_str());
        else if (closest_rdkafka_name(name, &hint))
            errstr_printf(errstr, errstr_size,
                          "rdkafka.%s: unknown librdkafka property (did you mean rdkafka.%s?)",
                          name, hint.name);
        else
            errstr_printf(errstr, errstr_size, "rdkafka.%s: unknown librdkafka property", name);
        return KAFFE_ERR_UNKNOWN_CONF;
    }
    if (res != RD_KAFKA_CONF_OK) {
        /* librdkafka's message may quote the value: not for secrets. */
        if (conf_rdkafka_name_is_secret(name))
            errstr_printf(errstr, errstr_size, "rdkafka.%s: invalid value (hidden)", name);
        else
            errstr_printf(errstr, errstr_size, "rdkafka.%s: %s", name, rderr);
        return KAFFE_ERR_INVALID_CONF;
    }
    /* A kaffe property that sets the same librdkafka property must agree. */
    for (size_t i = 0; i < property_count(); i++) {
        const property_t *p = property_at(i);
        if (!property_mapped_generically(p) || strcmp(p->rdkafka_name, name) != 0 ||
            !conf->values[i])
            continue;
        const char *mapped = property_rdkafka_value(p, conf->values[i]);
        if (!conf_rdkafka_equal(name, mapped, value)) {
            if (p->secret || conf_rdkafka_name_is_secret(name))
                errstr_printf(errstr, errstr_size,
                              "rdkafka.%s: conflicts with %s, which sets the same librdkafka "
                              "property to another value; set only one",
                              name, p->name);
            else
                errstr_printf(errstr, errstr_size,
                              "rdkafka.%s: \"%s\" conflicts with %s=%s (which sets %s=%s); set "
                              "only one",
                              name, value, p->name, conf->values[i], name, mapped);
            return KAFFE_ERR_INVALID_CONF;
        }
    }
    return passthrough_put(conf, name, value);
}

bool conf_rdkafka_name_is_secret(const char *name) {
    static const char *const marks[] = {"password", "secret", "key",
                                        ".pem",     "jaas",   "sasl.oauthbearer.config"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(name, marks[i]))
            return true;
    return false;
}

bool conf_rdkafka_equal(const char *name, const char *a, const char *b) {
    if (strcmp(a, b) == 0)
        return true;
    /* librdkafka normalises synonyms (earliest = smallest, all = -1): compare
     * what it stores for each. */
    rd_kafka_conf_t *scratch = rd_kafka_conf_new();
    char rderr[256], va[512], vb[512];
    size_t na = sizeof va, nb = sizeof vb;
    bool equal = rd_kafka_conf_set(scratch, name, a, rderr, sizeof rderr) == RD_KAFKA_CONF_OK &&
                 rd_kafka_conf_get(scratch, name, va, &na) == RD_KAFKA_CONF_OK &&
                 rd_kafka_conf_set(scratch, name, b, rderr, sizeof rderr) == RD_KAFKA_CONF_OK &&
                 rd_kafka_conf_get(scratch, name, vb, &nb) == RD_KAFKA_CONF_OK &&
                 strcmp(va, vb) == 0;
    rd_kafka_conf_destroy(scratch);
    return equal;
}

const char *conf_passthrough_find(const kaffe_conf_t *conf, const char *name) {
    for (size_t i = 0; i < conf->passthrough_count; i++)
        if (strcmp(conf->passthrough[i].name, name) == 0)
            return conf->passthrough[i].value;
    return NULL;
}

static size_t index_of(const property_t *p) {
    return (size_t)(p - property_at(0));
}

static bool same_value(const property_t *p, const char *a, const char *b) {
    if (p->type == PROP_INT)
        return property_parse_int(a) == property_parse_int(b);
    return strcmp(a, b) == 0;
}

/* Checks that setting p to value agrees with an alias or canonical row that
 * is already set, and with an rdkafka.<property> that sets the same thing.
 * For an alias row, *canonical_value receives the malloc'ed value it gives
 * its canonical row. */
static kaffe_status_t check_agreement(const kaffe_conf_t *conf, const property_t *p,
                                      const char *value, char **canonical_value, char *errstr,
                                      size_t errstr_size) {
    *canonical_value = NULL;
    if (p->alias_of) {
        const property_t *c = property_find(p->alias_of);
        char scaled[32];
        const char *v = value;
        if (p->type == PROP_INT) {
            int64_t scale = p->alias_scale ? p->alias_scale : 1;
            snprintf(scaled, sizeof scaled, "%lld", (long long)(property_parse_int(value) * scale));
            v = scaled;
        }
        char why[256];
        if (property_validate(c, v, why, sizeof why) != KAFFE_OK) {
            errstr_printf(errstr, errstr_size, "%s: %s", p->name, why);
            return KAFFE_ERR_INVALID_CONF;
        }
        const char *set = conf->values[index_of(c)];
        if (set && !same_value(c, set, v)) {
            if (p->secret || c->secret)
                errstr_printf(errstr, errstr_size,
                              "%s: conflicts with %s, which is set to another value; %s is "
                              "another name for %s: set only one",
                              p->name, c->name, p->name, c->name);
            else
                errstr_printf(errstr, errstr_size,
                              "%s: %s (%s=%s) conflicts with %s=%s set before; %s is another "
                              "name for %s: set only one",
                              p->name, value, c->name, v, c->name, set, p->name, c->name);
            return KAFFE_ERR_INVALID_CONF;
        }
        if (!(*canonical_value = strdup(v)))
            return KAFFE_ERR_NOMEM;
        return KAFFE_OK;
    }
    const char *derived = conf->derived[index_of(p)];
    if (derived && !same_value(p, derived, value)) {
        const property_t *alias = NULL;
        for (size_t i = 0; i < property_count(); i++)
            if (property_at(i)->alias_of && strcmp(property_at(i)->alias_of, p->name) == 0 &&
                conf->values[i])
                alias = property_at(i);
        const char *alias_name = alias ? alias->name : "an alias";
        if (p->secret)
            errstr_printf(errstr, errstr_size, "%s: conflicts with %s set before; set only one",
                          p->name, alias_name);
        else
            errstr_printf(errstr, errstr_size,
                          "%s: %s conflicts with %s set before (which means %s=%s); set only one",
                          p->name, value, alias_name, p->name, derived);
        return KAFFE_ERR_INVALID_CONF;
    }
    if (property_mapped_generically(p)) {
        const char *pass = conf_passthrough_find(conf, p->rdkafka_name);
        const char *mapped = property_rdkafka_value(p, value);
        if (pass && !conf_rdkafka_equal(p->rdkafka_name, mapped, pass)) {
            if (p->secret || conf_rdkafka_name_is_secret(p->rdkafka_name))
                errstr_printf(errstr, errstr_size,
                              "%s: conflicts with rdkafka.%s set before; set only one", p->name,
                              p->rdkafka_name);
            else
                errstr_printf(errstr, errstr_size,
                              "%s: %s (%s=%s) conflicts with rdkafka.%s=%s set before; set only "
                              "one",
                              p->name, value, p->rdkafka_name, mapped, p->rdkafka_name, pass);
            return KAFFE_ERR_INVALID_CONF;
        }
    }
    return KAFFE_OK;
}

KAFFE_API kaffe_status_t kaffe_conf_set(kaffe_conf_t *conf, const char *name, const char *value,
                                        char *errstr, size_t errstr_size) {
    if (!conf || !name || !value) {
        errstr_printf(errstr, errstr_size, "kaffe_conf_set: conf, name and value must not be NULL");
        return KAFFE_ERR_INVALID_ARG;
    }
    if (strncmp(name, RDKAFKA_PREFIX, strlen(RDKAFKA_PREFIX)) == 0)
        return set_rdkafka(conf, name + strlen(RDKAFKA_PREFIX), value, errstr, errstr_size);
    if (strncmp(name, ROUTE_PREFIX, strlen(ROUTE_PREFIX)) == 0)
        return set_route(conf, name, value, errstr, errstr_size);

    const property_t *p = property_find(name);
    if (!p) {
        suggestion_t hint;
        if (closest_name(name, &hint))
            errstr_printf(errstr, errstr_size, "%s: unknown property (did you mean %s?)", name,
                          hint.name);
        else
            errstr_printf(errstr, errstr_size, "%s: unknown property", name);
        return KAFFE_ERR_UNKNOWN_CONF;
    }
    kaffe_status_t st = property_validate(p, value, errstr, errstr_size);
    if (st != KAFFE_OK)
        return st;
    char *canonical_value = NULL;
    st = check_agreement(conf, p, value, &canonical_value, errstr, errstr_size);
    if (st != KAFFE_OK)
        return st;
    char *copy = strdup(value);
    if (!copy) {
        free(canonical_value);
        return KAFFE_ERR_NOMEM;
    }
    size_t index = index_of(p);
    free(conf->values[index]);
    conf->values[index] = copy;
    if (canonical_value) {
        size_t c = index_of(property_find(p->alias_of));
        free(conf->derived[c]);
        conf->derived[c] = canonical_value;
    }
    return KAFFE_OK;
}

static const char *value_of(const kaffe_conf_t *conf, const char *name, bool *known) {
    const char *topic, *prop;
    size_t topic_len;
    if (split_route_name(name, &topic, &topic_len, &prop) && route_prop_index(prop) >= 0) {
        /* A topic's own value, else the consumer's. */
        route_t *r = route_of((kaffe_conf_t *)conf, topic, topic_len, false);
        const char *own = r ? r->values[route_prop_index(prop)] : NULL;
        if (own) {
            *known = true;
            return own;
        }
        name = prop;
    }
    if (strncmp(name, RDKAFKA_PREFIX, strlen(RDKAFKA_PREFIX)) == 0) {
        const char *rdname = name + strlen(RDKAFKA_PREFIX);
        for (size_t i = 0; i < conf->passthrough_count; i++)
            if (strcmp(conf->passthrough[i].name, rdname) == 0) {
                *known = true;
                return conf->passthrough[i].value;
            }
        *known = false;
        return NULL;
    }
    const property_t *p = property_find(name);
    *known = p != NULL;
    if (!p)
        return NULL;
    size_t i = (size_t)(p - property_at(0));
    const char *v = conf->values[i] ? conf->values[i] : conf->derived[i];
    return v ? v : p->default_value;
}

bool conf_is_set(const kaffe_conf_t *conf, const char *name) {
    if (strncmp(name, RDKAFKA_PREFIX, strlen(RDKAFKA_PREFIX)) == 0)
        return conf_passthrough_find(conf, name + strlen(RDKAFKA_PREFIX)) != NULL;
    const property_t *p = property_find(name);
    if (!p) {
        fprintf(stderr, "kaffe: internal error: unknown property %s\n", name);
        abort();
    }
    size_t i = (size_t)(p - property_at(0));
    return conf->values[i] || conf->derived[i];
}

KAFFE_API kaffe_status_t kaffe_conf_get(const kaffe_conf_t *conf, const char *name, char *dest,
                                        size_t *dest_size) {
    if (!conf || !name || !dest_size)
        return KAFFE_ERR_INVALID_ARG;
    bool known;
    const char *v = value_of(conf, name, &known);
    if (!known)
        return KAFFE_ERR_UNKNOWN_CONF;
    size_t need = strlen(v) + 1;
    if (!dest || *dest_size < need) {
        bool short_buffer = dest != NULL;
        *dest_size = need;
        return short_buffer ? KAFFE_ERR_INVALID_ARG : KAFFE_OK;
    }
    memcpy(dest, v, need);
    *dest_size = need;
    return KAFFE_OK;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

KAFFE_API kaffe_status_t kaffe_conf_load(kaffe_conf_t *conf, const char *path, char *errstr,
                                         size_t errstr_size) {
    if (!conf || !path)
        return KAFFE_ERR_INVALID_ARG;
    FILE *f = fopen(path, "r");
    if (!f) {
        errstr_printf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return KAFFE_ERR_IO;
    }
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    kaffe_status_t st = KAFFE_OK;
    while (getline(&line, &cap, f) != -1) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            errstr_printf(errstr, errstr_size, "%s:%u: expected name = value", path, lineno);
            st = KAFFE_ERR_INVALID_CONF;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        char why[400];
        st = kaffe_conf_set(conf, name, value, why, sizeof why);
        if (st != KAFFE_OK) {
            errstr_printf(errstr, errstr_size, "%s:%u: %s", path, lineno, why);
            break;
        }
    }
    free(line);
    fclose(f);
    return st;
}

KAFFE_API void kaffe_conf_set_message_handler(kaffe_conf_t *conf, kaffe_message_handler_t handler,
                                              void *opaque) {
    if (!conf)
        return;
    conf->handler = handler;
    conf->handler_opaque = opaque;
}

KAFFE_API void kaffe_conf_set_batch_handler(kaffe_conf_t *conf, kaffe_batch_handler_t handler,
                                            void *opaque) {
    if (!conf)
        return;
    conf->batch_handler = handler;
    conf->batch_handler_opaque = opaque;
}

KAFFE_API void kaffe_conf_set_error_cb(kaffe_conf_t *conf, kaffe_error_cb_t cb, void *opaque) {
    if (!conf)
        return;
    conf->error_cb = cb;
    conf->error_opaque = opaque;
}

KAFFE_API void kaffe_conf_set_partitioner(kaffe_conf_t *conf, kaffe_partitioner_t fn,
                                          void *opaque) {
    if (!conf)
        return;
    conf->partitioner = fn;
    conf->partitioner_opaque = opaque;
}

KAFFE_API void kaffe_conf_set_log_cb(kaffe_conf_t *conf, kaffe_log_cb_t cb, void *opaque) {
    if (!conf)
        return;
    conf->log_cb = cb;
    conf->log_opaque = opaque;
}

kaffe_log_cb_t conf_log_cb(const kaffe_conf_t *conf, void **opaque) {
    if (opaque)
        *opaque = conf->log_opaque;
    return conf->log_cb;
}

kaffe_message_handler_t conf_message_handler(const kaffe_conf_t *conf, void **opaque) {
    if (opaque)
        *opaque = conf->handler_opaque;
    return conf->handler;
}

kaffe_batch_handler_t conf_batch_handler(const kaffe_conf_t *conf, void **opaque) {
    if (opaque)
        *opaque = conf->batch_handler_opaque;
    return conf->batch_handler;
}

kaffe_error_cb_t conf_error_cb(const kaffe_conf_t *conf, void **opaque) {
    if (opaque)
        *opaque = conf->error_opaque;
    return conf->error_cb;
}

kaffe_partitioner_t conf_partitioner(const kaffe_conf_t *conf, void **opaque) {
    if (opaque)
        *opaque = conf->partitioner_opaque;
    return conf->partitioner;
}

const char *conf_str(const kaffe_conf_t *conf, const char *name) {
    bool known;
    const char *v = value_of(conf, name, &known);
    if (!known) {
        fprintf(stderr, "kaffe: internal error: unknown property %s\n", name);
        abort();
    }
    return v;
}

int64_t conf_int(const kaffe_conf_t *conf, const char *name) {
    return property_parse_int(conf_str(conf, name));
}

bool conf_bool(const kaffe_conf_t *conf, const char *name) {
    return property_parse_bool(conf_str(conf, name));
}

int conf_choice(const kaffe_conf_t *conf, const char *name) {
    const property_t *p = property_find(name);
    if (!p || p->type != PROP_ENUM) {
        fprintf(stderr, "kaffe: internal error: %s is not an enum property\n", name);
        abort();
    }
    const char *value = conf_str(conf, name);
    size_t length = strlen(value);
    int index = 0;
    for (const char *choice = p->choices;; index++) {
        const char *end = strchr(choice, '|');
        size_t choice_length = end ? (size_t)(end - choice) : strlen(choice);
        if (choice_length == length && strncmp(choice, value, length) == 0)
            return index;
        if (!end)
            break;
        choice = end + 1;
    }
    fprintf(stderr, "kaffe: internal error: %s=%s is not among %s\n", name, value, p->choices);
    abort();
}

size_t conf_list(const kaffe_conf_t *conf, const char *name, char ***out) {
    char *copy = strdup(conf_str(conf, name));
    size_t count = 0;
    char **list = calloc(strlen(copy ? copy : "") / 2 + 2, sizeof *list);
    if (!copy || !list) {
        free(copy);
        free(list);
        *out = NULL;
        return 0;
    }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = trim(tok);
        if (*t)
            list[count++] = strdup(t);
    }
    free(copy);
    *out = list;
    return count;
}

void conf_list_free(char **list) {
    if (!list)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
}

size_t conf_passthrough_count(const kaffe_conf_t *conf) {
    return conf->passthrough_count;
}

void conf_passthrough_at(const kaffe_conf_t *conf, size_t i, const char **name,
                         const char **value) {
    *name = conf->passthrough[i].name;
    *value = conf->passthrough[i].value;
}
