/* gen_conf_docs OUT.md: writes docs/CONFIGURATION.md from the property
 * table (src/conf/properties.c). Run by the `docs` build target. */
#include <stdio.h>

#include "conf/conf.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT.md\n", argv[0]);
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 1;
    }
    int rc = conf_write_docs(out);
    if (fclose(out) != 0 || rc != 0) {
        fprintf(stderr, "%s: write error\n", argv[1]);
        return 1;
    }
    return 0;
}
