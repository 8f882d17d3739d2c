/* `kaffe bench` output: the child's result line, the table, JSON, gnuplot
 * plots and the progress display. Main thread of the parent only (the
 * result line: the child's main thread). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kaffe/version.h>

#include "harness/bench.h"
#include "cli/json_line.h"

bool bench_result_correct(const bench_result_t *r) {
    return r->ran && !r->error[0] && r->missing == 0 && r->unique >= r->expected && r->committed_ok;
}

/* ---- The child's result line: "result key=value ...", strings
 * percent-encoded so a value never holds a space. ---- */

static void put_string(FILE *out, const char *key, const char *s) {
    fprintf(out, " %s=", key);
    for (; *s; s++) {
        if (*s == ' ' || *s == '%' || *s == '\n' || *s == '=')
            fprintf(out, "%%%02X", (unsigned char)*s);
        else
            fputc(*s, out);
    }
}

static void get_string(const char *v, char *dest, size_t size) {
    size_t n = 0;
    while (*v && *v != ' ' && n + 1 < size) {
        unsigned int c;
        if (*v == '%' && sscanf(v + 1, "%2x", &c) == 1) {
            dest[n++] = (char)c;
            v += 3;
        } else {
            dest[n++] = *v++;
        }
    }
    dest[n] = '\0';
}

void bench_result_print(const bench_result_t *r, FILE *out) {
    fprintf(out, "result");
    put_string(out, "name", r->scenario->name);
    fprintf(out,
            " ran=%d messages=%ld seconds=%.6f startup_s=%.3f msgs_per_s=%.1f mb_per_s=%.3f "
            "start_p50_us=%.1f"
            " start_p99_us=%.1f e2e_p50_us=%.1f e2e_p99_us=%.1f live_messages=%ld"
            " live_rate=%.1f cpu_s=%.3f rss_mb=%.1f expected=%ld unique=%ld duplicates=%ld"
            " missing=%ld committed_ok=%d",
            r->ran, r->messages, r->seconds, r->startup_s, r->msgs_per_s, r->mb_per_s,
            r->start_p50_us, r->start_p99_us, r->e2e_p50_us, r->e2e_p99_us, r->live_messages,
            r->live_rate, r->cpu_s, r->rss_mb, r->expected, r->unique, r->duplicates, r->missing,
            r->committed_ok);
    put_string(out, "committed_detail", r->committed_detail);
    put_string(out, "error", r->error);
    fputc('\n', out);
}

int bench_result_parse(const char *line, bench_result_t *r) {
    if (strncmp(line, "result ", 7) != 0)
        return -1;
    for (const char *p = line + 6; p && *p; p = strchr(p + 1, ' ')) {
        const char *key = p + 1, *eq = strchr(key, '=');
        if (!eq)
            return -1;
        const char *v = eq + 1;
        size_t klen = (size_t)(eq - key);
#define IS(name) (klen == strlen(name) && strncmp(key, name, klen) == 0)
        if (IS("ran"))
            r->ran = atoi(v) != 0;
        else if (IS("messages"))
            r->messages = atol(v);
        else if (IS("seconds"))
            r->seconds = atof(v);
        else if (IS("startup_s"))
            r->startup_s = atof(v);
        else if (IS("msgs_per_s"))
            r->msgs_per_s = atof(v);
        else if (IS("mb_per_s"))
            r->mb_per_s = atof(v);
        else if (IS("start_p50_us"))
            r->start_p50_us = atof(v);
        else if (IS("start_p99_us"))
            r->start_p99_us = atof(v);
        else if (IS("e2e_p50_us"))
            r->e2e_p50_us = atof(v);
        else if (IS("e2e_p99_us"))
            r->e2e_p99_us = atof(v);
        else if (IS("live_messages"))
            r->live_messages = atol(v);
        else if (IS("live_rate"))
            r->live_rate = atof(v);
        else if (IS("cpu_s"))
            r->cpu_s = atof(v);
        else if (IS("rss_mb"))
            r->rss_mb = atof(v);
        else if (IS("expected"))
            r->expected = atol(v);
        else if (IS("unique"))
            r->unique = atol(v);
        else if (IS("duplicates"))
            r->duplicates = atol(v);
        else if (IS("missing"))
            r->missing = atol(v);
        else if (IS("committed_ok"))
            r->committed_ok = atoi(v) != 0;
        else if (IS("committed_detail"))
            get_string(v, r->committed_detail, sizeof r->committed_detail);
        else if (IS("error"))
            get_string(v, r->error, sizeof r->error);
#undef IS
    }
    return 0;
}

