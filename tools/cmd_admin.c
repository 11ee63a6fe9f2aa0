/*
 * filermeta's small admin commands over the filer's gRPC API: put, ls, stat,
 * rm, mv, kv. Human-readable output by default, --json (protobuf canonical
 * JSON, one object per line) for scripts. Server errors are printed as the
 * server worded them, with a non-zero exit.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "fpath.h"
#include "net_addr.h"
#include "pb_json.h"
#include "rpc_client.h"
#include "tools.h"

#define CALL_TIMEOUT_MS 30000

/* Set by main.c from a -filer given before the command. */
const char *fm_tools_filer = "localhost:8888";

/* ---------------------------------------------------------------- shared plumbing */

typedef struct admin {
  const char *cmd;
  const char *filer;
  bool json;
  char *pos[4]; /* positional arguments */
  int npos;
  fm_rpc_client *client;
} admin;

/*
 * Parses flags that may come before, between or after the positional
 * arguments (`rm -r /a` and `put /a --dir` both work). Returns 0, or the exit
 * code to return (with -h: 0 after printing usage, signalled as -1).
 */
static int parse_args(admin *a, fm_flag *flags, size_t n, int argc, char **argv, const char *usage, int want_min,
                      int want_max)
{
  char err[FM_ERR_LEN];
  int i = 0; /* argv[i] is the "program name" slot for fm_flags_parse */
  while (i < argc) {
    int first = 0;
    int rc = fm_flags_parse(flags, n, argc - i, argv + i, &first, err, sizeof err);
    if (rc == FM_FLAGS_HELP) {
      printf("Usage: filermeta %s\n\nFlags:\n", usage);
      fm_flags_usage(stdout, flags, n);
      return -1;
    }
    if (rc != 0) {
      fprintf(stderr, "filermeta %s: %s\n", a->cmd, err);
      return 2;
    }
    i += first;
    if (i >= argc)
      break;
    if (a->npos == 4) {
      fprintf(stderr, "filermeta %s: too many arguments (usage: filermeta %s)\n", a->cmd, usage);
      return 2;
    }
    a->pos[a->npos++] = argv[i];
  }
  if (a->npos < want_min || a->npos > want_max) {
    fprintf(stderr, "filermeta %s: wrong number of arguments (usage: filermeta %s)\n", a->cmd, usage);
    return 2;
  }
  char target[300];
  if (fm_net_filer_grpc_target(a->filer, target, sizeof target) != 0) {
    fprintf(stderr, "filermeta %s: -filer \"%s\" is not host:port or host:port.grpcPort\n", a->cmd, a->filer);
    return 2;
  }
  if (fm_rpc_client_new(target, &a->client) != 0) {
    fprintf(stderr, "filermeta %s: out of memory\n", a->cmd);
    return 1;
  }
  return 0;
}

/* Splits an absolute path into its normalised parent and name (both malloc'ed). */
static int split_path(admin *a, const char *path, char **dir, char **name)
{
  char err[FM_ERR_LEN], *norm = NULL;
  if (fm_path_check_dir(path, strlen(path), "path", &norm, err, sizeof err) != 0) {
    fprintf(stderr, "filermeta %s: %s\n", a->cmd, err);
    return 2;
  }
  if (strcmp(norm, "/") == 0) {
    *dir = norm;
    *name = strdup("");
    return 0;
  }
  const char *base;
  *dir = fm_path_parent(norm, &base);
  *name = strdup(base);
  free(norm);
  return 0;
}

static void print_json(const ProtobufCMessage *m)
{
  char *s = NULL;
  if (fm_pb_json_string(m, &s) == 0) {
    puts(s);
    free(s);
  }
}

static int unary(admin *a, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
                 ProtobufCMessage **resp)
{
  char path[128], err[FM_ERR_LEN];
  snprintf(path, sizeof path, "/filer_pb.SeaweedFiler/%s", method);
  if (fm_rpc_client_unary(a->client, path, req, desc, CALL_TIMEOUT_MS, resp, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "filermeta %s: %s\n", a->cmd, err);
    return 1;
  }
  return 0;
}

static int finish(admin *a, int rc)
{
  fm_rpc_client_free(a->client);
  return rc < 0 ? 0 : rc;
}

