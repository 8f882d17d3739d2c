/* An outside project: uses only the installed public API. */
#include <kaffe/kaffe.h>
#include <stdio.h>

int main(void) {
    char err[256];
    kaffe_conf_t *conf = kaffe_conf_new();
    if (kaffe_conf_set(conf, "topics", "orders", err, sizeof err) != KAFFE_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("kaffe %s (%d): %s\n", kaffe_version_str(), kaffe_version(),
           kaffe_strerror(KAFFE_ERR_REVOKED));
    kaffe_conf_destroy(conf);
    return 0;
}
