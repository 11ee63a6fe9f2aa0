/* Subcommands of the filermeta CLI; each takes its own argv (argv[0] is the
 * subcommand name) and returns the process exit code. Called from tools/main.c. */
#ifndef FM_TOOLS_H
#define FM_TOOLS_H

int fm_cmd_ping(int argc, char **argv);
int fm_cmd_config(int argc, char **argv);
int fm_cmd_bench(int argc, char **argv);
int fm_cmd_log(int argc, char **argv);
int fm_cmd_tail(int argc, char **argv);
int fm_cmd_put(int argc, char **argv);
int fm_cmd_ls(int argc, char **argv);
int fm_cmd_stat(int argc, char **argv);
int fm_cmd_rm(int argc, char **argv);
int fm_cmd_mv(int argc, char **argv);
int fm_cmd_kv(int argc, char **argv);

/* The filer named by a -filer given before the command (default
 * "localhost:8888"); each command's own -filer overrides it. */
extern const char *fm_tools_filer;

#endif
