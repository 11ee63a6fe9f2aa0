/* filermeta log: prints every event a stopped filer has persisted, offline
 * (LevelDB admits one process, so the server must be stopped): the records of
 * its per-minute log files, then the write-ahead records no log file holds yet
 * (left by a crash). For people checking what a filer recorded, and for the
 * durability tests. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chunk_store.h"
#include "error.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "log_file.h"
#include "log_scan.h"
#include "pb_json.h"
#include "store.h"
#include "tools.h"

typedef struct dump {
  bool json;
  const char *in; /* where the records come from: a log file's path, or "write-ahead" */
  int64_t offset; /* the record's LogEntry.offset; -1 for a write-ahead record */
  uint64_t count;
  int rc;
} dump;

/* The client's classification (SeaweedFS filer_pb_helper): both entries with
 * the same name in the same directory is an update, otherwise a rename. */
static const char *kind_of(const FilerPb__SubscribeMetadataResponse *ev)
{
  const FilerPb__EventNotification *en = ev->event_notification;
  if (en == NULL || (en->old_entry == NULL && en->new_entry == NULL))
    return "marker";
  if (en->old_entry == NULL)
    return "create";
  if (en->new_entry == NULL)
    return "delete";
  bool same_dir = en->new_parent_path[0] == '\0' || strcmp(en->new_parent_path, ev->directory) == 0;
  return same_dir && strcmp(en->old_entry->name, en->new_entry->name) == 0 ? "update" : "rename";
}

static void print_path(const char *dir, const char *name)
{
  printf("%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
}

static bool print_record(void *arg, int64_t ts_ns, const void *event, size_t len)
{
  dump *d = arg;
  FilerPb__SubscribeMetadataResponse *ev = filer_pb__subscribe_metadata_response__unpack(NULL, len, event);
  if (ev == NULL) {
    fprintf(stderr, "filermeta log: record %" PRId64 " in %s does not decode (%zu bytes)\n", ts_ns, d->in, len);
    d->rc = FM_EDECODE;
    return false;
  }
  d->count++;
  if (d->json) {
    json_object *line = json_object_new_object();
    char ts[32];
    snprintf(ts, sizeof ts, "%" PRId64, ts_ns);
    json_object_object_add(line, "tsNs", json_object_new_string(ts));
    json_object *evj = fm_pb_json_object(&ev->base);
    if (line == NULL || evj == NULL) {
      json_object_put(line);
      json_object_put(evj);
      filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);
      d->rc = FM_ENOMEM;
      return false;
    }
    json_object_object_add(line, "event", evj);
    json_object_object_add(line, "in", json_object_new_string(d->in));
    if (d->offset >= 0)
      json_object_object_add(line, "offset", json_object_new_int64(d->offset));
    puts(json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(line);
  } else {
    const FilerPb__EventNotification *en = ev->event_notification;
    const char *kind = kind_of(ev);
    printf("%" PRId64 " %-7s ", ts_ns, kind);
    const FilerPb__Entry *e = en == NULL ? NULL : en->old_entry != NULL ? en->old_entry : en->new_entry;
    print_path(ev->directory, e != NULL ? e->name : "");
    if (strcmp(kind, "rename") == 0) {
      printf(" -> ");
      print_path(en->new_parent_path, en->new_entry->name);
    }
    putchar('\n');
  }
  filer_pb__subscribe_metadata_response__free_unpacked(ev, NULL);
  return true;
}

/* The log files' records with ts > since, in ts order. Returns the ts of the last one (or since) in *last. */
static int dump_log_files(fm_store *store, const char *dir, int64_t since, dump *d, int64_t *last)
{
  char path[4096], err[FM_ERR_LEN] = "";
  *last = since;
  if (snprintf(path, sizeof path, "%s/volumes", dir) >= (int)sizeof path) {
    fprintf(stderr, "filermeta log: -dir too long\n");
    return 1;
  }
  struct stat sb;
  if (stat(path, &sb) != 0 && errno == ENOENT)
    return 0; /* a data dir from before the chunk store: write-ahead records only */
  fm_chunk_store *chunks = NULL;
  if (fm_chunk_store_open(path, 0, NULL, &chunks, err, sizeof err) != 0) {
    fprintf(stderr, "filermeta log: %s\n", err);
    return 1;
  }
  fm_log_scan *scan = NULL;
  fm_log_record rec;
  int rc = fm_log_scan_open(store, chunks, since, 0, NULL, &scan, err, sizeof err);
  while (rc == 0 && (rc = fm_log_scan_next(scan, &rec, err, sizeof err)) == 0) {
    d->in = fm_log_scan_file(scan);
    d->offset = rec.offset;
    if (!print_record(d, rec.ts_ns, rec.data, rec.data_len))
      break;
  }
  if (scan != NULL)
    *last = fm_log_scan_last_ts(scan);
  fm_log_scan_close(scan);
  fm_chunk_store_free(chunks);
  if (rc != 0 && rc != FM_ENOTFOUND) {
    fprintf(stderr, "filermeta log: %s\n", err[0] ? err : fm_strerror(rc));
    return 1;
  }
  return d->rc != 0 ? 1 : 0;
}

int fm_cmd_log(int argc, char **argv)
{
  const char *dir = "./data";
  int64_t since = 0;
  bool json = false;
  fm_flag flags[] = {
    { "dir", FM_FLAG_STRING, &dir, "data directory of a stopped filermetad", 0, 0, false },
    { "since", FM_FLAG_INT, &since, "only events with ts_ns greater than this", 0, INT64_MAX, false },
    { "json", FM_FLAG_BOOL, &json,
      "one JSON object per line: {\"tsNs\", \"event\", \"in\": log file or \"write-ahead\", \"offset\"}", 0, 0, false },
  };
  char err[FM_ERR_LEN];
  int first = 0;
  int rc = fm_flags_parse(flags, 3, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta log [flags]\n\nPrints every event a stopped filer has persisted: its log files, then the\n"
           "write-ahead records not yet in a log file.\n\nFlags:\n");
    fm_flags_usage(stdout, flags, 3);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta log: %s\n", rc != 0 ? err : "unexpected argument");
    return 2;
  }
  fm_store *store = NULL;
  fm_store_options opt = { 0 };
  if (fm_store_open(dir, &opt, &store, err, sizeof err) != 0) {
    fprintf(stderr, "filermeta log: %s\n", err);
    return 1;
  }
  dump d = { json, "", -1, 0, 0 };
  int64_t last = since;
  int status = dump_log_files(store, dir, since, &d, &last);
  if (status == 0) {
    d.in = "write-ahead";
    d.offset = -1;
    rc = fm_store_events(store, last, print_record, &d, err, sizeof err);
    if (rc != 0 || d.rc != 0) {
      fprintf(stderr, "filermeta log: %s\n", rc != 0 ? err : fm_strerror(d.rc));
      status = 1;
    }
  }
  fm_store_free(store);
  fflush(stdout);
  if (status == 0 && !json)
    fprintf(stderr, "%" PRIu64 " events\n", d.count);
  return status;
}
