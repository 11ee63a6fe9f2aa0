/* The reflection index: the descriptor set is decoded by protobuf-c's code for
 * google/protobuf/descriptor.proto, each file re-packed for sending, and every
 * symbol recorded in a sorted array searched with bsearch. */
#include "descriptor_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.pb-c.h"
#include "error.h"

typedef struct symbol {
  char *name;
  int file;
  bool is_message;
} symbol;

typedef struct file_entry {
  const char *name; /* borrowed from set */
  uint8_t *bytes;
  size_t len;
  int *deps; /* indexes of direct dependencies */
  size_t ndeps;
} file_entry;

struct fm_descriptor_index {
  Google__Protobuf__FileDescriptorSet *set;
  file_entry *files;
  size_t nfiles;
  symbol *symbols;
  size_t nsymbols, capsymbols;
};

static int add_symbol(fm_descriptor_index *idx, const char *scope, const char *name, int file, bool is_message,
                      char **full_out)
{
  if (name == NULL)
    return 0;
  if (idx->nsymbols == idx->capsymbols) {
    size_t cap = idx->capsymbols ? idx->capsymbols * 2 : 256;
    symbol *grown = realloc(idx->symbols, cap * sizeof *grown);
    if (grown == NULL)
      return FM_ENOMEM;
    idx->symbols = grown;
    idx->capsymbols = cap;
  }
  size_t len = strlen(scope) + strlen(name) + 2;
  char *full = malloc(len);
  if (full == NULL)
    return FM_ENOMEM;
  if (scope[0] != '\0')
    snprintf(full, len, "%s.%s", scope, name);
  else
    snprintf(full, len, "%s", name);
  idx->symbols[idx->nsymbols++] = (symbol){ full, file, is_message };
  if (full_out != NULL)
    *full_out = full;
  return 0;
}

/* An enum and its values; the values live in the enum's enclosing scope
 * (filer_pb.WriteCondition.IF_EXISTS), as protobuf scopes them. */
static int add_enum(fm_descriptor_index *idx, const char *scope, const Google__Protobuf__EnumDescriptorProto *e,
                    int file)
{
  int rc = add_symbol(idx, scope, e->name, file, false, NULL);
  for (size_t i = 0; i < e->n_value && rc == 0; i++)
    rc = add_symbol(idx, scope, e->value[i]->name, file, false, NULL);
  return rc;
}

static int add_message(fm_descriptor_index *idx, const char *scope, const Google__Protobuf__DescriptorProto *m,
                       int file)
{
  char *full = NULL;
  int rc = add_symbol(idx, scope, m->name, file, true, &full);
  if (rc != 0 || full == NULL)
    return rc;
  for (size_t i = 0; i < m->n_field && rc == 0; i++)
    rc = add_symbol(idx, full, m->field[i]->name, file, false, NULL);
  for (size_t i = 0; i < m->n_nested_type && rc == 0; i++)
    rc = add_message(idx, full, m->nested_type[i], file);
  for (size_t i = 0; i < m->n_enum_type && rc == 0; i++)
    rc = add_enum(idx, full, m->enum_type[i], file);
  return rc;
}

static int index_file(fm_descriptor_index *idx, int fi)
{
  const Google__Protobuf__FileDescriptorProto *f = idx->set->file[fi];
  const char *pkg = f->package != NULL ? f->package : "";
  int rc = 0;
  for (size_t i = 0; i < f->n_message_type && rc == 0; i++)
    rc = add_message(idx, pkg, f->message_type[i], fi);
  for (size_t i = 0; i < f->n_enum_type && rc == 0; i++)
    rc = add_enum(idx, pkg, f->enum_type[i], fi);
  for (size_t i = 0; i < f->n_service && rc == 0; i++) {
    const Google__Protobuf__ServiceDescriptorProto *s = f->service[i];
    char *full = NULL;
    rc = add_symbol(idx, pkg, s->name, fi, false, &full);
    for (size_t j = 0; j < s->n_method && rc == 0 && full != NULL; j++)
      rc = add_symbol(idx, full, s->method[j]->name, fi, false, NULL);
  }
  return rc;
}

static int cmp_symbol(const void *a, const void *b)
{
  return strcmp(((const symbol *)a)->name, ((const symbol *)b)->name);
}

