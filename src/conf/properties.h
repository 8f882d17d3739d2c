/* src/conf — the property table (private to the conf room).
 *
 * One row per property: name, type, default, range or choices, which roles
 * use it, the librdkafka property it maps to, and a description. Validation,
 * defaults and docs/CONFIGURATION.md all come from this table. */
#ifndef KAFFE_SRC_CONF_PROPERTIES_H
#define KAFFE_SRC_CONF_PROPERTIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kaffe/error.h>

typedef enum property_type {
    PROP_STRING,
    PROP_LIST, /* comma-separated strings */
    PROP_BOOL, /* true|false */
    PROP_INT,  /* decimal integer in [min, max] */
    PROP_ENUM, /* one of choices, "a|b|c" */
} property_type_t;

typedef struct property {
    const char *name;
    property_type_t type;
    const char *default_value;
    int64_t min, max;         /* PROP_INT only */
    const char *choices;      /* PROP_ENUM only */
    int roles;                /* CONF_ROLE_CONSUMER | CONF_ROLE_PRODUCER */
    const char *rdkafka_name; /* librdkafka property it sets, or NULL */
    /* rdkafka_name gets default_value even when the row is unset, because
     * kaffe's default differs from librdkafka's (an rdkafka.<property>
     * passthrough still wins). Unset rows are otherwise not sent, leaving
     * librdkafka's default. */
    bool default_applied;
    bool secret; /* never echoed in messages */
    const char *description;
    /* This row is another name for alias_of (e.g. Kaffe's name for kaffe's
     * own property). For PROP_INT, canonical value = alias value * alias_scale
     * (0 means 1). Setting both to different values is an error. */
    const char *alias_of;
    int64_t alias_scale;
    /* Translates a validated value into rdkafka_name's value (NULL: the
     * same string). Returns a static string or value itself. */
    const char *(*to_rdkafka)(const char *value);
    /* How the row reaches librdkafka, for docs, when it is not a plain
     * one-to-one rdkafka_name (derived settings such as TLS and SASL). */
    const char *rdkafka_doc;
    /* Extra syntax check beyond the type's, or NULL. */
    kaffe_status_t (*check)(const char *value, char *errstr, size_t errstr_size);
} property_t;

/* The row for name, or NULL. */
const property_t *property_find(const char *name);

/* Row count and rows by index, in table order. */
size_t property_count(void);
const property_t *property_at(size_t index);

/* Validates value against the row's type, range and check. On failure
 * returns KAFFE_ERR_INVALID_CONF with a message naming the property. */
kaffe_status_t property_validate(const property_t *p, const char *value, char *errstr,
                                 size_t errstr_size);

/* The value librdkafka gets for a validated value of p (its to_rdkafka
 * translation, or value itself). */
const char *property_rdkafka_value(const property_t *p, const char *value);

/* True when p has an rdkafka_name that conf_to_rdkafka copies over whenever
 * p is set; false for rows it handles in code (or rows with no mapping). */
bool property_mapped_generically(const property_t *p);

/* Parses a validated bool/int value. */
bool property_parse_bool(const char *value);
int64_t property_parse_int(const char *value);

#endif
