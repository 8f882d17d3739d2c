/* kaffe bench [--scenario NAME]... [--list] [--brokers B] [--messages N] [--quick]
 *             [--json FILE] [--plot DIR] [-X name=value]...
 * The parent side: options, the cluster, data sets, one child process per
 * scenario, then the report. See bench.h for the shape of a run. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness/bench.h"
#include "cli/cli.h"
#include "mock/mock_cluster.h"
#include "common/clock.h"

#define MAX_PROPS BENCH_MAX_PROPS
/* One broker: with several, librdkafka 2.0.2's mock stalls some partitions'
 * fetches for about a second now and then, which swamps the figures. */
#define EMBEDDED_BROKERS 1
#define FULL_BASELINE_MESSAGES 400000.0 /* the raw scenario's count at scale 1 */

static void bench_help(void) {
    printf(
        "usage: kaffe bench [--scenario NAME]... [--list] [--brokers HOST:PORT,...]\n"
        "                   [--messages N] [--quick] [--rounds N] [--json FILE] [--plot DIR]\n"
        "                   [-X name=value]...\n"
        "\n"
        "Measures the kaffe consumer against a plain librdkafka poll loop in the same run.\n"
        "Without --brokers it starts an embedded cluster (librdkafka's mock, %d brokers) and\n"
        "sizes every data set below its retention (~100k messages / ~5 MB per partition).\n"
        "Each scenario runs in its own process: it drains a pre-produced data set (msgs/s,\n"
        "MB/s, CPU seconds, peak RSS), then handles messages produced live at half that rate\n"
        "(latency: poll -> handler start and produce -> handler start, p50/p99), stops, and\n"
        "checks that every message was handled at least once and that the committed offsets\n"
        "equal the log ends (with a separate client).\n"
        "\n"
        "  -s, --scenario NAME   run this scenario (repeatable; default: all; --list names them);\n"
        "                        the raw baseline a scenario is compared with is added\n"
        "  -l, --list            list the scenarios and exit\n"
        "  -b, --brokers LIST    use this cluster instead of the embedded one (topics are "
        "created)\n"
        "  -n, --messages N      scale every data set so the raw baseline has N messages\n"
        "                        (default %.0f)\n"
        "  -q, --quick           a short run (1/20 of the data, short live phase): for tests\n"
        "  -r, --rounds N        run every scenario N times (1..%d), the order of the\n"
        "                        scenarios rotated and reversed from round to round; the\n"
        "                        table gives each scenario's best round (ratios: best\n"
        "                        against the baseline's best) and lists every round\n"
        "  -j, --json FILE       write the results as JSON\n"
        "  -p, --plot DIR        write PNG plots (gnuplot) into DIR\n"
        "  -X name=value         rdkafka.<property> for every client, or a kaffe consumer\n"
        "                        property (repeatable)\n"
        "  -h, --help            this help\n"
        "\n"
        "Exit status: 0 when every scenario ran and was correct, 1 otherwise, 2 on bad usage.\n",
        EMBEDDED_BROKERS, FULL_BASELINE_MESSAGES, BENCH_MAX_ROUNDS);
}

static void bench_list(void) {
    for (size_t i = 0; i < bench_scenario_count(); i++) {
        const bench_scenario_t *s = bench_scenario_at(i);
        printf("%-24s %-9s %s\n", s->name, s->family, s->summary);
    }
}

static size_t scenario_index(const bench_scenario_t *s) {
    return (size_t)(s - bench_scenario_at(0));
}

