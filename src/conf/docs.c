/* docs/CONFIGURATION.md, generated from the property table. */
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/properties.h"

static const char *type_name(property_type_t t) {
    switch (t) {
        case PROP_STRING:
            return "string";
        case PROP_LIST:
            return "list";
        case PROP_BOOL:
            return "bool";
        case PROP_INT:
            return "int";
        case PROP_ENUM:
            return "enum";
    }
    return "?";
}

static const char *roles_name(int roles) {
    if (roles == (CONF_ROLE_CONSUMER | CONF_ROLE_PRODUCER))
        return "both";
    return roles == CONF_ROLE_CONSUMER ? "consumer" : "producer";
}

/* Markdown table cells: '|' would end the cell. */
static void cell(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s, out);
    }
}

static void range_text(FILE *out, const property_t *p) {
    switch (p->type) {
        case PROP_INT:
            fprintf(out, "%lld .. %lld", (long long)p->min, (long long)p->max);
            break;
        case PROP_ENUM:
            cell(out, p->choices);
            break;
        case PROP_BOOL:
            fputs("true, false", out);
            break;
        case PROP_LIST:
            fputs("comma-separated", out);
            break;
        case PROP_STRING:
            break;
    }
}

static void librdkafka_text(FILE *out, const property_t *p) {
    if (p->alias_of) {
        fprintf(out, "same as `%s`", p->alias_of);
        if (p->alias_scale > 1)
            fprintf(out, " (x %lld)", (long long)p->alias_scale);
    } else if (p->rdkafka_doc) {
        cell(out, p->rdkafka_doc);
    } else if (p->rdkafka_name) {
        fprintf(out, "`%s`", p->rdkafka_name);
        if (p->to_rdkafka)
            fputs(" (value translated)", out);
        if (p->default_applied)
            fputs(" (kaffe's default is sent too)", out);
    }
}

