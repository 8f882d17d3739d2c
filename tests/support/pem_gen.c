/* Throwaway keys and certificates: see pem_gen.h. Aborts on any OpenSSL
 * failure (a test helper, not library code). */
#include "support/pem_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static void need(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "pem_gen: %s failed\n", what);
        abort();
    }
}

static char *bio_to_string(BIO *bio) {
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *s = malloc((size_t)len + 1);
    need(s != NULL, "malloc");
    memcpy(s, data, (size_t)len);
    s[len] = '\0';
    BIO_free(bio);
    return s;
}

static EVP_PKEY *read_key(const char *pem) {
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    need(key != NULL, "reading a key");
    return key;
}

static X509 *read_cert(const char *pem) {
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    need(cert != NULL, "reading a certificate");
    return cert;
}

char *test_pem_key(void) {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    need(key != NULL, "EVP_EC_gen");
    BIO *bio = BIO_new(BIO_s_mem());
    need(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), "writing a key");
    EVP_PKEY_free(key);
    return bio_to_string(bio);
}

char *test_pem_key_encrypted(const char *key_pem, const char *password) {
    EVP_PKEY *key = read_key(key_pem);
    BIO *bio = BIO_new(BIO_s_mem());
    need(
        PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)password),
        "writing an encrypted key");
    EVP_PKEY_free(key);
    return bio_to_string(bio);
}

char *test_pem_cert(const char *key_pem, const char *cn, const char *issuer_cert_pem,
                    const char *issuer_key_pem) {
    static long serial = 1;
    EVP_PKEY *key = read_key(key_pem);
    EVP_PKEY *signer = issuer_key_pem ? read_key(issuer_key_pem) : key;
    X509 *issuer = issuer_cert_pem ? read_cert(issuer_cert_pem) : NULL;
    X509 *cert = X509_new();
    need(cert && X509_set_version(cert, 2), "X509_new");
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    need(X509_set_pubkey(cert, key), "X509_set_pubkey");
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    need(X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name),
         "X509_set_issuer_name");
    if (!issuer) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
        X509_EXTENSION *ext =
            X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        need(ext && X509_add_ext(cert, ext, -1), "basicConstraints");
        X509_EXTENSION_free(ext);
    }
    need(X509_sign(cert, signer, EVP_sha256()) > 0, "X509_sign");
    BIO *bio = BIO_new(BIO_s_mem());
    need(PEM_write_bio_X509(bio, cert), "writing a certificate");
    X509_free(cert);
    X509_free(issuer);
    if (signer != key)
        EVP_PKEY_free(signer);
    EVP_PKEY_free(key);
    return bio_to_string(bio);
}
