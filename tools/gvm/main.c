// main.c: the gvm program: `gvm <command> [options]`. It only dispatches: each command parses its own
// options (tools/gvm/cmd_*.c) and calls the libraries. Exit status: 0 success, 1 an error, 2 a usage
// error; a command may define more (gvm prep: 3 when some inputs failed, 128 + signal when interrupted).
#include <stdio.h>
#include <string.h>

#include "data/prep.h"  // GVM_VERSION
#include "tools/gvm/commands.h"

typedef struct gvm_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} gvm_command;

static const gvm_command g_commands[] = {
    {"prep", "cut videos into clips and write train/eval dataset shards (HDF5)", gvm_cmd_prep},
    {"train", "train GVMGen from a config (resumable; checkpoints and metrics in the run folder)", gvm_cmd_train},
    {"encode", "fill the shards' codes with a codec's codes of each clip's audio", gvm_cmd_encode},
    {"generate", "music for a video from a trained checkpoint (WAV, and the video with it as MP4)", gvm_cmd_generate},
    {"train-codec", "train a small EnCodec-style codec on the shards' audio (offline codec)", gvm_cmd_train_codec},
    {"import", "convert a Hugging Face repository (CLIP, MusicGen, EnCodec) into gvm weight files", gvm_cmd_import},
};
enum { N_COMMANDS = sizeof g_commands / sizeof g_commands[0] };

static void usage(FILE *out) {
    fprintf(out,
            "usage: gvm <command> [options]\n"
            "       gvm <command> --help\n"
            "       gvm --version\n"
            "\n"
            "GVMGen video-to-music generation: data preparation, training and generation.\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-12s %s\n", g_commands[i].name, g_commands[i].summary);
    fprintf(out, "\nSee docs/ for each command's reference (docs/prep.md, docs/train.md, docs/codec.md,\n"
                 "docs/generate.md, docs/pretrained.md); tools/quickstart.sh runs them all on demo media.\n");
}

static void list_commands(FILE *out) {
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "%s%s", i ? ", " : "", g_commands[i].name);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("gvm %s\n", GVM_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {  // `gvm help prep` = `gvm prep --help`
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        for (int i = 0; i < N_COMMANDS; i++)
            if (strcmp(argv[2], g_commands[i].name) == 0) {
                char *args[] = {argv[2], "--help", NULL};
                return g_commands[i].run(2, args);
            }
        cmd = argv[2];
    } else {
        for (int i = 0; i < N_COMMANDS; i++)
            if (strcmp(cmd, g_commands[i].name) == 0) return g_commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "gvm: error: unknown %s '%s'; the commands are: ", cmd[0] == '-' ? "option" : "command", cmd);
    list_commands(stderr);
    fprintf(stderr, " (see gvm --help)\n");
    return 2;
}
