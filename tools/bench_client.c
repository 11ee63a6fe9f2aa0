/* The calls several bench workloads make (tools_internal.h): one CreateEntry, and the catch-up consumer that `bench
 * catchup` and `bench raw` read a stream with. */
#include <inttypes.h>
#include <stdio.h>

#include "clock.h"
#include "error.h"
#include "fpath.h"
#include "tools_internal.h"

int fm_bench_create_entry(fm_rpc_client *c, const char *dir, const char *name, bool is_dir, int64_t size, char *err,
                          size_t errlen)
{
  static const uint8_t filler[4096];
  int64_t now = fm_now_ns();
  FilerPb__FuseAttributes attr = FILER_PB__FUSE_ATTRIBUTES__INIT;
  attr.file_mode = is_dir ? FM_MODE_DIR | 0755 : 0644;
  attr.mtime = attr.crtime = now / 1000000000;
  attr.mtime_ns = (int32_t)(now % 1000000000);
  attr.uid = attr.gid = 1000;
  attr.mime = (char *)(uintptr_t) "application/octet-stream";
  attr.file_size = is_dir ? 0 : (uint64_t)size;
  FilerPb__Entry e = FILER_PB__ENTRY__INIT;
  e.name = (char *)(uintptr_t)name;
  e.is_directory = is_dir;
  e.attributes = &attr;
  if (!is_dir) {
    e.content.data = (uint8_t *)(uintptr_t)filler;
    e.content.len = (size_t)(size < (int64_t)sizeof filler ? size : (int64_t)sizeof filler);
  }
  FilerPb__CreateEntryRequest req = FILER_PB__CREATE_ENTRY_REQUEST__INIT;
  req.directory = (char *)(uintptr_t)dir;
  req.entry = &e;
  ProtobufCMessage *reply = NULL;
  int rc = fm_rpc_client_unary(c, "/filer_pb.SeaweedFiler/CreateEntry", &req.base,
                               &filer_pb__create_entry_response__descriptor, 30000, &reply, NULL, err, errlen);
  if (rc != 0)
    return rc;
  const FilerPb__CreateEntryResponse *r = (const FilerPb__CreateEntryResponse *)reply;
  if (r->error[0] != '\0') {
    snprintf(err, errlen, "CreateEntry %s/%s: %s", dir, name, r->error);
    rc = FM_EIO;
  }
  protobuf_c_message_free_unpacked(reply, NULL);
  return rc;
}

/* One leaf event of a response: a marker (present but empty notification) or an event, whose ts must grow. */
static void catchup_event(fm_bench_catchup *c, const FilerPb__SubscribeMetadataResponse *e)
{
  if (e->event_notification == NULL)
    return;
  if (e->event_notification->old_entry == NULL && e->event_notification->new_entry == NULL) {
    c->markers++;
    return;
  }
  if (e->ts_ns <= c->last_ts)
    c->out_of_order = true;
  c->last_ts = e->ts_ns;
  c->events++;
}

bool fm_bench_catchup_response(void *arg, const ProtobufCMessage *msg)
{
  fm_bench_catchup *c = arg;
  const FilerPb__SubscribeMetadataResponse *r = (const FilerPb__SubscribeMetadataResponse *)msg;
  c->messages++;
  catchup_event(c, r);
  for (size_t i = 0; i < r->n_events; i++)
    catchup_event(c, r->events[i]);
  return true;
}
