/* filermeta: the bundled client CLI. Dispatches to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "fm_config.h"
#include "tools.h"

static void usage(FILE *out)
{
  fprintf(out, "Usage: filermeta [-filer host:port] <command> [flags] [args]\n\n"
               "Commands:\n"
               "  put /path [--dir] [--content STR]   create a file or directory\n"
               "  ls [-l] [/dir]                      list a directory\n"
               "  stat /path                          show an entry\n"
               "  rm [-r] /path                       delete (-r: a directory and its contents)\n"
               "  mv /from /to                        rename or move a file or directory tree\n"
               "  kv get KEY | kv put KEY VALUE       the filer's key-value store\n"
               "  ping                                ping a filer (or, through it, another filer)\n"
               "  config                              print a filer's GetFilerConfiguration answer\n"
               "  log -dir DIR                        print every event a stopped filer has persisted\n"
               "  bench ping|create|catchup|live|fanout|raw   benchmarks\n"
               "  version                             print the version\n\n"
               "-filer takes the SeaweedFS form: host:port is the HTTP port with gRPC at port+10000,\n"
               "host:port.grpcPort names both. Most commands take --json. Run filermeta <command> -h\n"
               "for a command's flags.\n");
}

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
  { "put", fm_cmd_put }, { "ls", fm_cmd_ls },       { "stat", fm_cmd_stat }, { "rm", fm_cmd_rm },
  { "mv", fm_cmd_mv },   { "kv", fm_cmd_kv },       { "ping", fm_cmd_ping }, { "config", fm_cmd_config },
  { "log", fm_cmd_log }, { "bench", fm_cmd_bench },
};

int main(int argc, char **argv)
{
  int i = 1;
  /* global flags before the command: -filer host:port (also --filer, -filer=...) */
  while (i < argc && argv[i][0] == '-') {
    const char *a = argv[i] + (argv[i][1] == '-' ? 2 : 1);
    if (strcmp(a, "filer") == 0 && i + 1 < argc) {
      fm_tools_filer = argv[i + 1];
      i += 2;
    } else if (strncmp(a, "filer=", 6) == 0) {
      fm_tools_filer = a + 6;
      i++;
    } else {
      break;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[i];
  for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
    if (strcmp(cmd, commands[k].name) == 0)
      return commands[k].run(argc - i, argv + i);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "-version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("filermeta %s\n", FM_VERSION);
    return 0;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-help") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "filermeta: unknown command \"%s\" (see filermeta help)\n", cmd);
  return 2;
}
