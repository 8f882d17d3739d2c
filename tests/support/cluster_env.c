#include "support/cluster_env.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/errstr.h"

static const char *env_path(void) {
    const char *path = getenv("KAFFE_CLUSTER_ENV");
    return path && *path ? path : NULL;
}

bool cluster_env_load(char *errstr, size_t errstr_size) {
    const char *path = env_path();
    if (!path) {
        errstr_printf(errstr, errstr_size,
                      "KAFFE_CLUSTER_ENV is not set: the cluster tier needs a running cluster "
                      "(run scripts/test.sh, or: export KAFFE_CLUSTER_ENV=$(scripts/kafka/"
                      "cluster.sh start | tail -1) and ctest -L cluster; scripts/kafka/cluster.sh "
                      "stop $KAFFE_CLUSTER_ENV after)");
        return false;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        errstr_printf(errstr, errstr_size, "KAFFE_CLUSTER_ENV=%s cannot be read (cluster stopped?)",
                      path);
        return false;
    }
    fclose(f);
    return true;
}

const char *cluster_env(const char *key, char *buf, size_t size) {
    const char *path = env_path();
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return NULL;
    const char *found = NULL;
    char line[2048];
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f)) { /* the last line for a key wins */
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            snprintf(buf, size, "%s", line + klen + 1);
            found = buf;
        }
    }
    fclose(f);
    return found;
}

const char *cluster_bootstrap(void) {
    static char bootstrap[1024];
    if (!bootstrap[0] && !cluster_env("KAFFE_CLUSTER_BOOTSTRAP", bootstrap, sizeof bootstrap))
        return NULL;
    return bootstrap;
}

int cluster_nodes(void) {
    char buf[16];
    return cluster_env("KAFFE_CLUSTER_NODES", buf, sizeof buf) ? atoi(buf) : 0;
}

static int vctl(char *out, size_t out_size, const char *command, const char *fmt, va_list ap) {
    char args[512], cmd[1024];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "bash '%s/scripts/kafka/cluster.sh' %s '%s' %s", KAFFE_SOURCE_DIR,
             command, env_path() ? env_path() : "", args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = 0;
    char chunk[256];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, p)) > 0)
        for (size_t i = 0; i < got && out && n + 1 < out_size; i++)
            out[n++] = chunk[i];
    if (out && out_size) {
        while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
            n--;
        out[n] = '\0';
    }
    int status = pclose(p);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

int cluster_ctl(char *out, size_t out_size, const char *command, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vctl(out, out_size, command, fmt, ap);
    va_end(ap);
    return rc;
}

int cluster_query(const char *command, const char *fmt, ...) {
    char out[64];
    va_list ap;
    va_start(ap, fmt);
    int rc = vctl(out, sizeof out, command, fmt, ap);
    va_end(ap);
    return rc == 0 && out[0] ? atoi(out) : -1;
}
