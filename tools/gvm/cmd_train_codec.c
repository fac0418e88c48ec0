// cmd_train_codec.c: `gvm train-codec`: the command line of the codec's training loop (train/codec_loop.h);
// the shared parts (config, run folder, signals, exit status) are in tools/gvm/train_cli.c.
#include <stdio.h>

#include "tools/gvm/commands.h"
#include "train/codec_loop.h"

static void help(FILE *out) {
    fprintf(out,
            "usage: gvm train-codec CONFIG [KEY=VALUE ...] [--run-dir DIR]\n"
            "       gvm train-codec [CONFIG] [KEY=VALUE ...] --resume RUN_DIR\n"
            "\n"
            "Train a small EnCodec-style audio codec on the audio of the dataset shards (data.dir, the\n"
            "train split), so the pipeline runs offline without the pretrained 32 kHz codec\n"
            "(configs/codec-demo.yaml). The architecture comes from the codec.* keys, the training from\n"
            "codec_train.* (docs/config.md). At the end the run folder holds codec.safetensors: point\n"
            "codec.init at it for gvm encode and gvm generate. The run folder also holds config.yaml,\n"
            "metrics.jsonl (losses; SI-SNR and mel distance on the eval split) and ckpt-<step>/.\n"
            "\n"
            "options:\n"
            "      --run-dir DIR     run folder (default: run.dir/run.name of the config)\n"
            "      --resume RUN_DIR  continue the run in RUN_DIR from its latest good checkpoint\n"
            "  -q, --quiet           no progress lines\n"
            "  -h, --help            this text\n"
            "\n"
            "SIGINT/SIGTERM: the current step finishes, a checkpoint is written and gvm exits 0. exit\n"
            "status: 0 done or stopped, 1 error (the last good checkpoint is kept), 2 usage.\n");
}

int gvm_cmd_train_codec(int argc, char **argv) {
    return gvm_cli_train_command(argc, argv, "train-codec", help, gvm_codec_train_run);
}
