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
    bool secret;              /* never echoed in messages */
    const char *description;
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

/* Parses a validated bool/int value. */
bool property_parse_bool(const char *value);
int64_t property_parse_int(const char *value);

#endif