/* ---- The table ---- */

static void latency_cell(char *buf, size_t size, double p50, double p99, double unit) {
    if (p50 < 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.*f / %.*f", p50 / unit < 10 ? 1 : 0, p50 / unit,
                 p99 / unit < 10 ? 1 : 0, p99 / unit);
}

static void correctness_cell(const bench_result_t *r, char *buf, size_t size) {
    if (!r->ran) {
        snprintf(buf, size, "NOT RUN: %s", r->error);
        return;
    }
    int n = 0;
    if (bench_result_correct(r))
        n = snprintf(buf, size, "ok: %ld/%ld once+, %ld dup, committed = end", r->unique,
                     r->expected, r->duplicates);
    else
        n = snprintf(buf, size, "FAIL: %ld/%ld handled, %ld missing, %ld dup; %s%s%s", r->unique,
                     r->expected, r->missing, r->duplicates,
                     r->committed_ok ? "committed = end" : r->committed_detail,
                     r->error[0] ? "; " : "", r->error);
    (void)n;
}

double bench_result_cpu_us_per_msg(const bench_result_t *r) {
    long handled = r->messages + r->live_messages;
    return handled > 0 ? r->cpu_s * 1e6 / (double)handled : 0;
}

void bench_report_table(const bench_result_t *results, size_t count, FILE *out) {
    fprintf(out, "%-24s %10s %8s %6s %17s %15s %6s %6s %7s  %s\n", "scenario", "msgs/s", "MB/s",
            "x raw", "start p50/p99 us", "e2e p50/p99 ms", "CPU s", "us/msg", "RSS MB",
            "correctness");
    const char *family = NULL;
    for (size_t i = 0; i < count; i++) {
        const bench_result_t *r = &results[i];
        if (family && strcmp(family, r->scenario->family) != 0)
            fputc('\n', out);
        family = r->scenario->family;
        char ratio[16] = "-", start[32], e2e[32], correct[512];
        if (r->ratio > 0)
            snprintf(ratio, sizeof ratio, "%.2f", r->ratio);
        latency_cell(start, sizeof start, r->start_p50_us, r->start_p99_us, 1);
        latency_cell(e2e, sizeof e2e, r->e2e_p50_us, r->e2e_p99_us, 1000);
        correctness_cell(r, correct, sizeof correct);
        if (!r->ran) {
            fprintf(out, "%-24s %10s %8s %6s %17s %15s %6s %6s %7s  %s\n", r->scenario->name, "-",
                    "-", "-", "-", "-", "-", "-", "-", correct);
            continue;
        }
        fprintf(out, "%-24s %10.0f %8.2f %6s %17s %15s %6.2f %6.2f %7.1f  %s\n", r->scenario->name,
                r->msgs_per_s, r->mb_per_s, ratio, start, e2e, r->cpu_s,
                bench_result_cpu_us_per_msg(r), r->rss_mb, correct);
    }
    if (count == 0 || results[0].rounds < 2)
        return;
    fprintf(out, "\nevery round, in round order: msgs/s (CPU us per message)%s\n",
            " -- the rows above are each scenario's best round");
    for (size_t i = 0; i < count; i++) {
        const bench_result_t *r = &results[i];
        fprintf(out, "%-24s", r->scenario->name);
        for (int k = 0; k < r->rounds; k++)
            fprintf(out, " %10.0f (%.2f)%s", r->round[k].msgs_per_s, r->round[k].cpu_us_per_msg,
                    r->round[k].correct ? "" : " FAIL");
        fputc('\n', out);
    }
}

/* ---- JSON ---- */

static void put_raw(json_buf_t *b, const char *s) {
    json_buf_raw(b, s, strlen(s));
}