int fm_descriptor_index_new(const void *set, size_t len, fm_descriptor_index **out)
{
  int rc = FM_ENOMEM;
  fm_descriptor_index *idx = calloc(1, sizeof *idx);
  if (idx == NULL)
    return FM_ENOMEM;
  idx->set = google__protobuf__file_descriptor_set__unpack(NULL, len, set);
  if (idx->set == NULL) {
    rc = FM_EDECODE;
    goto err;
  }
  idx->nfiles = idx->set->n_file;
  idx->files = calloc(idx->nfiles ? idx->nfiles : 1, sizeof *idx->files);
  if (idx->files == NULL)
    goto err;
  for (size_t i = 0; i < idx->nfiles; i++) {
    const Google__Protobuf__FileDescriptorProto *f = idx->set->file[i];
    file_entry *fe = &idx->files[i];
    fe->name = f->name != NULL ? f->name : "";
    fe->len = google__protobuf__file_descriptor_proto__get_packed_size(f);
    fe->bytes = malloc(fe->len ? fe->len : 1);
    if (fe->bytes == NULL)
      goto err;
    google__protobuf__file_descriptor_proto__pack(f, fe->bytes);
  }
  /* dependencies are resolved after every file has its name */
  for (size_t i = 0; i < idx->nfiles; i++) {
    const Google__Protobuf__FileDescriptorProto *f = idx->set->file[i];
    file_entry *fe = &idx->files[i];
    fe->deps = calloc(f->n_dependency ? f->n_dependency : 1, sizeof *fe->deps);
    if (fe->deps == NULL) {
      rc = FM_ENOMEM;
      goto err;
    }
    for (size_t d = 0; d < f->n_dependency; d++) {
      int di = fm_descriptor_index_find_file(idx, f->dependency[d]);
      if (di < 0) {
        rc = FM_EDECODE; /* a set built with --include_imports is closed */
        goto err;
      }
      fe->deps[fe->ndeps++] = di;
    }
    rc = index_file(idx, (int)i);
    if (rc != 0)
      goto err;
  }
  if (idx->nsymbols > 0)
    qsort(idx->symbols, idx->nsymbols, sizeof *idx->symbols, cmp_symbol);
  *out = idx;
  return 0;
err:
  fm_descriptor_index_free(idx);
  return rc;
}

void fm_descriptor_index_free(fm_descriptor_index *idx)
{
  if (idx == NULL)
    return;
  for (size_t i = 0; idx->files != NULL && i < idx->nfiles; i++) {
    free(idx->files[i].bytes);
    free(idx->files[i].deps);
  }
  free(idx->files);
  for (size_t i = 0; i < idx->nsymbols; i++)
    free(idx->symbols[i].name);
  free(idx->symbols);
  if (idx->set != NULL)
    google__protobuf__file_descriptor_set__free_unpacked(idx->set, NULL);
  free(idx);
}

size_t fm_descriptor_index_file_count(const fm_descriptor_index *idx)
{
  return idx->nfiles;
}

const char *fm_descriptor_index_file_name(const fm_descriptor_index *idx, size_t i)
{
  return i < idx->nfiles ? idx->files[i].name : NULL;
}

const uint8_t *fm_descriptor_index_file_bytes(const fm_descriptor_index *idx, size_t i, size_t *len)
{
  if (i >= idx->nfiles)
    return NULL;
  *len = idx->files[i].len;
  return idx->files[i].bytes;
}

int fm_descriptor_index_find_file(const fm_descriptor_index *idx, const char *name)
{
  for (size_t i = 0; i < idx->nfiles; i++)
    if (strcmp(idx->files[i].name, name) == 0)
      return (int)i;
  return -1;
}

int fm_descriptor_index_find_symbol(const fm_descriptor_index *idx, const char *name, bool *is_message)
{
  if (idx->nsymbols == 0)
    return -1;
  symbol key = { (char *)(uintptr_t)name, 0, false };
  const symbol *s = bsearch(&key, idx->symbols, idx->nsymbols, sizeof *idx->symbols, cmp_symbol);
  if (s == NULL)
    return -1;
  if (is_message != NULL)
    *is_message = s->is_message;
  return s->file;
}

size_t fm_descriptor_index_closure(const fm_descriptor_index *idx, size_t i, size_t *out, size_t cap)
{
  if (i >= idx->nfiles || cap == 0)
    return 0;
  size_t n = 0;
  out[n++] = i;
  /* breadth-first over out[] itself: it is both the queue and the result */
  for (size_t head = 0; head < n; head++) {
    const file_entry *fe = &idx->files[out[head]];
    for (size_t d = 0; d < fe->ndeps; d++) {
      size_t dep = (size_t)fe->deps[d];
      bool seen = false;
      for (size_t k = 0; k < n && !seen; k++)
        seen = out[k] == dep;
      if (!seen && n < cap)
        out[n++] = dep;
    }
  }
  return n;
}