int cli_parse_bench_args(int argc, char **argv, bench_options_t *o, bool *list, bool *help,
                         char *err, size_t err_size) {
    static const struct option options[] = {
        {"scenario", required_argument, NULL, 's'}, {"list", no_argument, NULL, 'l'},
        {"brokers", required_argument, NULL, 'b'},  {"messages", required_argument, NULL, 'n'},
        {"quick", no_argument, NULL, 'q'},          {"json", required_argument, NULL, 'j'},
        {"plot", required_argument, NULL, 'p'},     {"rounds", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    int opt;
    optind = 0; /* 0, not 1: glibc then also forgets a previous parse's state */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":s:lb:n:qj:p:r:X:h", options, NULL)) != -1) {
        switch (opt) {
            case 's': {
                const bench_scenario_t *s = bench_scenario_find(optarg);
                if (!s)
                    return cli_args_error(err, err_size,
                                          "--scenario: no scenario \"%s\" (see --list)", optarg);
                o->selected[scenario_index(s)] = o->any_selected = true;
                break;
            }
            case 'l':
                *list = true;
                break;
            case 'b':
                if (!*optarg)
                    return cli_args_error(err, err_size, "--brokers: empty");
                o->brokers = optarg;
                break;
            case 'n': {
                char *end = NULL;
                errno = 0;
                long n = strtol(optarg, &end, 10);
                if (errno || end == optarg || *end || n < 100 || n > 100000000)
                    return cli_args_error(
                        err, err_size, "--messages: expected 100..100000000, got \"%s\"", optarg);
                o->scale = (double)n / FULL_BASELINE_MESSAGES;
                break;
            }
            case 'q':
                o->scale = 0.05;
                o->live_ms = 300;
                break;
            case 'j':
                o->json_path = optarg;
                break;
            case 'p':
                o->plot_dir = optarg;
                break;
            case 'r': {
                char *end = NULL;
                errno = 0;
                long n = strtol(optarg, &end, 10);
                if (errno || end == optarg || *end || n < 1 || n > BENCH_MAX_ROUNDS)
                    return cli_args_error(err, err_size, "--rounds: expected 1..%d, got \"%s\"",
                                          BENCH_MAX_ROUNDS, optarg);
                o->rounds = (int)n;
                break;
            }
            case 'X':
                if (!strchr(optarg, '=') || *optarg == '=')
                    return cli_args_error(err, err_size, "-X: expected name=value, got \"%s\"",
                                          optarg);
                if (o->prop_count == MAX_PROPS)
                    return cli_args_error(err, err_size, "-X: at most %d properties", MAX_PROPS);
                o->props[o->prop_count++] = optarg;
                break;
            case 'h':
                *help = true;
                return CLI_EXIT_OK;
            default:
                return cli_bad_option_message(opt, argv, err, err_size);
        }
    }
    if (optind < argc)
        return cli_args_error(err, err_size, "unexpected argument \"%s\"", argv[optind]);
    return CLI_EXIT_OK;
}

/* Selected scenarios in table order, with the baselines they need. */
static size_t select_scenarios(bench_options_t *o, const bench_scenario_t **out) {
    size_t total = bench_scenario_count();
    if (!o->any_selected) {
        bool have_kaffe = bench_kaffe_ops.start != NULL;
        if (!have_kaffe)
            fprintf(stderr, "bench: this build has no kaffe consumer yet: running the "
                            "librdkafka baselines only\n");
        for (size_t i = 0; i < total; i++)
            o->selected[i] = have_kaffe || bench_scenario_at(i)->kind == BENCH_RAW;
    }
    for (size_t i = 0; i < total; i++)
        if (o->selected[i]) {
            const bench_scenario_t *b = bench_scenario_find(bench_scenario_at(i)->baseline);
            if (b)
                o->selected[scenario_index(b)] = true;
        }
    size_t n = 0;
    for (size_t i = 0; i < total; i++)
        if (o->selected[i])
            out[n++] = bench_scenario_at(i);
    return n;
}

/* Data sets already produced in this run (topic names). */
typedef struct produced {
    char names[64][256];
    size_t count;
} produced_t;

static int ensure_data(produced_t *done, mock_cluster_t *mock, const char *brokers,
                       const bench_options_t *o, const bench_scenario_t *s, long messages,
                       const char *topic, char *err, size_t err_size) {
    for (size_t i = 0; i < done->count; i++)
        if (strcmp(done->names[i], topic) == 0)
            return 0;
    fprintf(stderr, "bench: producing %ld messages of %d bytes into %s\n", messages,
            s->message_size, topic);
    if (bench_create_topic(mock, brokers, topic, s->partitions, err, err_size) != 0)
        return -1;
    if (bench_produce(brokers, (char **)o->props, o->prop_count, topic, s->partitions, s->keys,
                      s->message_size, messages, 0, err, err_size) < 0)
        return -1;
    snprintf(done->names[done->count++], sizeof done->names[0], "%s", topic);
    return 0;
}

/* Runs one scenario in a child (this program with --child) and collects its
 * result line. */