/* One scenario's object, through the project's one JSON writer. */
static void json_scenario(json_buf_t *b, const bench_result_t *r) {
    const bench_scenario_t *s = r->scenario;
    put_raw(b, "{");
    json_field_str(b, false, "name", s->name);
    json_field_str(b, true, "family", s->family);
    json_field_str(b, true, "consumer", bench_kind_name(s->kind));
    json_field_str(b, true, "ordering", s->ordering); /* NULL: null */
    json_field_int(b, true, "workers", s->workers);
    json_field_str(b, true, "handler_cost", bench_cost_name(s->cost));
    json_field_int(b, true, "handler_cost_us", s->cost_us);
    json_field_int(b, true, "ack_delay_max_us", s->ack_delay_max_us);
    json_field_int(b, true, "message_size", s->message_size);
    json_field_int(b, true, "partitions", s->partitions);
    json_field_int(b, true, "keys", s->keys);
    put_raw(b, ",\n     ");
    json_field_bool(b, false, "ran", r->ran);
    json_field_bool(b, true, "correct", bench_result_correct(r));
    json_field_int(b, true, "messages", r->messages);
    json_field_double(b, true, "seconds", r->seconds, r->ran);
    json_field_double(b, true, "startup_s", r->startup_s, r->ran);
    json_field_double(b, true, "msgs_per_s", r->msgs_per_s, r->ran);
    json_field_double(b, true, "mb_per_s", r->mb_per_s, r->ran);
    json_field_double(b, true, "ratio_to_raw", r->ratio, r->ratio > 0);
    put_raw(b, ",\n     ");
    json_field_double(b, false, "start_p50_us", r->start_p50_us, r->ran && r->start_p50_us >= 0);
    json_field_double(b, true, "start_p99_us", r->start_p99_us, r->ran && r->start_p99_us >= 0);
    json_field_double(b, true, "e2e_p50_us", r->e2e_p50_us, r->ran && r->e2e_p50_us >= 0);
    json_field_double(b, true, "e2e_p99_us", r->e2e_p99_us, r->ran && r->e2e_p99_us >= 0);
    json_field_int(b, true, "live_messages", r->live_messages);
    json_field_double(b, true, "live_rate", r->live_rate, r->ran);
    put_raw(b, ",\n     ");
    json_field_double(b, false, "cpu_s", r->cpu_s, r->ran);
    json_field_double(b, true, "peak_rss_mb", r->rss_mb, r->ran);
    json_field_int(b, true, "expected", r->expected);
    json_field_int(b, true, "handled_once", r->unique);
    json_field_int(b, true, "duplicates", r->duplicates);
    json_field_int(b, true, "missing", r->missing);
    json_field_bool(b, true, "committed_equals_log_end", r->committed_ok);
    json_field_str(b, true, "detail", r->committed_ok ? "" : r->committed_detail);
    json_field_str(b, true, "error", r->error);
    json_field_double(b, true, "cpu_us_per_msg", bench_result_cpu_us_per_msg(r), r->ran);
    put_raw(b, ",\n     \"rounds\": [");
    for (int k = 0; k < r->rounds; k++) {
        put_raw(b, k ? ", {" : "{");
        json_field_int(b, false, "round", k + 1);
        json_field_double(b, true, "msgs_per_s", r->round[k].msgs_per_s, true);
        json_field_double(b, true, "cpu_s", r->round[k].cpu_s, true);
        json_field_double(b, true, "cpu_us_per_msg", r->round[k].cpu_us_per_msg, true);
        json_field_bool(b, true, "correct", r->round[k].correct);
        put_raw(b, "}");
    }
    put_raw(b, "]}");
}

