/* PEM checks with OpenSSL: see pem.h. */
#include "conf/pem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/errstr.h"

#define PEM_FILE_MAX (1024 * 1024)

bool conf_pem_is_text(const char *value) {
    while (*value == ' ' || *value == '\t' || *value == '\r' || *value == '\n')
        value++;
    return strncmp(value, "-----BEGIN", 10) == 0;
}

kaffe_status_t conf_pem_read_file(const char *what, const char *path, char **text, char *errstr,
                                  size_t errstr_size) {
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        errstr_printf(errstr, errstr_size, "%s: cannot read %s: %s", what, path, strerror(errno));
        return KAFFE_ERR_IO;
    }
    char *buf = malloc(PEM_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return KAFFE_ERR_NOMEM;
    }
    size_t n = fread(buf, 1, PEM_FILE_MAX + 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || n > PEM_FILE_MAX) {
        free(buf);
        errstr_printf(errstr, errstr_size, "%s: cannot read %s: %s", what, path,
                      failed ? "read error" : "larger than 1 MiB");
        return KAFFE_ERR_IO;
    }
    buf[n] = '\0';
    *text = buf;
    return KAFFE_OK;
}

/* OpenSSL's reason for the oldest queued error (static text, never data),
 * and an empty queue afterwards: the queue is per thread and must not leak
 * into librdkafka's later use of OpenSSL on this thread. */
static const char *openssl_reason(void) {
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return reason ? reason : "unrecognised data";
}

kaffe_status_t conf_pem_check_certificates(const char *what, const char *pem, char *errstr,
                                           size_t errstr_size) {
    if (!strstr(pem, "-----BEGIN CERTIFICATE-----")) {
        errstr_printf(errstr, errstr_size,
                      "%s: not a PEM certificate (no \"-----BEGIN CERTIFICATE-----\" line)", what);
        return KAFFE_ERR_INVALID_CONF;
    }
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return KAFFE_ERR_NOMEM;
    ERR_clear_error();
    size_t count = 0;
    X509 *cert;
    while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_free(cert);
        count++;
    }
    /* The loop ends with "no start line" at the end of the text; any other
     * error is a malformed certificate. */
    unsigned long e = ERR_peek_last_error();
    bool clean_end = count > 0 && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
    const char *reason = openssl_reason();
    BIO_free(bio);
    if (!clean_end) {
        errstr_printf(errstr, errstr_size, "%s: PEM certificate %zu cannot be parsed (%s)", what,
                      count + 1, reason);
        return KAFFE_ERR_INVALID_CONF;
    }
    return KAFFE_OK;
}

/* The password callback: never prompts (OpenSSL's default would read the
 * terminal); an encrypted key without a password fails. */
static int password_cb(char *buf, int size, int rwflag, void *opaque) {
    (void)rwflag;
    const char *password = opaque;
    if (!password || !*password)
        return -1;
    size_t len = strlen(password);
    if (len > (size_t)size)
        return -1;
    memcpy(buf, password, len);
    return (int)len;
}

static EVP_PKEY *read_key(const char *pem, const char *password) {
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return NULL;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, password_cb, (void *)password);
    BIO_free(bio);
    return key;
}

kaffe_status_t conf_pem_check_private_key(const char *what, const char *pem, const char *password,
                                          char *errstr, size_t errstr_size) {
    if (!strstr(pem, "-----BEGIN") || !strstr(pem, "PRIVATE KEY-----")) {
        errstr_printf(errstr, errstr_size,
                      "%s: not a PEM private key (no \"-----BEGIN ... PRIVATE KEY-----\" line)",
                      what);
        return KAFFE_ERR_INVALID_CONF;
    }
    ERR_clear_error();
    EVP_PKEY *key = read_key(pem, password);
    if (!key) {
        const char *reason = openssl_reason();
        bool encrypted = strstr(pem, "ENCRYPTED") != NULL;
        if (encrypted && (!password || !*password))
            errstr_printf(errstr, errstr_size,
                          "%s: the private key is encrypted and no password is set", what);
        else if (encrypted)
            errstr_printf(errstr, errstr_size,
                          "%s: the private key cannot be decrypted with the password given (%s)",
                          what, reason);
        else
            errstr_printf(errstr, errstr_size, "%s: PEM private key cannot be parsed (%s)", what,
                          reason);
        return KAFFE_ERR_INVALID_CONF;
    }
    EVP_PKEY_free(key);
    return KAFFE_OK;
}

kaffe_status_t conf_pem_check_key_matches(const char *cert_what, const char *cert_pem,
                                          const char *key_what, const char *key_pem,
                                          const char *password, char *errstr, size_t errstr_size) {
    ERR_clear_error();
    BIO *bio = BIO_new_mem_buf(cert_pem, -1);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    EVP_PKEY *key = read_key(key_pem, password);
    bool match = cert && key && X509_check_private_key(cert, key) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    if (!match) {
        errstr_printf(errstr, errstr_size,
                      "%s: the private key does not belong to the certificate in %s", key_what,
                      cert_what);
        return KAFFE_ERR_INVALID_CONF;
    }
    return KAFFE_OK;
}
