/* src/conf — PEM checks for TLS material (private to the conf room).
 *
 * Certificates and keys are checked with OpenSSL (the library librdkafka
 * itself uses) when the configuration is validated, so that a malformed
 * value or a key that does not match its certificate is reported naming
 * the setting or environment variable, before any connection is tried.
 *
 * `what` names the source in messages ("KAFKA_CLIENT_CERT", "ssl_cert").
 * Messages never contain the PEM text, a key or a password. Thread-safe. */
#ifndef KAFFE_SRC_CONF_PEM_H
#define KAFFE_SRC_CONF_PEM_H

#include <stdbool.h>
#include <stddef.h>

#include <kaffe/error.h>

/* True when value is PEM text (starts with "-----BEGIN", after blanks)
 * rather than a file path. */
bool conf_pem_is_text(const char *value);

/* Reads a PEM file (at most 1 MiB) into a malloc'ed NUL-terminated string.
 * KAFFE_ERR_IO naming what and the path when it cannot be read. */
kaffe_status_t conf_pem_read_file(const char *what, const char *path, char **text, char *errstr,
                                  size_t errstr_size);

/* One or more PEM certificates. KAFFE_ERR_INVALID_CONF otherwise. */
kaffe_status_t conf_pem_check_certificates(const char *what, const char *pem, char *errstr,
                                           size_t errstr_size);

/* A PEM private key; password (NULL or "" for none) decrypts an encrypted
 * one. KAFFE_ERR_INVALID_CONF otherwise. */
kaffe_status_t conf_pem_check_private_key(const char *what, const char *pem, const char *password,
                                          char *errstr, size_t errstr_size);

/* The key is the private key of the first certificate in cert_pem. Both
 * must already have passed the checks above. */
kaffe_status_t conf_pem_check_key_matches(const char *cert_what, const char *cert_pem,
                                          const char *key_what, const char *key_pem,
                                          const char *password, char *errstr, size_t errstr_size);

#endif