int bench_report_json(const bench_result_t *results, size_t count, const char *path,
                      const char *command, const char *brokers, double elapsed_s) {
    json_buf_t b = {0};
    put_raw(&b, "{\n  ");
    json_field_str(&b, false, "kaffe_version", kaffe_version_str());
    put_raw(&b, ",\n  ");
    json_field_str(&b, false, "librdkafka_version", rd_kafka_version_str());
    put_raw(&b, ",\n  ");
    json_field_str(&b, false, "command", command);
    put_raw(&b, ",\n  ");
    json_field_str(&b, false, "brokers", brokers);
    put_raw(&b, ",\n  ");
    json_field_int(&b, false, "online_cpus", sysconf(_SC_NPROCESSORS_ONLN));
    json_field_int(&b, true, "rounds", count ? results[0].rounds : 0);
    json_field_double(&b, true, "elapsed_s", elapsed_s, true);
    put_raw(&b, ",\n  ");
    json_field_str(&b, false, "notes",
                   "throughput, CPU and RSS: drain phase (pre-produced backlog); latencies: live "
                   "phase at half the drained rate, at most 20000/s");
    put_raw(&b, ",\n  \"scenarios\": [");
    for (size_t i = 0; i < count; i++) {
        put_raw(&b, i ? ",\n    " : "\n    ");
        json_scenario(&b, &results[i]);
    }
    put_raw(&b, "\n  ]\n}\n");
    int rc = -1;
    FILE *f = b.oom ? NULL : fopen(path, "w");
    if (!f) {
        fprintf(stderr, "kaffe bench: cannot write %s: %s\n", path,
                b.oom ? "out of memory" : strerror(errno));
    } else {
        size_t written = fwrite(b.data, 1, b.len, f);
        rc = fclose(f) == 0 && written == b.len ? 0 : -1;
    }
    json_buf_free(&b);
    return rc;
}

/* ---- Plots ---- */

static bool gnuplot_has_terminal(const char *terminal) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "gnuplot -e 'set terminal %s' >/dev/null 2>&1", terminal);
    return system(cmd) == 0;
}

static int run_gnuplot(const char *dir, const char *script) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot '%s' 2>>gnuplot.log", dir, script);
    return system(cmd) == 0 ? 0 : -1;
}

static const bench_result_t *find_workers(const bench_result_t *results, size_t count,
                                          const char *ordering, int workers) {
    for (size_t i = 0; i < count; i++) {
        const bench_scenario_t *s = results[i].scenario;
        if (results[i].ran && strcmp(s->family, "workers") == 0 &&
            strcmp(s->ordering, ordering) == 0 && s->workers == workers)
            return &results[i];
    }
    return NULL;
}

static int plot_workers(const bench_result_t *results, size_t count, const char *dir,
                        const char *terminal) {
    static const char *const orderings[] = {"partition", "key", "unordered"};
    static const int workers[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    char path[4096];
    snprintf(path, sizeof path, "%s/workers.dat", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# workers msgs/s: partition key unordered ('?' = not run)\n");
    int rows = 0;
    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        const bench_result_t *cells[3];
        bool any = false;
        for (int o = 0; o < 3; o++)
            any |= (cells[o] = find_workers(results, count, orderings[o], workers[w])) != NULL;
        if (!any)
            continue;
        rows++;
        fprintf(f, "%d", workers[w]);
        for (int o = 0; o < 3; o++)
            cells[o] ? fprintf(f, " %.1f", cells[o]->msgs_per_s) : fprintf(f, " ?");
        fputc('\n', f);
    }
    fclose(f);
    if (rows == 0)
        return 0;
    snprintf(path, sizeof path, "%s/workers.gp", dir);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "set terminal %s size 900,560\n"
            "set output 'throughput-vs-workers.png'\n"
            "set title 'kaffe sync, 1 ms sleeping handler, 4 partitions: throughput vs workers'\n"
            "set datafile missing '?'\n"
            "set logscale xy 2\n"
            "set xlabel 'workers'\nset ylabel 'messages/s'\n"
            "set key top left\nset grid\n"
            "plot 'workers.dat' using 1:2 with linespoints lw 2 title 'ordering=partition', \\\n"
            "     '' using 1:3 with linespoints lw 2 title 'ordering=key', \\\n"
            "     '' using 1:4 with linespoints lw 2 title 'ordering=unordered'\n",
            terminal);
    fclose(f);
    return run_gnuplot(dir, "workers.gp") == 0 ? 1 : -1;
}

static void dat_value(FILE *f, double v) {
    if (v > 0)
        fprintf(f, " %.3f", v);
    else
        fprintf(f, " ?");
}

