/* AssignVolume and LookupVolume: fids from the chunk store, locations that
 * name this filer's HTTP side. */
#include "volume_service.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fid.h"
#include "filer.pb-c.h"
#include "log.h"
#include "rpc_server.h"

static void fill_location(const fm_volume_service *svc, FilerPb__Location *loc)
{
  loc->url = (char *)(uintptr_t)svc->url;
  loc->public_url = (char *)(uintptr_t)svc->url;
  loc->grpc_port = svc->grpc_port;
}

/* ---------------------------------------------------------------- AssignVolume */

/*
 * One fresh fid per call: the response's count is always 1, whatever the
 * request asks for (upstream's master may reserve count consecutive keys
 * behind one fid; a client that asked for more simply assigns again).
 * As upstream's filer, a failure to assign is reported in-band, in `error`
 * ("assign volume: ...") with status OK. collection and replication are
 * echoed; ttl_sec, data_center, rack, disk_type and data_node place nothing
 * here (one store, one node, no TTL volumes).
 */
static void on_assign(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  const FilerPb__AssignVolumeRequest *req = (const FilerPb__AssignVolumeRequest *)msg;
  const fm_volume_service *svc = fm_rpc_call_ctx(call);
  if (req->count < 0) {
    fm_rpc_call_finishf(call, GRPC_STATUS_INVALID_ARGUMENT, "count: %" PRId32 " is negative", req->count);
    return;
  }
  FilerPb__AssignVolumeResponse resp = FILER_PB__ASSIGN_VOLUME_RESPONSE__INIT;
  FilerPb__Location loc = FILER_PB__LOCATION__INIT;
  char fid_text[FM_FID_MAX], error[FM_ERR_LEN];
  fm_fid fid;
  int rc = fm_chunk_store_assign(svc->chunks, &fid);
  if (rc == 0)
    rc = fm_fid_format(&fid, fid_text, sizeof fid_text);
  if (rc != 0) {
    fm_log_error("AssignVolume: cannot assign a fid: %s", fm_strerror(rc));
    snprintf(error, sizeof error, "assign volume: %s", fm_strerror(rc));
    resp.error = error;
    fm_rpc_call_reply(call, &resp.base);
    return;
  }
  fill_location(svc, &loc);
  resp.file_id = fid_text;
  resp.count = 1;
  resp.location = &loc;
  resp.collection = req->collection;
  resp.replication = req->replication;
  fm_rpc_call_reply(call, &resp.base);
}

/* ---------------------------------------------------------------- LookupVolume */

/* Parses a volume id as upstream does (strconv.ParseUint(s, 10, 32)): one or
 * more decimal digits, leading zeros allowed, at most UINT32_MAX. */
static bool parse_volume_id(const char *s, uint32_t *out)
{
  uint64_t v = 0;
  if (s[0] == '\0')
    return false;
  for (const char *p = s; *p != '\0'; p++) {
    if (*p < '0' || *p > '9')
      return false;
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > UINT32_MAX)
      return false;
  }
  *out = (uint32_t)v;
  return true;
}

static int cmp_str_ptr(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Every requested id must be a decimal volume id, else INVALID_ARGUMENT naming
 * it (upstream fails the call too, "invalid volume id ..."). A volume this
 * filer holds maps to one Location, this filer. An unknown volume maps to an
 * empty Locations: SeaweedFS's Go FilerClient reads "an entry without
 * locations and no gRPC error" as "volume not found", while it counts a call
 * that fails as a failure of the filer itself (its circuit breaker then skips
 * the filer). Locations has no field for a message; the lookup is logged.
 * Each distinct id string appears once in the map, spelled as requested
 * ("007" stays "007").
 */
static void on_lookup(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  const FilerPb__LookupVolumeRequest *req = (const FilerPb__LookupVolumeRequest *)msg;
  const fm_volume_service *svc = fm_rpc_call_ctx(call);
  size_t n = req->n_volume_ids;
  for (size_t i = 0; i < n; i++) {
    uint32_t id;
    if (!parse_volume_id(req->volume_ids[i], &id)) {
      fm_rpc_call_finishf(call, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid volume id \"%.64s\": not a decimal number in 0..4294967295", req->volume_ids[i]);
      return;
    }
  }
  char **ids = NULL;
  FilerPb__LookupVolumeResponse__LocationsMapEntry *entries = NULL, **entry_ptrs = NULL;
  if (n > 0) {
    ids = malloc(n * sizeof *ids);
    entries = malloc(n * sizeof *entries);
    entry_ptrs = malloc(n * sizeof *entry_ptrs);
    if (ids == NULL || entries == NULL || entry_ptrs == NULL) {
      fm_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    memcpy(ids, req->volume_ids, n * sizeof *ids);
    qsort(ids, n, sizeof *ids, cmp_str_ptr);
  }

  FilerPb__Location loc = FILER_PB__LOCATION__INIT;
  FilerPb__Location *locp = &loc;
  FilerPb__Locations locs = FILER_PB__LOCATIONS__INIT;
  fill_location(svc, &loc);
  locs.n_locations = 1;
  locs.locations = &locp;
  FilerPb__Locations none = FILER_PB__LOCATIONS__INIT;
  FilerPb__LookupVolumeResponse resp = FILER_PB__LOOKUP_VOLUME_RESPONSE__INIT;
  resp.locations_map = entry_ptrs;
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && strcmp(ids[i], ids[i - 1]) == 0)
      continue;
    uint32_t id = 0;
    parse_volume_id(ids[i], &id);
    bool known = fm_chunk_store_has_volume(svc->chunks, id);
    if (!known)
      fm_log_debug("LookupVolume: volume %s not found", ids[i]);
    FilerPb__LookupVolumeResponse__LocationsMapEntry e = FILER_PB__LOOKUP_VOLUME_RESPONSE__LOCATIONS_MAP_ENTRY__INIT;
    e.key = ids[i];
    e.value = known ? &locs : &none;
    entries[resp.n_locations_map] = e;
    entry_ptrs[resp.n_locations_map] = &entries[resp.n_locations_map];
    resp.n_locations_map++;
  }
  fm_rpc_call_reply(call, &resp.base);
out:
  free(ids);
  free(entries);
  free(entry_ptrs);
}

/* ---------------------------------------------------------------- table */

#define UNARY(name, req, fn)                                                                                           \
  {                                                                                                                    \
    .path = "/filer_pb.SeaweedFiler/" name, .kind = FM_RPC_UNARY, .request = &req, .on_request = fn,                   \
  }

static fm_rpc_method methods[] = {
  UNARY("AssignVolume", filer_pb__assign_volume_request__descriptor, on_assign),
  UNARY("LookupVolume", filer_pb__lookup_volume_request__descriptor, on_lookup),
};

int fm_volume_service_register(fm_rpc_methods *t, fm_volume_service *svc)
{
  return fm_rpc_methods_add_all(t, methods, sizeof methods / sizeof methods[0], svc);
}
