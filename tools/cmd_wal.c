/* filermeta wal: prints the event write-ahead records of a stopped filer's
 * store, offline (LevelDB admits one process, so the server must be stopped).
 * For people checking what a filer recorded, and for the durability tests. */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"
#include "flags.h"
#include "pb_json.h"
#include "store.h"
#include "tools.h"

typedef struct dump {
  bool json;
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
    fprintf(stderr, "filermeta wal: record %" PRId64 " does not decode (%zu bytes)\n", ts_ns, len);
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

int fm_cmd_wal(int argc, char **argv)
{
  const char *dir = "./data";
  int64_t since = 0;
  bool json = false;
  fm_flag flags[] = {
    { "dir", FM_FLAG_STRING, &dir, "data directory of a stopped filermetad", 0, 0, false },
    { "since", FM_FLAG_INT, &since, "only records with ts_ns greater than this", 0, INT64_MAX, false },
    { "json", FM_FLAG_BOOL, &json, "one JSON object per line: {\"tsNs\": ..., \"event\": {...}}", 0, 0, false },
  };
  char err[FM_ERR_LEN];
  int first = 0;
  int rc = fm_flags_parse(flags, 3, argc, argv, &first, err, sizeof err);
  if (rc == FM_FLAGS_HELP) {
    printf("Usage: filermeta wal [flags]\n\nPrints the event write-ahead records of a stopped filer.\n\nFlags:\n");
    fm_flags_usage(stdout, flags, 3);
    return 0;
  }
  if (rc != 0 || first < argc) {
    fprintf(stderr, "filermeta wal: %s\n", rc != 0 ? err : "unexpected argument");
    return 2;
  }
  fm_store *store = NULL;
  fm_store_options opt = { 0 };
  if (fm_store_open(dir, &opt, &store, err, sizeof err) != 0) {
    fprintf(stderr, "filermeta wal: %s\n", err);
    return 1;
  }
  dump d = { json, 0, 0 };
  rc = fm_store_events(store, since, print_record, &d, err, sizeof err);
  fm_store_free(store);
  if (rc != 0 || d.rc != 0) {
    fprintf(stderr, "filermeta wal: %s\n", rc != 0 ? err : fm_strerror(d.rc));
    return 1;
  }
  fflush(stdout);
  if (!json)
    fprintf(stderr, "%" PRIu64 " records\n", d.count);
  return 0;
}
