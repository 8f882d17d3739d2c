/* JSON lines for `kaffe consume`. */
#include "cli/json_line.h"

#include <math.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_buf_reset(json_buf_t *b) {
    b->len = 0;
    b->oom = false;
}

void json_buf_free(json_buf_t *b) {
    free(b->data);
    *b = (json_buf_t){0};
}

void json_buf_raw(json_buf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void put(json_buf_t *b, const char *s) {
    json_buf_raw(b, s, strlen(s));
}

bool json_utf8_valid(const void *bytes, size_t len) {
    const unsigned char *s = bytes;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

static void put_escaped(json_buf_t *b, const unsigned char *s, size_t len) {
    size_t run = 0; /* bytes copied as they are, flushed before each escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        json_buf_raw(b, (const char *)s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
            case '"':
                put(b, "\\\"");
                break;
            case '\\':
                put(b, "\\\\");
                break;
            case '\n':
                put(b, "\\n");
                break;
            case '\r':
                put(b, "\\r");
                break;
            case '\t':
                put(b, "\\t");
                break;
            default:
                snprintf(esc, sizeof esc, "\\u%04x", c);
                put(b, esc);
        }
    }
    json_buf_raw(b, (const char *)s + run, len - run);
}

static void put_base64(json_buf_t *b, const unsigned char *s, size_t len) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        char out[4] = {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63],
                       i + 1 < len ? alphabet[(v >> 6) & 63] : '=',
                       i + 2 < len ? alphabet[v & 63] : '='};
        json_buf_raw(b, out, 4);
    }
}

static void put_name(json_buf_t *b, bool comma, const char *name, const char *suffix) {
    if (comma)
        put(b, ", ");
    put(b, "\"");
    put(b, name);
    put(b, suffix);
    put(b, "\": ");
}

void json_field_bytes(json_buf_t *b, bool comma, const char *name, const void *bytes, size_t len) {
    if (!bytes) {
        json_field_null(b, comma, name);
        return;
    }
    bool text = json_utf8_valid(bytes, len);
    put_name(b, comma, name, text ? "" : "_base64");
    put(b, "\"");
    if (text)
        put_escaped(b, bytes, len);
    else
        put_base64(b, bytes, len);
    put(b, "\"");
}

void json_field_int(json_buf_t *b, bool comma, const char *name, int64_t value) {
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, value);
    put_name(b, comma, name, "");
    put(b, num);
}

void json_field_double(json_buf_t *b, bool comma, const char *name, double value, bool known) {
    if (!known || !isfinite(value)) {
        json_field_null(b, comma, name);
        return;
    }
    char num[32];
    snprintf(num, sizeof num, "%.6g", value);
    put_name(b, comma, name, "");
    put(b, num);
}

void json_field_bool(json_buf_t *b, bool comma, const char *name, bool value) {
    put_name(b, comma, name, "");
    put(b, value ? "true" : "false");
}

void json_field_str(json_buf_t *b, bool comma, const char *name, const char *s) {
    json_field_bytes(b, comma, name, s, s ? strlen(s) : 0);
}

void json_field_null(json_buf_t *b, bool comma, const char *name) {
    put_name(b, comma, name, "");
    put(b, "null");
}
