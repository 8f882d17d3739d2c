/* src/conf — Heroku mode (heroku_kafka_env=true), private to the conf room.
 *
 * Reads the environment Heroku Kafka (and compatible providers) set:
 *   KAFKA_URL              kafka+ssl://host:port[,kafka+ssl://host:port...]
 *                          (or kafka://host:port for plaintext)
 *   KAFKA_CLIENT_CERT      the client certificate, PEM text
 *   KAFKA_CLIENT_CERT_KEY  its private key, PEM text
 *   KAFKA_TRUSTED_CERT     the CA that signed the brokers' certificates, PEM
 * With kafka+ssl all three PEM variables are required and checked (PEM
 * syntax, key matches certificate); with kafka:// none may be set. Errors
 * name the variable and never contain PEM text.
 *
 * Thread safety: reads the environment with getenv(); do not call while
 * another thread calls setenv()/unsetenv(). */
#ifndef KAFFE_SRC_CONF_HEROKU_H
#define KAFFE_SRC_CONF_HEROKU_H

#include <stdbool.h>
#include <stddef.h>

#include <kaffe/error.h>

typedef struct conf_heroku {
    char *bootstrap;    /* "host:port,host:port" for bootstrap.servers */
    bool tls;           /* kafka+ssl:// */
    char *client_cert;  /* PEM text, NULL without TLS */
    char *client_key;   /* PEM text, NULL without TLS */
    char *trusted_cert; /* PEM text, NULL without TLS */
} conf_heroku_t;

/* Parses a KAFKA_URL value into a bootstrap list. Every entry must be
 * kafka+ssl://host:port or kafka://host:port, all with the same scheme.
 * On success *bootstrap is malloc'ed. KAFFE_ERR_ENV naming KAFKA_URL. */
kaffe_status_t conf_heroku_parse_url(const char *url, char **bootstrap, bool *tls, char *errstr,
                                     size_t errstr_size);

/* Reads and checks the four variables into *out (zeroed first). On failure
 * *out holds nothing. KAFFE_ERR_ENV for a missing or malformed variable. */
kaffe_status_t conf_heroku_read(conf_heroku_t *out, char *errstr, size_t errstr_size);

/* Frees what conf_heroku_read filled in (key material is wiped first). */
void conf_heroku_clear(conf_heroku_t *h);

#endif
