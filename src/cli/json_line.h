/* src/cli — writing JSON text (`kaffe consume --format json`, the
 * `kaffe bench --json` report): strings
 * that are valid UTF-8 are written as JSON strings (with the escapes JSON
 * requires); bytes that are not valid UTF-8 are written as base64 under the
 * field name with "_base64" appended, so every output is valid JSON and
 * every input can be recovered exactly.
 *
 * A json_buf_t is owned by one thread (build a line, then write it whole). */
#ifndef KAFFE_SRC_CLI_JSON_LINE_H
#define KAFFE_SRC_CLI_JSON_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct json_buf {
    char *data;
    size_t len, cap;
    bool oom; /* an allocation failed: the content is incomplete */
} json_buf_t;

void json_buf_reset(json_buf_t *b);
void json_buf_free(json_buf_t *b);
void json_buf_raw(json_buf_t *b, const char *s, size_t n);

/* Whether bytes[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
bool json_utf8_valid(const void *bytes, size_t len);

/* Appends `"name": "<escaped>"` (or `"name_base64": "..."` when bytes is not
 * valid UTF-8, or `"name": null` when bytes is NULL). comma: prefix ", ". */
void json_field_bytes(json_buf_t *b, bool comma, const char *name, const void *bytes, size_t len);

/* Appends `"name": value`. */
void json_field_int(json_buf_t *b, bool comma, const char *name, int64_t value);

/* Appends `"name": value` with 6 significant digits, or `"name": null` when
 * known is false or value is not finite (JSON has no NaN or infinity). */
void json_field_double(json_buf_t *b, bool comma, const char *name, double value, bool known);

/* Appends `"name": true` or `"name": false`. */
void json_field_bool(json_buf_t *b, bool comma, const char *name, bool value);

/* Appends a NUL-terminated string as json_field_bytes() does (NULL: null). */
void json_field_str(json_buf_t *b, bool comma, const char *name, const char *s);

/* Appends `"name": null`. */
void json_field_null(json_buf_t *b, bool comma, const char *name);

#endif
