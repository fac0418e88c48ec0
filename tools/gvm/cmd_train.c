// cmd_train.c: `gvm train`: the command line of GVMGen's training loop (train/loop.h); the shared parts
// (config, run folder, signals, exit status) are in tools/gvm/train_cli.c.
#include <stdio.h>

#include "tools/gvm/commands.h"
#include "train/loop.h"

static void help(FILE *out) {
    fprintf(out,
            "usage: gvm train CONFIG [KEY=VALUE ...] [--run-dir DIR]\n"
            "       gvm train [CONFIG] [KEY=VALUE ...] --resume RUN_DIR\n"
            "\n"
            "Train GVMGen as configured. CONFIG is a YAML file (configs/demo.yaml); each KEY=VALUE\n"
            "overrides one key after it (train.lr=3e-4, model.lm.delays=[0,1,2,3]); docs/config.md lists\n"
            "every key. The resolved config is saved as RUN_DIR/config.yaml; the run folder also holds\n"
            "metrics.jsonl (one JSON object per logged step) and the checkpoints ckpt-<step>/.\n"
            "\n"
            "options:\n"
            "      --run-dir DIR     run folder (default: run.dir/run.name of the config)\n"
            "      --resume RUN_DIR  continue the run in RUN_DIR from its latest good checkpoint (weights,\n"
            "                        EMA, optimiser, step, RNG, data position); without CONFIG its\n"
            "                        config.yaml is used, with the overrides applied on top\n"
            "  -q, --quiet           no progress lines\n"
            "  -h, --help            this text\n"
            "\n"
            "SIGINT/SIGTERM: the current step finishes, a checkpoint is written and gvm exits 0 (a second\n"
            "signal quits at once). exit status: 0 done or stopped, 1 error (a NaN/Inf loss included: the\n"
            "last good checkpoint is kept), 2 usage.\n");
}

int gvm_cmd_train(int argc, char **argv) { return gvm_cli_train_command(argc, argv, "train", help, gvm_train_run); }