static int plot_latency(const bench_result_t *results, size_t count, const char *dir,
                        const char *terminal) {
    char path[4096];
    snprintf(path, sizeof path, "%s/latency.dat", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# scenario start_p50 start_p99 e2e_p50 e2e_p99 (microseconds, '?' = unknown)\n");
    int rows = 0;
    for (size_t i = 0; i < count; i++) {
        const bench_result_t *r = &results[i];
        if (!r->ran)
            continue;
        rows++;
        fprintf(f, "%s", r->scenario->name);
        dat_value(f, r->start_p50_us);
        dat_value(f, r->start_p99_us);
        dat_value(f, r->e2e_p50_us);
        dat_value(f, r->e2e_p99_us);
        fputc('\n', f);
    }
    fclose(f);
    if (rows == 0)
        return 0;
    snprintf(path, sizeof path, "%s/latency.gp", dir);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "set terminal %s size %d,600\n"
            "set output 'latency.png'\n"
            "set title 'Latency at half the drained rate (live phase)'\n"
            "set datafile missing '?'\n"
            "set style data histograms\nset style histogram clustered gap 1\n"
            "set style fill solid 0.8 border -1\n"
            "set logscale y 10\nset ylabel 'microseconds'\nset grid ytics\n"
            "set xtics rotate by -45 scale 0\nset key top left\n"
            "plot 'latency.dat' using 2:xtic(1) title 'poll -> handler p50', \\\n"
            "     '' using 3 title 'poll -> handler p99', \\\n"
            "     '' using 4 title 'produce -> handler p50', \\\n"
            "     '' using 5 title 'produce -> handler p99'\n",
            terminal, 400 + 45 * rows);
    fclose(f);
    return run_gnuplot(dir, "latency.gp") == 0 ? 1 : -1;
}

int bench_report_plots(const bench_result_t *results, size_t count, const char *dir) {
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "kaffe bench: gnuplot is not installed (scripts/setup.sh installs "
                        "gnuplot-nox); no plots\n");
        return -1;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "kaffe bench: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    const char *terminal = gnuplot_has_terminal("pngcairo") ? "pngcairo" : "png";
    int made = 0, rc;
    if ((rc = plot_workers(results, count, dir, terminal)) < 0)
        fprintf(stderr, "kaffe bench: the workers plot failed (see %s/gnuplot.log)\n", dir);
    else
        made += rc;
    if ((rc = plot_latency(results, count, dir, terminal)) < 0)
        fprintf(stderr, "kaffe bench: the latency plot failed (see %s/gnuplot.log)\n", dir);
    else
        made += rc;
    return made;
}

/* ---- Progress on stderr ---- */

static int terminal = -1;

static bool is_terminal(void) {
    if (terminal < 0)
        terminal = isatty(STDERR_FILENO);
    return terminal == 1;
}

void bench_progress_scenario(size_t index, size_t total, const char *name) {
    if (!is_terminal())
        fprintf(stderr, "bench: [%zu/%zu] %s ...\n", index + 1, total, name);
}

void bench_progress_update(size_t index, size_t total, const char *name, long done, long of) {
    if (!is_terminal())
        return;
    enum { WIDTH = 30 };
    double frac = of > 0 ? (double)done / (double)of : 0;
    frac = frac > 1 ? 1 : frac;
    double overall = ((double)index + frac) / (double)total;
    char bar[WIDTH + 1];
    int filled = (int)(overall * WIDTH);
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r\033[K[%s] %zu/%zu %-24s %3.0f%%", bar, index + 1, total, name, frac * 100);
    fflush(stderr);
}

void bench_progress_done(size_t index, size_t total, const bench_result_t *r) {
    if (is_terminal())
        fprintf(stderr, "\r\033[K");
    if (!r->ran)
        fprintf(stderr, "bench: [%zu/%zu] %s: not run: %s\n", index + 1, total, r->scenario->name,
                r->error);
    else
        fprintf(stderr, "bench: [%zu/%zu] %s: %.0f msgs/s, %s\n", index + 1, total,
                r->scenario->name, r->msgs_per_s,
                bench_result_correct(r) ? "correct" : "INCORRECT");
}
