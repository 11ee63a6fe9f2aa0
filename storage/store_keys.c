/* The filer store's key encoding (layout in storage_internal.h). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "storage_internal.h"

static int key_reserve(fm_key *k, size_t len)
{
  k->len = len;
  if (len <= sizeof k->inline_buf) {
    k->data = k->inline_buf;
    return 0;
  }
  k->data = malloc(len);
  return k->data != NULL ? 0 : FM_ENOMEM;
}

void fm_store__key_free(fm_key *k)
{
  if (k->data != NULL && k->data != k->inline_buf)
    free(k->data);
  k->data = NULL;
}

int fm_store__key_entry(fm_key *k, const char *dir, const char *name)
{
  size_t dl = strlen(dir), nl = strlen(name);
  if (key_reserve(k, 1 + dl + 1 + nl) != 0)
    return FM_ENOMEM;
  k->data[0] = FM_KEY_ENTRY;
  memcpy(k->data + 1, dir, dl);
  k->data[1 + dl] = '\0';
  memcpy(k->data + 2 + dl, name, nl);
  return 0;
}

int fm_store__key_kv(fm_key *k, const void *key, size_t klen)
{
  if (key_reserve(k, 1 + klen) != 0)
    return FM_ENOMEM;
  k->data[0] = FM_KEY_KV;
  if (klen > 0)
    memcpy(k->data + 1, key, klen);
  return 0;
}

int fm_store__key_event(fm_key *k, int64_t ts_ns)
{
  key_reserve(k, 9);
  k->data[0] = FM_KEY_EVENT;
  fm_storage__put_be64((uint8_t *)k->data + 1, (uint64_t)ts_ns);
  return 0;
}

int fm_store__key_event_ts(const char *key, size_t len, int64_t *ts_ns)
{
  if (len != 9 || key[0] != FM_KEY_EVENT)
    return FM_EDECODE;
  *ts_ns = (int64_t)fm_storage__get_be64((const uint8_t *)key + 1);
  return 0;
}