static const char intro[] =
    "# kaffe configuration\n"
    "\n"
    "<!-- Generated from src/conf/properties.c by `ninja -C <build> docs`. Do not edit:\n"
    "     unit_test_conf fails when this file is stale. -->\n"
    "\n"
    "A `kaffe_conf_t` holds string properties, set with `kaffe_conf_set(conf, name, value,\n"
    "errstr, size)` (returns `KAFFE_OK`, `KAFFE_ERR_UNKNOWN_CONF` or `KAFFE_ERR_INVALID_CONF`)\n"
    "or read from a file with `kaffe_conf_load()`: `name = value` lines, `#` comments, blank\n"
    "lines; an error reads `path:line: ...`. An unknown name is an error that suggests the\n"
    "closest known one (for an `rdkafka.` name, the closest of librdkafka's own properties).\n"
    "\n"
    "- **`rdkafka.<property>`** passes `<property>` to librdkafka, validated by librdkafka\n"
    "  when set. It must not contradict a kaffe setting that sets the same librdkafka\n"
    "  property (e.g. `max_bytes` and `rdkafka.max.partition.fetch.bytes` with different\n"
    "  values): that is an error, never a silent override. A consumer's\n"
    "  `enable.auto.commit` and `enable.auto.offset.store` are always `false` (kaffe commits\n"
    "  acked offsets itself); setting them to `true` is an error.\n"
    "- **`topic.<topic>.<property>`** gives one topic of a consumer its own `ordering`,\n"
    "  `on_error`, `max_in_flight_messages`, `max_in_flight_bytes` or `workers` (a share of\n"
    "  workers of its own, so a slow topic cannot take the workers the others need; without\n"
    "  it the topic uses the consumer's pool), validated as the property itself. The topic\n"
    "  name may contain dots: the property is what follows the last one. With\n"
    "  `kaffe_conf_set_topic_handler()` the topic also gets its own message handler; other\n"
    "  topics keep the consumer's settings and default handler. Without a default handler\n"
    "  every subscribed topic needs its own, and `^` patterns cannot be subscribed; topic\n"
    "  settings do not combine with a batch handler. `kaffe_conf_get()` of such a name\n"
    "  gives the topic's own value, else the consumer's.\n"
    "- **Kaffe's names.** kaffe accepts the Elixir Kaffe's option names. Where one means\n"
    "  the same as a librdkafka property it is mapped (column *librdkafka*); such a\n"
    "  property, when not set, leaves librdkafka's default, which is the default shown.\n"
    "- **Aliases.** `offset_commit_interval_seconds` is another name for\n"
    "  `commit_interval_ms` (in seconds) and `sasl_login` for `sasl_username`. Setting an\n"
    "  alias and its property to different values is an error (the same value is fine).\n"
    "- **Mutually exclusive settings are errors**, found by `kaffe_consumer_new()` /\n"
    "  `kaffe_producer_new()` before anything connects: `endpoints` with\n"
    "  `heroku_kafka_env=true`; `ssl*` settings with `heroku_kafka_env=true`; `ssl_*`\n"
    "  settings with `ssl=false`; `ssl_cert` without `ssl_key`; SASL credentials with\n"
    "  `sasl_mechanism=none`; a mechanism without credentials; `offset_reset_policy` that\n"
    "  disagrees with `start_with_earliest_message`.\n"
    "- **Secrets** (marked *secret* below) never appear in error messages or logs.\n"
    "\n"
    "## Heroku mode (`heroku_kafka_env = true`)\n"
    "\n"
    "Instead of `endpoints`, kaffe reads the environment when the consumer or producer is\n"
    "created:\n"
    "\n"
    "| Variable | Meaning |\n"
    "|---|---|\n"
    "| `KAFKA_URL` | `kafka+ssl://host:port[,kafka+ssl://host:port...]` (TLS) or "
    "`kafka://host:port,...` (plaintext); all entries use one scheme |\n"
    "| `KAFKA_CLIENT_CERT` | the client certificate, PEM text (not a path) |\n"
    "| `KAFKA_CLIENT_CERT_KEY` | its private key, PEM text |\n"
    "| `KAFKA_TRUSTED_CERT` | the CA that signed the brokers' certificates, PEM text: the "
    "brokers are verified against it (Kaffe never read it) |\n"
    "\n"
    "With `kafka+ssl://` all three PEM variables are required; with `kafka://` none may be\n"
    "set. A missing or malformed variable, a value that is not PEM, or a key that does not\n"
    "belong to the certificate is an error (`KAFFE_ERR_ENV`) naming the variable, before any\n"
    "connection is tried. The broker's host name is checked against its certificate\n"
    "(`ssl_verify_hostname`, default `true`; set it to `false` for providers whose broker\n"
    "certificates do not name the host). `sasl_*` settings may be combined (`sasl_ssl`).\n"
    "\n"
    "## TLS and SASL without Heroku\n"
    "\n"
    "`ssl = true` turns TLS on; `ssl_ca`, `ssl_cert` and `ssl_key` each take a PEM file path\n"
    "or the PEM text itself, checked (parse, key matches certificate) before connecting.\n"
    "`sasl_mechanism = plain | scram_sha_256 | scram_sha_512` with `sasl_username` (or\n"
    "Kaffe's `sasl_login`) and `sasl_password` turns SASL on. librdkafka's\n"
    "`security.protocol` follows: `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.\n"
    "\n"
    "```\n"
    "endpoints = broker1:9094,broker2:9094\n"
    "ssl = true\n"
    "ssl_ca = /etc/kafka/ca.pem\n"
    "sasl_mechanism = scram_sha_512\n"
    "sasl_username = billing\n"
    "sasl_password = ...\n"
    "```\n"
    "\n"
    "## librdkafka and Kafka versions\n"
    "\n"
    "kaffe is tested with Debian 12's librdkafka 2.0.2 (the default build) and with\n"
    "librdkafka 2.12.1, each against Apache Kafka 3.9.1 and 4.1.1; what works where:\n"
    "\n"
    "| Setting | librdkafka 2.0.2 | librdkafka 2.12.1 |\n"
    "|---|---|---|\n"
    "| `group_protocol = consumer` (KIP-848) | refused at `kaffe_consumer_new` (needs "
    ">= 2.12.0) | with Kafka >= 4.0 |\n"
    "| `sasl_mechanism = scram_sha_256 / scram_sha_512` | Kafka 3.9; refused by Kafka 4 "
    "(fixed in librdkafka 2.6.1) | Kafka 3.9 and 4 |\n"
    "| `compression` (gzip, snappy, lz4) | compresses when the broker lists Produce v0, "
    "as Kafka 3.x-4.1 do (fixed in 2.11.1) | always |\n"
    "\n"
    "To build against a newer librdkafka: `bash scripts/rdkafka.sh` builds 2.12.1 into\n"
    "`~/.cache/kaffe/librdkafka-2.12.1` and prints that prefix; configure kaffe with\n"
    "`cmake -DKAFFE_RDKAFKA_PREFIX=<prefix>`. kaffe chooses its workarounds for older\n"
    "librdkafka versions at run time from `rd_kafka_version()`.\n"
    "\n";

int conf_write_docs(FILE *out) {
    fputs(intro, out);
    fputs("## Properties\n\n", out);
    fputs("| Name | Type | Default | Range / choices | Role | librdkafka |\n", out);
    fputs("|---|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < property_count(); i++) {
        const property_t *p = property_at(i);
        fprintf(out, "| [`%s`](#%s) | %s%s | ", p->name, p->name, type_name(p->type),
                p->secret ? ", secret" : "");
        if (*p->default_value) {
            fputs("`", out);
            cell(out, p->default_value);
            fputs("`", out);
        }
        fputs(" | ", out);
        range_text(out, p);
        fprintf(out, " | %s | ", roles_name(p->roles));
        librdkafka_text(out, p);
        fputs(" |\n", out);
    }
    fputs("\n", out);
    for (size_t i = 0; i < property_count(); i++) {
        const property_t *p = property_at(i);
        fprintf(out, "### %s\n\n", p->name);
        fprintf(out, "*%s%s, %s*", type_name(p->type), p->secret ? ", secret" : "",
                roles_name(p->roles));
        if (*p->default_value)
            fprintf(out, " · default `%s`", p->default_value);
        if (p->type == PROP_INT || p->type == PROP_ENUM) {
            fputs(p->type == PROP_INT ? " · range " : " · one of ", out);
            if (p->type == PROP_INT)
                fprintf(out, "%lld .. %lld", (long long)p->min, (long long)p->max);
            else
                fputs(p->choices, out);
        }
        if (p->alias_of || p->rdkafka_doc || p->rdkafka_name) {
            fputs(" · librdkafka: ", out);
            librdkafka_text(out, p);
        }
        fprintf(out, "\n\n%s\n\n", p->description);
    }
    return ferror(out) ? -1 : 0;
}
