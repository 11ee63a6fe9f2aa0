/*
 * Build helper: turns a binary file into a C source file defining
 * `const unsigned char NAME[]` and `const size_t NAME_len`. The build uses it to
 * compile the reflection descriptor set into the binaries.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: %s INPUT OUTPUT.c SYMBOL\n", argv[0]);
    return 2;
  }
  FILE *in = fopen(argv[1], "rb");
  if (in == NULL) {
    perror(argv[1]);
    return 1;
  }
  FILE *out = fopen(argv[2], "w");
  if (out == NULL) {
    perror(argv[2]);
    fclose(in);
    return 1;
  }
  fprintf(out, "/* generated from %s by fm_embed; do not edit */\n", argv[1]);
  fprintf(out, "#include <stddef.h>\n");
  fprintf(out, "const unsigned char %s[] = {", argv[3]);
  size_t n = 0;
  int c;
  while ((c = fgetc(in)) != EOF) {
    fprintf(out, "%s0x%02x,", n % 16 == 0 ? "\n  " : " ", (unsigned)c);
    n++;
  }
  fprintf(out, "\n  0x00\n};\n");
  fprintf(out, "const size_t %s_len = %zu;\n", argv[3], n);
  int bad = ferror(in) || ferror(out);
  fclose(in);
  if (fclose(out) != 0 || bad) {
    fprintf(stderr, "fm_embed: write failed\n");
    return 1;
  }
  return 0;
}
