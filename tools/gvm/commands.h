// commands.h: the commands of the gvm program. Each is `int gvm_cmd_<name>(int argc, char **argv)` in
// tools/gvm/cmd_<name>.c: argv[0] is the command's name, the return value is the process exit status.
// A new command adds its declaration here and a row to the table in tools/gvm/main.c.
#ifndef GVM_TOOLS_COMMANDS_H
#define GVM_TOOLS_COMMANDS_H

#include <stdio.h>

#include "train/loop.h"

int gvm_cmd_prep(int argc, char **argv);
int gvm_cmd_train(int argc, char **argv);
int gvm_cmd_train_codec(int argc, char **argv);
int gvm_cmd_encode(int argc, char **argv);
int gvm_cmd_generate(int argc, char **argv);
int gvm_cmd_import(int argc, char **argv);

// The shared command line of the training commands (tools/gvm/train_cli.c): `gvm <name> CONFIG [KEY=VALUE
// ...] [--run-dir DIR] [--resume RUN_DIR] [-q]`, running `run` (gvm_train_run, gvm_codec_train_run).
typedef gvm_status (*gvm_cli_train_fn)(const gvm_config *cfg, const char *run_dir, bool resume,
                                       const gvm_train_opts *opts, gvm_train_result *result);
int gvm_cli_train_command(int argc, char **argv, const char *name, void (*help)(FILE *), gvm_cli_train_fn run);

#endif
