// commands.h: the commands of the gvm program. Each is `int gvm_cmd_<name>(int argc, char **argv)` in
// tools/gvm/cmd_<name>.c: argv[0] is the command's name, the return value is the process exit status.
// A new command adds its declaration here and a row to the table in tools/gvm/main.c.
#ifndef GVM_TOOLS_COMMANDS_H
#define GVM_TOOLS_COMMANDS_H

int gvm_cmd_prep(int argc, char **argv);
int gvm_cmd_train(int argc, char **argv);

#endif