static void run_child(const bench_options_t *o, const char *brokers, const char *round_id,
                      const char *data_topic, size_t index, size_t total, bench_result_t *r) {
    const bench_scenario_t *s = r->scenario;
    char live_topic[256], group[256], live_ms[32];
    bench_live_topic(s, round_id, live_topic, sizeof live_topic);
    snprintf(group, sizeof group, "kbench-%s-%s", round_id, s->name);
    snprintf(live_ms, sizeof live_ms, "%ld", o->live_ms);
    char *argv[16 + 2 * MAX_PROPS];
    size_t argc = 0;
    argv[argc++] = "kaffe";
    argv[argc++] = "bench";
    argv[argc++] = "--child";
    argv[argc++] = (char *)s->name;
    argv[argc++] = "--brokers";
    argv[argc++] = (char *)brokers;
    argv[argc++] = "--data-topic";
    argv[argc++] = (char *)data_topic;
    argv[argc++] = "--live-topic";
    argv[argc++] = live_topic;
    argv[argc++] = "--group";
    argv[argc++] = group;
    argv[argc++] = "--live-ms";
    argv[argc++] = live_ms;
    for (size_t i = 0; i < o->prop_count; i++) {
        argv[argc++] = "-X";
        argv[argc++] = o->props[i];
    }
    argv[argc] = NULL;

    int out[2];
    if (pipe(out) != 0) {
        snprintf(r->error, sizeof r->error, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->error, sizeof r->error, "fork: %s", strerror(errno));
        close(out[0]);
        close(out[1]);
        return;
    }
    if (pid == 0) { /* only async-signal-safe calls until exec */
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(out[1]);
    FILE *in = fdopen(out[0], "r");
    char line[2048];
    bool got_result = false;
    while (fgets(line, sizeof line, in)) {
        line[strcspn(line, "\n")] = '\0';
        char phase[16];
        long done, of;
        if (sscanf(line, "progress %15s %ld %ld", phase, &done, &of) == 3) {
            char label[96];
            snprintf(label, sizeof label, "%s (%s)", s->name, phase);
            bench_progress_update(index, total, label, done, of);
        } else if (bench_result_parse(line, r) == 0) {
            got_result = true;
        }
    }
    fclose(in);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got_result && !r->error[0] && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        snprintf(r->error, sizeof r->error, "scenario process ended with status %d", status);
    if (!got_result) {
        r->ran = false;
        if (WIFSIGNALED(status))
            snprintf(r->error, sizeof r->error, "scenario process died of signal %d",
                     WTERMSIG(status));
        else
            snprintf(r->error, sizeof r->error, "scenario process exited %d without a result",
                     WEXITSTATUS(status));
    }
}

/* Adds round's attempt to best: its figures go in best->round[round]; the
 * attempt replaces the kept result when it is the first, when it failed
 * (a failing round is what the table must show), or when it is faster and
 * the kept one is correct. */
static void keep_round(bench_result_t *best, const bench_result_t *attempt, int round) {
    bool correct = bench_result_correct(attempt);
    struct bench_round this_round = {
        .msgs_per_s = attempt->ran ? attempt->msgs_per_s : 0,
        .cpu_s = attempt->ran ? attempt->cpu_s : 0,
        .cpu_us_per_msg = attempt->ran ? bench_result_cpu_us_per_msg(attempt) : 0,
        .correct = correct,
    };
    bool replace =
        round == 0 || (!correct && bench_result_correct(best)) ||
        (correct && bench_result_correct(best) && attempt->msgs_per_s > best->msgs_per_s);
    if (replace) {
        struct bench_round kept[BENCH_MAX_ROUNDS];
        memcpy(kept, best->round, sizeof kept);
        *best = *attempt;
        memcpy(best->round, kept, sizeof kept);
    }
    best->round[round] = this_round;
    best->rounds = round + 1;
}

static void compute_ratios(bench_result_t *results, size_t count) {
    for (size_t i = 0; i < count; i++) {
        results[i].ratio = 0;
        for (size_t j = 0; j < count; j++)
            if (strcmp(results[j].scenario->name, results[i].scenario->baseline) == 0 &&
                results[j].ran && results[j].msgs_per_s > 0 && results[i].ran)
                results[i].ratio = results[i].msgs_per_s / results[j].msgs_per_s;
    }
}

static double now_s(void) {
    return (double)clock_now_ns() / 1e9;
}

int cli_bench(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return bench_child_main(argc, argv);
    bench_options_t o = {.scale = 1.0, .live_ms = 1000};
    bool list = false, help = false;
    char usage[512];
    int rc = cli_parse_bench_args(argc, argv, &o, &list, &help, usage, sizeof usage);
    if (rc != CLI_EXIT_OK)
        return cli_usage_error("bench", "%s", usage);
    if (help) {
        bench_help();
        return CLI_EXIT_OK;
    }
    if (list) {
        bench_list();
        return CLI_EXIT_OK;
    }
    const bench_scenario_t *chosen[64];
    size_t n = select_scenarios(&o, chosen);
    double started = now_s();

    char err[512] = "";
    mock_cluster_t *mock = NULL;
    const char *brokers = o.brokers;
    if (!brokers) {
        mock = mock_cluster_start(EMBEDDED_BROKERS, NULL, 0, err, sizeof err);
        if (!mock) {
            fprintf(stderr, "kaffe bench: %s\n", err);
            return CLI_EXIT_FAILURE;
        }
        brokers = mock_cluster_bootstraps(mock);
        fprintf(stderr, "bench: embedded cluster at %s\n", brokers);
    }
    char run_id[32];
    snprintf(run_id, sizeof run_id, "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());

    bench_result_t *results = calloc(n, sizeof *results);
    bench_result_t *attempt = calloc(1, sizeof *attempt);
    produced_t *produced = calloc(1, sizeof *produced);
    if (!results || !attempt || !produced) {
        fprintf(stderr, "kaffe bench: out of memory\n");
        free(results);
        free(attempt);
        free(produced);
        mock_cluster_stop(mock);
        return CLI_EXIT_FAILURE;
    }
    int rounds = o.rounds > 1 ? o.rounds : 1;
    rc = CLI_EXIT_OK;
    for (int round = 0; round < rounds; round++) {
        /* Round k runs the scenarios rotated by k, reversed in odd rounds, so
         * no scenario always runs first or right after the same one. */
        char round_id[48];
        snprintf(round_id, sizeof round_id, rounds > 1 ? "%sr%d" : "%s", run_id, round + 1);
        for (size_t step = 0; step < n; step++) {
            size_t k = (step + (size_t)round) % n;
            size_t i = round % 2 ? n - 1 - k : k;
            const bench_scenario_t *s = chosen[i];
            size_t progress = (size_t)round * n + step, progress_total = (size_t)rounds * n;
            memset(attempt, 0, sizeof *attempt);
            attempt->scenario = s;
            bench_progress_scenario(progress, progress_total, s->name);
            long messages = bench_messages(s, o.scale, mock != NULL);
            char data_topic[256], live_topic[256];
            bench_data_topic(s, messages, run_id, data_topic, sizeof data_topic);
            bench_live_topic(s, round_id, live_topic, sizeof live_topic);
            if (ensure_data(produced, mock, brokers, &o, s, messages, data_topic, err,
                            sizeof err) ||
                bench_create_topic(mock, brokers, live_topic, s->partitions, err, sizeof err)) {
                snprintf(attempt->error, sizeof attempt->error, "%s", err);
            } else {
                run_child(&o, brokers, round_id, data_topic, progress, progress_total, attempt);
            }
            bench_progress_done(progress, progress_total, attempt);
            keep_round(&results[i], attempt, round);
            if (!bench_result_correct(attempt))
                rc = CLI_EXIT_FAILURE;
        }
    }
    compute_ratios(results, n);
    double elapsed = now_s() - started;

    printf("kaffe bench on %s, %ld online CPUs, librdkafka %s, %.0f s, %d round%s\n",
           mock ? "the embedded cluster" : brokers, sysconf(_SC_NPROCESSORS_ONLN),
           rd_kafka_version_str(), elapsed, rounds, rounds > 1 ? "s (best of each)" : "");
    printf("msgs/s, MB/s, CPU, RSS: draining a pre-produced backlog; latencies: messages "
           "produced live at half that rate (max 20000/s)\n\n");
    bench_report_table(results, n, stdout);
    if (o.json_path) {
        char command[4096] = "kaffe";
        for (int i = 0; i < argc; i++) {
            strncat(command, " ", sizeof command - strlen(command) - 1);
            strncat(command, argv[i], sizeof command - strlen(command) - 1);
        }
        if (bench_report_json(results, n, o.json_path, command, mock ? "embedded" : brokers,
                              elapsed) == 0)
            printf("\nJSON: %s\n", o.json_path);
        else
            rc = CLI_EXIT_FAILURE;
    }
    if (o.plot_dir) {
        int plots = bench_report_plots(results, n, o.plot_dir);
        if (plots > 0)
            printf("plots: %s/ (%d PNG)\n", o.plot_dir, plots);
    }
    free(produced);
    free(attempt);
    free(results);
    mock_cluster_stop(mock);
    return rc;
}