#define FILER_FLAG(a)                                                                                                  \
  {                                                                                                                    \
    "filer", FM_FLAG_STRING, &(a).filer, "filer address (host:port or host:port.grpcPort)", 0, 0, false                \
  }
#define JSON_FLAG(a)                                                                                                   \
  {                                                                                                                    \
    "json", FM_FLAG_BOOL, &(a).json, "print protobuf canonical JSON", 0, 0, false                                      \
  }

/* ---------------------------------------------------------------- put */

int fm_cmd_put(int argc, char **argv)
{
  admin a = { .cmd = "put", .filer = fm_tools_filer };
  bool dir_flag = false;
  const char *content = "";
  fm_flag flags[] = {
    FILER_FLAG(a),
    JSON_FLAG(a),
    { "dir", FM_FLAG_BOOL, &dir_flag, "create a directory", 0, 0, false },
    { "content", FM_FLAG_STRING, &content, "inline file content", 0, 0, false },
  };
  int rc = parse_args(&a, flags, 4, argc, argv, "put /path [--dir] [--content STR]", 1, 1);
  if (rc != 0)
    return finish(&a, rc);
  char *dir = NULL, *name = NULL;
  if ((rc = split_path(&a, a.pos[0], &dir, &name)) != 0)
    return finish(&a, rc);
  int64_t now = fm_now_ns();
  FilerPb__FuseAttributes attr = FILER_PB__FUSE_ATTRIBUTES__INIT;
  attr.file_mode = dir_flag ? FM_MODE_DIR | 0755 : 0644;
  attr.mtime = attr.crtime = now / 1000000000;
  attr.mtime_ns = attr.crtime_ns = (int32_t)(now % 1000000000);
  attr.file_size = dir_flag ? 0 : strlen(content);
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  e.name = name;
  e.is_directory = dir_flag;
  e.attributes = &attr;
  if (!dir_flag) {
    e.content.data = (uint8_t *)(uintptr_t)content;
    e.content.len = strlen(content);
  }
  FilerPb__CreateEntryRequest req = FILER_PB__CREATE_ENTRY_REQUEST__INIT;
  req.directory = dir;
  req.entry = &e;
  ProtobufCMessage *resp = NULL;
  rc = unary(&a, "CreateEntry", &req.base, &filer_pb__create_entry_response__descriptor, &resp);
  if (rc == 0) {
    const FilerPb__CreateEntryResponse *r = (const FilerPb__CreateEntryResponse *)resp;
    if (a.json)
      print_json(resp);
    if (r->error[0] != '\0') {
      fprintf(stderr, "filermeta put: %s\n", r->error);
      rc = 1;
    } else if (!a.json) {
      printf("created %s%s\n", a.pos[0], dir_flag ? "/" : "");
    }
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  free(dir);
  free(name);
  return finish(&a, rc);
}

/* ---------------------------------------------------------------- ls */

typedef struct ls_state {
  bool json, lng;
} ls_state;

static void print_long(const FilerPb__Entry *e)
{
  const FilerPb__FuseAttributes *at = e->attributes;
  char when[32] = "-";
  if (at != NULL && at->mtime > 0) {
    time_t t = (time_t)at->mtime;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  printf("%c%04o %10" PRIu64 " %s %s%s\n", e->is_directory ? 'd' : '-', at ? at->file_mode & 07777 : 0,
         at ? at->file_size : (uint64_t)e->content.len, when, e->name, e->is_directory ? "/" : "");
}

static bool ls_one(void *arg, const ProtobufCMessage *m)
{
  const ls_state *st = arg;
  const FilerPb__ListEntriesResponse *r = (const FilerPb__ListEntriesResponse *)m;
  if (r->entry == NULL)
    return true;
  if (st->json)
    print_json(&r->entry->base);
  else if (st->lng)
    print_long(r->entry);
  else
    printf("%s%s\n", r->entry->name, r->entry->is_directory ? "/" : "");
  return true;
}

int fm_cmd_ls(int argc, char **argv)
{
  admin a = { .cmd = "ls", .filer = fm_tools_filer };
  bool lng = false;
  fm_flag flags[] = {
    FILER_FLAG(a),
    JSON_FLAG(a),
    { "l", FM_FLAG_BOOL, &lng, "long listing: type, mode, size, mtime", 0, 0, false },
  };
  int rc = parse_args(&a, flags, 3, argc, argv, "ls [-l] [/dir]", 0, 1);
  if (rc != 0)
    return finish(&a, rc);
  char err[FM_ERR_LEN], *dir = NULL;
  const char *path = a.npos > 0 ? a.pos[0] : "/";
  if (fm_path_check_dir(path, strlen(path), "dir", &dir, err, sizeof err) != 0) {
    fprintf(stderr, "filermeta ls: %s\n", err);
    return finish(&a, 2);
  }
  FilerPb__ListEntriesRequest req = FILER_PB__LIST_ENTRIES_REQUEST__INIT;
  req.directory = dir;
  ls_state st = { a.json, lng };
  if (fm_rpc_client_stream(a.client, "/filer_pb.SeaweedFiler/ListEntries", &req.base,
                           &filer_pb__list_entries_response__descriptor, CALL_TIMEOUT_MS, ls_one, &st, NULL, err,
                           sizeof err) != 0) {
    fprintf(stderr, "filermeta ls: %s\n", err);
    rc = 1;
  }
  free(dir);
  return finish(&a, rc);
}

/* ---------------------------------------------------------------- stat */

int fm_cmd_stat(int argc, char **argv)
{
  admin a = { .cmd = "stat", .filer = fm_tools_filer };
  fm_flag flags[] = { FILER_FLAG(a), JSON_FLAG(a) };
  int rc = parse_args(&a, flags, 2, argc, argv, "stat /path", 1, 1);
  if (rc != 0)
    return finish(&a, rc);
  char *dir = NULL, *name = NULL;
  if ((rc = split_path(&a, a.pos[0], &dir, &name)) != 0)
    return finish(&a, rc);
  FilerPb__LookupDirectoryEntryRequest req = FILER_PB__LOOKUP_DIRECTORY_ENTRY_REQUEST__INIT;
  req.directory = dir;
  req.name = name;
  ProtobufCMessage *resp = NULL;
  rc = unary(&a, "LookupDirectoryEntry", &req.base, &filer_pb__lookup_directory_entry_response__descriptor, &resp);
  if (rc == 0) {
    const FilerPb__LookupDirectoryEntryResponse *r = (const FilerPb__LookupDirectoryEntryResponse *)resp;
    if (a.json) {
      print_json(resp);
    } else if (r->entry != NULL) {
      const FilerPb__Entry *e = r->entry;
      const FilerPb__FuseAttributes *at = e->attributes;
      printf("path: %s\ntype: %s\nsize: %" PRIu64 "\nmode: %04o\nuid: %u\ngid: %u\nmtime: %" PRId64
             "\nchunks: %zu\nextended: %zu\n",
             a.pos[0], e->is_directory ? "directory" : "file", at ? at->file_size : (uint64_t)e->content.len,
             at ? at->file_mode & 07777 : 0, at ? at->uid : 0, at ? at->gid : 0, at ? at->mtime : 0, e->n_chunks,
             e->n_extended);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  free(dir);
  free(name);
  return finish(&a, rc);
}

/* ---------------------------------------------------------------- rm */

int fm_cmd_rm(int argc, char **argv)
{
  admin a = { .cmd = "rm", .filer = fm_tools_filer };
  bool recursive = false;
  fm_flag flags[] = {
    FILER_FLAG(a),
    JSON_FLAG(a),
    { "r", FM_FLAG_BOOL, &recursive, "delete a directory and everything under it", 0, 0, false },
  };
  int rc = parse_args(&a, flags, 3, argc, argv, "rm [-r] /path", 1, 1);
  if (rc != 0)
    return finish(&a, rc);
  char *dir = NULL, *name = NULL;
  if ((rc = split_path(&a, a.pos[0], &dir, &name)) != 0)
    return finish(&a, rc);
  FilerPb__DeleteEntryRequest req = FILER_PB__DELETE_ENTRY_REQUEST__INIT;
  req.directory = dir;
  req.name = name;
  req.is_recursive = recursive;
  req.is_delete_data = true;
  ProtobufCMessage *resp = NULL;
  rc = unary(&a, "DeleteEntry", &req.base, &filer_pb__delete_entry_response__descriptor, &resp);
  if (rc == 0) {
    const FilerPb__DeleteEntryResponse *r = (const FilerPb__DeleteEntryResponse *)resp;
    if (a.json)
      print_json(resp);
    if (r->error[0] != '\0') {
      fprintf(stderr, "filermeta rm: %s\n", r->error);
      rc = 1;
    } else if (!a.json) {
      printf(r->metadata_event != NULL ? "deleted %s\n" : "%s: nothing to delete\n", a.pos[0]);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  free(dir);
  free(name);
  return finish(&a, rc);
}

/* ---------------------------------------------------------------- mv */

int fm_cmd_mv(int argc, char **argv)
{
  admin a = { .cmd = "mv", .filer = fm_tools_filer };
  fm_flag flags[] = { FILER_FLAG(a), JSON_FLAG(a) };
  int rc = parse_args(&a, flags, 2, argc, argv, "mv /from /to", 2, 2);
  if (rc != 0)
    return finish(&a, rc);
  char *od = NULL, *on = NULL, *nd = NULL, *nn = NULL;
  if ((rc = split_path(&a, a.pos[0], &od, &on)) == 0 && (rc = split_path(&a, a.pos[1], &nd, &nn)) == 0) {
    FilerPb__AtomicRenameEntryRequest req = FILER_PB__ATOMIC_RENAME_ENTRY_REQUEST__INIT;
    req.old_directory = od;
    req.old_name = on;
    req.new_directory = nd;
    req.new_name = nn;
    ProtobufCMessage *resp = NULL;
    rc = unary(&a, "AtomicRenameEntry", &req.base, &filer_pb__atomic_rename_entry_response__descriptor, &resp);
    if (rc == 0) {
      if (a.json)
        print_json(resp);
      else
        printf("moved %s to %s\n", a.pos[0], a.pos[1]);
      protobuf_c_message_free_unpacked(resp, NULL);
    }
  }
  free(od);
  free(on);
  free(nd);
  free(nn);
  return finish(&a, rc);
}

/* ---------------------------------------------------------------- kv */

int fm_cmd_kv(int argc, char **argv)
{
  admin a = { .cmd = "kv", .filer = fm_tools_filer };
  fm_flag flags[] = { FILER_FLAG(a), JSON_FLAG(a) };
  int rc = parse_args(&a, flags, 2, argc, argv, "kv get KEY | kv put KEY VALUE (an empty VALUE deletes)", 2, 3);
  if (rc != 0)
    return finish(&a, rc);
  const char *op = a.pos[0], *key = a.pos[1];
  ProtobufCMessage *resp = NULL;
  if (strcmp(op, "get") == 0 && a.npos == 2) {
    FilerPb__KvGetRequest req = FILER_PB__KV_GET_REQUEST__INIT;
    req.key.data = (uint8_t *)(uintptr_t)key;
    req.key.len = strlen(key);
    rc = unary(&a, "KvGet", &req.base, &filer_pb__kv_get_response__descriptor, &resp);
    if (rc == 0) {
      const FilerPb__KvGetResponse *r = (const FilerPb__KvGetResponse *)resp;
      if (r->error[0] != '\0') {
        fprintf(stderr, "filermeta kv: %s\n", r->error);
        rc = 1;
      } else if (a.json) {
        print_json(resp);
      } else if (r->value.len > 0) { /* an absent value has data NULL, which fwrite must not get */
        fwrite(r->value.data, 1, r->value.len, stdout);
        putchar('\n');
      }
    }
  } else if (strcmp(op, "put") == 0 && a.npos == 3) {
    FilerPb__KvPutRequest req = FILER_PB__KV_PUT_REQUEST__INIT;
    req.key.data = (uint8_t *)(uintptr_t)key;
    req.key.len = strlen(key);
    req.value.data = (uint8_t *)(uintptr_t)a.pos[2];
    req.value.len = strlen(a.pos[2]);
    rc = unary(&a, "KvPut", &req.base, &filer_pb__kv_put_response__descriptor, &resp);
    if (rc == 0) {
      const FilerPb__KvPutResponse *r = (const FilerPb__KvPutResponse *)resp;
      if (r->error[0] != '\0') {
        fprintf(stderr, "filermeta kv: %s\n", r->error);
        rc = 1;
      } else if (a.json) {
        print_json(resp);
      }
    }
  } else {
    fprintf(stderr, "filermeta kv: usage: filermeta kv get KEY | kv put KEY VALUE\n");
    rc = 2;
  }
  if (resp != NULL)
    protobuf_c_message_free_unpacked(resp, NULL);
  return finish(&a, rc);
}
