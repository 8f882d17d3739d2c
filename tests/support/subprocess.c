#include "support/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int subprocess_start(subprocess_t *sp, char *const argv[], int with_stdin) {
    int out[2], in[2] = {-1, -1};
    if (pipe(out) != 0)
        return -1;
    if (with_stdin && pipe(in) != 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        if (with_stdin) {
            dup2(in[0], STDIN_FILENO);
        } else {
            int devnull = open("/dev/null", O_RDONLY);
            dup2(devnull, STDIN_FILENO);
        }
        for (int fd = 3; fd < 256; fd++)
            close(fd);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    sp->pid = pid;
    sp->out = fdopen(out[0], "r");
    sp->in = NULL;
    if (with_stdin) {
        close(in[0]);
        sp->in = fdopen(in[1], "w");
    }
    return 0;
}

int subprocess_read_line(subprocess_t *sp, char *buf, size_t size, int timeout_ms) {
    size_t n = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int fd = fileno(sp->out);
    while (n + 1 < size) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(timeout_ms - elapsed)) <= 0)
            continue;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0)
            return -1;
        if (c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return 0;
}

int subprocess_wait(subprocess_t *sp, int timeout_ms) {
    int status = 0, rc = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        pid_t r = waitpid(sp->pid, &status, WNOHANG);
        if (r == sp->pid) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        usleep(10000);
    }
    if (rc < 0) {
        kill(sp->pid, SIGKILL);
        waitpid(sp->pid, &status, 0);
    }
    if (sp->in)
        fclose(sp->in);
    if (sp->out)
        fclose(sp->out);
    sp->in = sp->out = NULL;
    return rc;
}

int subprocess_stop(subprocess_t *sp, int sig, int timeout_ms) {
    kill(sp->pid, sig);
    return subprocess_wait(sp, timeout_ms);
}

int subprocess_run_cli(const char *args, const char *input, char *out, size_t size,
                       int timeout_ms) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s %s 2>&1", KAFFE_CLI_PATH, args);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    subprocess_t sp;
    if (subprocess_start(&sp, argv, 1) != 0)
        return -1;
    if (input)
        fputs(input, sp.in);
    fclose(sp.in);
    sp.in = NULL;
    size_t used = 0;
    char line[1024];
    if (size > 0)
        out[0] = '\0';
    while (subprocess_read_line(&sp, line, sizeof line, timeout_ms) == 0)
        if (used + 2 < size)
            used += (size_t)snprintf(out + used, size - used, "%s\n", line);
    return subprocess_wait(&sp, timeout_ms);
}
