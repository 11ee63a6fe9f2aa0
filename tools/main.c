/* filermeta: the bundled client CLI. Dispatches to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "fm_config.h"
#include "tools.h"

static void usage(FILE *out)
{
  fprintf(out, "Usage: filermeta <command> [flags]\n\n"
               "Commands:\n"
               "  ping      ping a filer (or, through it, another filer) and print the clocks\n"
               "  config    print a filer's GetFilerConfiguration answer\n"
               "  bench     benchmarks (bench ping: unary call rate with concurrent clients)\n"
               "  wal       print the event write-ahead records of a stopped filer's data dir\n"
               "  version   print the version\n\n"
               "Run filermeta <command> -h for the flags of a command.\n");
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "ping") == 0)
    return fm_cmd_ping(argc - 1, argv + 1);
  if (strcmp(cmd, "config") == 0)
    return fm_cmd_config(argc - 1, argv + 1);
  if (strcmp(cmd, "wal") == 0)
    return fm_cmd_wal(argc - 1, argv + 1);
  if (strcmp(cmd, "bench") == 0)
    return fm_cmd_bench(argc - 1, argv + 1);
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
