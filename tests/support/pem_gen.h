/* tests/support — throwaway keys and certificates made with OpenSSL at test
 * time, for tests of TLS configuration that need no broker. All strings are
 * malloc'ed PEM text; free them with free(). */
#ifndef KAFFE_TESTS_SUPPORT_PEM_GEN_H
#define KAFFE_TESTS_SUPPORT_PEM_GEN_H

/* A new P-256 private key, PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). */
char *test_pem_key(void);

/* key_pem encrypted with password (AES-256-CBC, PKCS#8). */
char *test_pem_key_encrypted(const char *key_pem, const char *password);

/* A certificate for key_pem with common name cn, signed by issuer
 * (issuer_cert_pem, issuer_key_pem), or self-signed (a CA) when both are NULL. */
char *test_pem_cert(const char *key_pem, const char *cn, const char *issuer_cert_pem,
                    const char *issuer_key_pem);

#endif
