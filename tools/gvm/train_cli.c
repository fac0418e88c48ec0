// train_cli.c: what `gvm train` and `gvm train-codec` share on the command line: load the config (a YAML file
// plus "a.b=value" overrides, or the run's config.yaml with --resume), pick the run folder, refuse to start
// over a run that has checkpoints, save the resolved config there as config.yaml, install the SIGINT/SIGTERM
// handlers that ask the loop to stop after the current step, and call the loop.
//
// Exit status: 0 trained to the last step, or stopped by a signal after writing a checkpoint (resume with
// --resume); 1 an error stopped the run (a non-finite loss included: the last good checkpoint is kept);
// 2 a usage error.
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/gvm/commands.h"

static const char *g_name = "train";
static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    if (g_stop) _exit(128 + sig);  // a second signal: quit at once (the last checkpoint is safe on disk)
    g_stop = sig;
    static const char msg[] = "\ngvm: stopping after this step and writing a checkpoint (signal again to quit at "
                              "once)\n";
    ssize_t rc = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)rc;
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "gvm: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see gvm %s --help)\n", g_name);
    return 2;
}

int gvm_cli_train_command(int argc, char **argv, const char *name, void (*help)(FILE *),
                          gvm_cli_train_fn run) {
    static const struct option longopts[] = {
        {"run-dir", required_argument, NULL, 'r'}, {"resume", required_argument, NULL, 'R'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *run_dir = NULL, *resume_dir = NULL;
    bool quiet = false;
    int c;
    g_name = name;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'r': run_dir = optarg; break;
        case 'R': resume_dir = optarg; break;
        case 'q': quiet = true; break;
        case 'h': help(stdout); return 0;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (run_dir && resume_dir && strcmp(run_dir, resume_dir) != 0)
        return usage_error("--run-dir and --resume name different folders ('%s')", run_dir);
    const char *config_path = NULL;
    const char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    int n_over = 0;
    for (int i = optind; i < argc; i++) {
        if (strchr(argv[i], '=')) {
            overrides[n_over++] = argv[i];
        } else if (!config_path) {
            config_path = argv[i];
        } else {
            free(overrides);
            return usage_error("more than one config file ('%s'); overrides are KEY=VALUE", argv[i]);
        }
    }
    char resumed_config[4200];
    if (!config_path && resume_dir) {
        snprintf(resumed_config, sizeof resumed_config, "%s/config.yaml", resume_dir);
        config_path = resumed_config;
    }
    if (!config_path) {
        free(overrides);
        help(stderr);
        return 2;
    }

    gvm_config *cfg = malloc(sizeof *cfg);
    gvm_status st = gvm_config_load(cfg, config_path, n_over, overrides);
    free(overrides);
    if (st != GVM_OK) {
        fprintf(stderr, "gvm %s: error: %s\n", name, gvm_error_message());
        free(cfg);
        return 2;
    }
    char dir[2 * GVM_CONFIG_STR_MAX + 2];
    if (resume_dir)
        snprintf(dir, sizeof dir, "%s", resume_dir);
    else if (run_dir)
        snprintf(dir, sizeof dir, "%s", run_dir);
    else {
        mkdir(cfg->run.dir, 0777);  // the parent of the default run folder
        snprintf(dir, sizeof dir, "%s/%s", cfg->run.dir, cfg->run.name);
    }
    char latest[sizeof dir + 16];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    if (!resume_dir && access(latest, F_OK) == 0) {  // before config.yaml of that run is overwritten
        fprintf(stderr, "gvm %s: error: %s already has checkpoints: resume it with --resume %s or choose "
                        "another --run-dir\n", name, dir, dir);
        free(cfg);
        return 2;
    }
    mkdir(dir, 0777);
    char yaml[sizeof dir + 16];
    snprintf(yaml, sizeof yaml, "%s/config.yaml", dir);
    if ((st = gvm_config_write_yaml(cfg, yaml)) != GVM_OK) {
        fprintf(stderr, "gvm %s: error: %s\n", name, gvm_error_message());
        free(cfg);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    gvm_train_opts opts = {.stop = &g_stop, .log = stderr, .quiet = quiet};
    gvm_train_result res;
    st = run(cfg, dir, resume_dir != NULL, &opts, &res);
    free(cfg);
    if (st != GVM_OK) {
        fprintf(stderr, "gvm %s: error: %s\n", name, gvm_error_message());
        return 1;
    }
    if (res.steps_done == res.start_step)
        fprintf(stderr, "gvm %s: nothing to do: the run is at its last step (%lld); run folder %s\n", name,
                (long long)res.steps_done, dir);
    else
        fprintf(stderr, "gvm %s: %s at step %lld (loss %.4f); run folder %s\n", name,
                res.stopped ? "stopped" : "done", (long long)res.steps_done, res.last_loss, dir);
    return 0;
}
