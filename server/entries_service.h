/* SeaweedFiler's entry and KV methods (CreateEntry, UpdateEntry, DeleteEntry,
 * AtomicRenameEntry, LookupDirectoryEntry, ListEntries, TraverseBfsMetadata,
 * KvGet, KvPut). Registered by main.c; handlers run on CQ threads and
 * mutations complete on the filer's committer thread. */
#ifndef FM_ENTRIES_SERVICE_H
#define FM_ENTRIES_SERVICE_H

#include "filer_service.h"
#include "rpc_methods.h"

/* Adds the methods to `t`; `svc` (with svc->filer set) must outlive the server. */
int fm_entries_service_register(fm_rpc_methods *t, fm_filer_service *svc);

#endif
