/*
 * The chunk store: append-only volumes of needles (format in chunk_store.h).
 *
 * Locking: `wmu` serializes everything that appends (assign, write, delete),
 * so the fields marked "wmu" below are read and written by one thread at a
 * time. `rw` guards what readers look at (the volume table, every key map
 * and the counters): readers hold it shared while they look a needle up, then
 * pread without any lock; an appender takes it exclusively only to publish a
 * needle whose bytes are already in the file, so a reader never sees an index
 * entry before its data. File descriptors live as long as the store.
 */
#include "chunk_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "error.h"
#include "log.h"
#include "storage_internal.h"

/* ================================================================ format */

#define SUPERBLOCK_SIZE 16
#define SUPERBLOCK_MAGIC 0x464d4356u /* "FMCV" */
#define VOLUME_VERSION 1

#define NEEDLE_HEADER_SIZE 24
#define NEEDLE_MAGIC 0x464d4e44u /* "FMND" */
#define NEEDLE_ALIGN 8

#define RECORD_SIZE 32
#define RECORD_PUT 1
#define RECORD_DELETE 2
#define RECORD_RESERVE 3

/* Keys reserved per reservation record: one small .idx write per this many
 * assigns, and at most this many keys skipped after a restart. */
#define KEY_RESERVE_BATCH 1024

typedef struct record {
  uint64_t key;
  uint64_t offset;
  uint32_t size;
  uint32_t cookie;
  uint8_t type;
} record;

static uint32_t crc(const void *data, size_t len)
{
  return (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), data, len);
}

/* Bytes a needle of `size` data bytes takes in .dat, padding included. */
static uint64_t needle_span(uint64_t size)
{
  return (NEEDLE_HEADER_SIZE + size + NEEDLE_ALIGN - 1) / NEEDLE_ALIGN * NEEDLE_ALIGN;
}

static void encode_needle_header(uint8_t *h, uint64_t key, uint32_t cookie, uint32_t size, uint32_t data_crc)
{
  fm_storage__put_be32(h, NEEDLE_MAGIC);
  fm_storage__put_be32(h + 4, cookie);
  fm_storage__put_be64(h + 8, key);
  fm_storage__put_be32(h + 16, size);
  fm_storage__put_be32(h + 20, data_crc);
}

/* True if header `h` is the one of needle (key, cookie, size). */
static bool needle_header_matches(const uint8_t *h, uint64_t key, uint32_t cookie, uint32_t size)
{
  return fm_storage__get_be32(h) == NEEDLE_MAGIC && fm_storage__get_be32(h + 4) == cookie &&
         fm_storage__get_be64(h + 8) == key && fm_storage__get_be32(h + 16) == size;
}

static void encode_record(uint8_t *p, const record *r)
{
  fm_storage__put_be64(p, r->key);
  fm_storage__put_be64(p + 8, r->offset);
  fm_storage__put_be32(p + 16, r->size);
  fm_storage__put_be32(p + 20, r->cookie);
  p[24] = r->type;
  p[25] = p[26] = p[27] = 0;
  fm_storage__put_be32(p + 28, crc(p, 28));
}

/* Decodes a record; false when its CRC does not match (torn or corrupt). */
static bool decode_record(const uint8_t *p, record *r)
{
  if (fm_storage__get_be32(p + 28) != crc(p, 28))
    return false;
  r->key = fm_storage__get_be64(p);
  r->offset = fm_storage__get_be64(p + 8);
  r->size = fm_storage__get_be32(p + 16);
  r->cookie = fm_storage__get_be32(p + 20);
  r->type = p[24];
  return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      return false;
  return true;
}

/* ================================================================ key map */

/* Open addressing, linear probing; capacity a power of two, at most half full. */
enum { SLOT_EMPTY = 0, SLOT_LIVE = 1, SLOT_DELETED = 2 };

typedef struct slot {
  uint64_t key;
  uint64_t offset;
  uint32_t size;
  uint32_t cookie;
  uint8_t state;
} slot;

typedef struct keymap {
  slot *slots;
  size_t cap;
  size_t used;
} keymap;

static size_t key_hash(uint64_t key, size_t cap)
{
  /* sequential keys: multiply to spread them over the table */
  return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

static slot *map_find(const keymap *m, uint64_t key)
{
  if (m->cap == 0)
    return NULL;
  for (size_t i = key_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
    slot *sl = &m->slots[i];
    if (sl->state == SLOT_EMPTY)
      return NULL;
    if (sl->key == key)
      return sl;
  }
}

/* Makes room for `n` more keys, so that as many map_insert calls cannot fail. */
static int map_reserve(keymap *m, size_t n)
{
  if ((m->used + n) * 2 <= m->cap)
    return 0;
  size_t cap = m->cap != 0 ? m->cap : 64;
  while ((m->used + n) * 2 > cap)
    cap *= 2;
  slot *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return FM_ENOMEM;
  for (size_t i = 0; i < m->cap; i++) {
    if (m->slots[i].state == SLOT_EMPTY)
      continue;
    size_t j = key_hash(m->slots[i].key, cap);
    while (slots[j].state != SLOT_EMPTY)
      j = (j + 1) & (cap - 1);
    slots[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

/* Inserts a key known to be absent, with room reserved by map_reserve. */
static void map_insert(keymap *m, const slot *in)
{
  size_t i = key_hash(in->key, m->cap);
  while (m->slots[i].state != SLOT_EMPTY)
    i = (i + 1) & (m->cap - 1);
  m->slots[i] = *in;
  m->used++;
}

static void map_clear(keymap *m)
{
  free(m->slots);
  m->slots = NULL;
  m->cap = m->used = 0;
}

/* ================================================================ store */

typedef struct volume {
  uint32_t id;
  int dat;
  int idx;
  uint64_t dat_size; /* end of the last complete needle; written under wmu and rw */
  uint64_t idx_size; /* wmu */
  uint64_t next_key; /* lowest key never written nor handed out; wmu */
  uint64_t reserved; /* keys below it may have been handed out; wmu */
  keymap map;        /* rw */
  uint64_t needles;  /* live; rw */
  uint64_t deleted;  /* rw */
  uint64_t live_bytes;
} volume;

struct fm_chunk_store {
  char *dir;
  int lock_fd;
  uint64_t volume_bytes;
  bool sync;
  pthread_mutex_t wmu;
  pthread_rwlock_t rw;
  volume **vols; /* sorted by id; rw (changed under wmu too) */
  size_t nvols;
  size_t cap;
  uint64_t repaired;
};

static int errno_to_fm(int e)
{
  switch (e) {
  case EACCES:
  case EPERM:
  case EROFS:
    return FM_EPERM;
  case ENOMEM:
    return FM_ENOMEM;
  default:
    return FM_EIO;
  }
}

static void volume_path(const fm_chunk_store *s, uint32_t id, const char *ext, char *buf, size_t len)
{
  snprintf(buf, len, "%s/%" PRIu32 ".%s", s->dir, id, ext);
}

/* Binary search in the sorted table. Holds rw (either mode) or wmu. */
static volume *find_volume(const fm_chunk_store *s, uint32_t id)
{
  size_t lo = 0, hi = s->nvols;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->vols[mid]->id == id)
      return s->vols[mid];
    if (s->vols[mid]->id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

static void volume_free(volume *v)
{
  if (v == NULL)
    return;
  if (v->dat >= 0)
    close(v->dat);
  if (v->idx >= 0)
    close(v->idx);
  map_clear(&v->map);
  free(v);
}

static volume *volume_new(uint32_t id)
{
  volume *v = calloc(1, sizeof *v);
  if (v == NULL)
    return NULL;
  v->id = id;
  v->dat = v->idx = -1;
  v->next_key = 1; /* SeaweedFS never uses key 0 (NeedleIdEmpty) */
  return v;
}

/* ================================================================ file I/O */

/* Writes all of iov[0..n) at `off`, resuming after short writes. Changes iov. */
static int pwritev_all(int fd, struct iovec *iov, int n, uint64_t off)
{
  while (n > 0) {
    ssize_t w = pwritev(fd, iov, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    off += (uint64_t)w;
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

/* Reads all of iov[0..n) at `off`. Returns 0, or -1 with errno (0 at end of file). */
static int preadv_all(int fd, struct iovec *iov, int n, uint64_t off)
{
  while (n > 0) {
    ssize_t r = preadv(fd, iov, n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      errno = 0;
      return -1;
    }
    off += (uint64_t)r;
    while (n > 0 && (size_t)r >= iov->iov_len) {
      r -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + r;
      iov->iov_len -= (size_t)r;
    }
  }
  return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
  struct iovec iov = { buf, len };
  return preadv_all(fd, &iov, 1, off);
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
  struct iovec iov = { (void *)buf, len };
  return pwritev_all(fd, &iov, 1, off);
}

static int fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* Appends one index record; with sync, makes it durable. Holds wmu. On
 * failure the .idx is cut back to where it was. */
static int append_record(fm_chunk_store *s, volume *v, const record *r, char *err, size_t errlen)
{
  uint8_t buf[RECORD_SIZE];
  encode_record(buf, r);
  if (pwrite_all(v->idx, buf, sizeof buf, v->idx_size) != 0 || (s->sync && fdatasync(v->idx) != 0)) {
    int e = errno;
    char path[PATH_MAX];
    volume_path(s, v->id, "idx", path, sizeof path);
    snprintf(err, errlen, "cannot append to %s at offset %" PRIu64 ": %s", path, v->idx_size, strerror(e));
    if (ftruncate(v->idx, (off_t)v->idx_size) != 0)
      fm_log_error("chunk store: cannot cut %s back to %" PRIu64 " bytes: %s", path, v->idx_size, strerror(errno));
    return errno_to_fm(e);
  }
  pthread_rwlock_wrlock(&s->rw); /* for fm_chunk_store_stats */
  v->idx_size += RECORD_SIZE;
  pthread_rwlock_unlock(&s->rw);
  return 0;
}

/* ================================================================ open: one volume */

/* Replays records[0..n) into v's map and counters, from scratch (load_volume
 * runs it again with fewer records when the last needle turns out torn).
 * Returns 0 with *end (the end of the last needle), *cut (the number of
 * records kept: fewer than n when a put's needle extends past `dat_size`, a
 * crash during its append) and *last_put (the index of the last put kept, or
 * n if none), or FM_EDECODE/FM_ENOMEM. */
static int replay(fm_chunk_store *s, volume *v, const record *recs, size_t n, uint64_t dat_size, uint64_t *end,
                  size_t *cut, size_t *last_put, char *err, size_t errlen)
{
  char path[PATH_MAX];
  volume_path(s, v->id, "idx", path, sizeof path);
  map_clear(&v->map);
  v->needles = v->deleted = v->live_bytes = 0;
  v->next_key = 1;
  v->reserved = 0;
  uint64_t expected = SUPERBLOCK_SIZE;
  *last_put = n;
  size_t i;
  for (i = 0; i < n; i++) {
    const record *r = &recs[i];
    uint64_t at = (uint64_t)i * RECORD_SIZE;
    switch (r->type) {
    case RECORD_PUT: {
      if (r->offset != expected) {
        snprintf(err, errlen, "%s at offset %" PRIu64 ": needle offset %" PRIu64 ", expected %" PRIu64, path, at,
                 r->offset, expected);
        return FM_EDECODE;
      }
      if (r->offset + needle_span(r->size) > dat_size)
        goto done; /* the needle never reached the disk: drop it and what follows */
      if (map_find(&v->map, r->key) != NULL) {
        snprintf(err, errlen, "%s at offset %" PRIu64 ": key %" PRIx64 " written twice", path, at, r->key);
        return FM_EDECODE;
      }
      if (map_reserve(&v->map, 1) != 0)
        return FM_ENOMEM;
      slot sl = { .key = r->key, .offset = r->offset, .size = r->size, .cookie = r->cookie, .state = SLOT_LIVE };
      map_insert(&v->map, &sl);
      v->needles++;
      v->live_bytes += r->size;
      expected = r->offset + needle_span(r->size);
      if (r->key >= v->next_key)
        v->next_key = r->key == UINT64_MAX ? UINT64_MAX : r->key + 1;
      *last_put = i;
      break;
    }
    case RECORD_DELETE: {
      slot *sl = map_find(&v->map, r->key);
      if (sl == NULL || sl->state != SLOT_LIVE || sl->cookie != r->cookie) {
        snprintf(err, errlen, "%s at offset %" PRIu64 ": tombstone for key %" PRIx64 " that is not live", path, at,
                 r->key);
        return FM_EDECODE;
      }
      sl->state = SLOT_DELETED;
      v->needles--;
      v->deleted++;
      v->live_bytes -= sl->size;
      break;
    }
    case RECORD_RESERVE:
      if (r->key > v->reserved)
        v->reserved = r->key;
      break;
    default:
      snprintf(err, errlen, "%s at offset %" PRIu64 ": unknown record type %u", path, at, r->type);
      return FM_EDECODE;
    }
  }
done:
  if (v->reserved > v->next_key)
    v->next_key = v->reserved;
  *end = expected;
  *cut = i;
  return 0;
}

/* Reads, checks and (at the tail only) repairs volume `id`, whose .dat is open
 * as v->dat. Returns 0, FM_EDECODE, FM_EIO or FM_ENOMEM. */
static int load_volume(fm_chunk_store *s, volume *v, char *err, size_t errlen)
{
  char dat_path[PATH_MAX], idx_path[PATH_MAX];
  volume_path(s, v->id, "dat", dat_path, sizeof dat_path);
  volume_path(s, v->id, "idx", idx_path, sizeof idx_path);
  struct stat st;
  if (fstat(v->dat, &st) != 0) {
    snprintf(err, errlen, "cannot stat %s: %s", dat_path, strerror(errno));
    return FM_EIO;
  }
  uint64_t dat_size = (uint64_t)st.st_size;

  v->idx = open(idx_path, O_RDWR | O_CLOEXEC);
  bool repaired = false;
  if (v->idx < 0 && errno == ENOENT && dat_size <= SUPERBLOCK_SIZE) {
    /* a crash while creating the volume: .dat is made first */
    v->idx = open(idx_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    repaired = true;
  }
  if (v->idx < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot open %s: %s", idx_path, strerror(e));
    return e == ENOENT ? FM_EDECODE : errno_to_fm(e);
  }
  if (fstat(v->idx, &st) != 0) {
    snprintf(err, errlen, "cannot stat %s: %s", idx_path, strerror(errno));
    return FM_EIO;
  }
  uint64_t idx_size = (uint64_t)st.st_size;

  /* the superblock */
  uint8_t sb[SUPERBLOCK_SIZE];
  if (dat_size < SUPERBLOCK_SIZE) {
    if (idx_size >= RECORD_SIZE) {
      snprintf(err, errlen, "%s at offset 0: superblock truncated (%" PRIu64 " bytes) but the index has records",
               dat_path, dat_size);
      return FM_EDECODE;
    }
    fm_storage__put_be32(sb, SUPERBLOCK_MAGIC);
    fm_storage__put_be32(sb + 4, VOLUME_VERSION);
    fm_storage__put_be32(sb + 8, v->id);
    fm_storage__put_be32(sb + 12, 0);
    if (pwrite_all(v->dat, sb, sizeof sb, 0) != 0 || ftruncate(v->dat, SUPERBLOCK_SIZE) != 0) {
      snprintf(err, errlen, "cannot write %s: %s", dat_path, strerror(errno));
      return FM_EIO;
    }
    fm_log_warn("chunk store: %s: rewrote the superblock of a volume whose creation did not finish", dat_path);
    dat_size = SUPERBLOCK_SIZE;
    repaired = true;
  } else {
    if (pread_all(v->dat, sb, sizeof sb, 0) != 0) {
      snprintf(err, errlen, "cannot read %s: %s", dat_path, strerror(errno));
      return FM_EIO;
    }
    if (fm_storage__get_be32(sb) != SUPERBLOCK_MAGIC || fm_storage__get_be32(sb + 4) != VOLUME_VERSION ||
        fm_storage__get_be32(sb + 8) != v->id) {
      snprintf(err, errlen, "%s at offset 0: not a version %d superblock of volume %" PRIu32, dat_path, VOLUME_VERSION,
               v->id);
      return FM_EDECODE;
    }
  }

  /* the index records, with a torn tail cut off */
  size_t n = (size_t)(idx_size / RECORD_SIZE);
  uint8_t *raw = malloc(n > 0 ? n * RECORD_SIZE : 1);
  record *recs = malloc(n > 0 ? n * sizeof *recs : 1);
  int rc = FM_ENOMEM;
  if (raw == NULL || recs == NULL)
    goto out;
  if (n > 0 && pread_all(v->idx, raw, n * RECORD_SIZE, 0) != 0) {
    snprintf(err, errlen, "cannot read %s: %s", idx_path, strerror(errno));
    rc = FM_EIO;
    goto out;
  }
  size_t good = n;
  for (size_t i = 0; i < n; i++) {
    if (decode_record(raw + i * RECORD_SIZE, &recs[i]))
      continue;
    /* a bad record is an append that did not finish only if nothing good
     * follows it (an OS crash can leave several zero-filled records) */
    for (size_t j = i + 1; j < n; j++) {
      record ignored;
      if (decode_record(raw + j * RECORD_SIZE, &ignored)) {
        snprintf(err, errlen, "%s at offset %zu: record crc mismatch", idx_path, i * (size_t)RECORD_SIZE);
        rc = FM_EDECODE;
        goto out;
      }
    }
    good = i;
    break;
  }

  uint64_t end;
  size_t kept, last_put;
  rc = replay(s, v, recs, good, dat_size, &end, &kept, &last_put, err, errlen);
  if (rc != 0)
    goto out;
  if (last_put < kept) {
    /* the last needle's header must match its record; a zero-filled one is a
     * needle whose data did not reach the disk before an OS crash */
    uint8_t h[NEEDLE_HEADER_SIZE];
    const record *r = &recs[last_put];
    if (pread_all(v->dat, h, sizeof h, r->offset) != 0) {
      snprintf(err, errlen, "cannot read %s at offset %" PRIu64 ": %s", dat_path, r->offset, strerror(errno));
      rc = FM_EIO;
      goto out;
    }
    if (!needle_header_matches(h, r->key, r->cookie, r->size)) {
      if (!all_zero(h, sizeof h)) {
        snprintf(err, errlen, "%s at offset %" PRIu64 ": needle header does not match index record %zu of %s", dat_path,
                 r->offset, last_put, idx_path);
        rc = FM_EDECODE;
        goto out;
      }
      rc = replay(s, v, recs, last_put, dat_size, &end, &kept, &last_put, err, errlen);
      if (rc != 0)
        goto out;
    }
  }

  if ((uint64_t)kept * RECORD_SIZE != idx_size) {
    fm_log_warn("chunk store: %s: dropped a torn tail of %" PRIu64 " bytes at offset %" PRIu64, idx_path,
                idx_size - (uint64_t)kept * RECORD_SIZE, (uint64_t)kept * RECORD_SIZE);
    if (ftruncate(v->idx, (off_t)kept * RECORD_SIZE) != 0) {
      snprintf(err, errlen, "cannot truncate %s: %s", idx_path, strerror(errno));
      rc = FM_EIO;
      goto out;
    }
    idx_size = (uint64_t)kept * RECORD_SIZE;
    repaired = true;
  }
  if (dat_size != end) {
    fm_log_warn("chunk store: %s: dropped %" PRIu64 " bytes at offset %" PRIu64 " of a needle whose append did not"
                " finish",
                dat_path, dat_size - end, end);
    if (ftruncate(v->dat, (off_t)end) != 0) {
      snprintf(err, errlen, "cannot truncate %s: %s", dat_path, strerror(errno));
      rc = FM_EIO;
      goto out;
    }
    repaired = true;
  }
  if (repaired && s->sync && (fsync(v->dat) != 0 || fsync(v->idx) != 0)) {
    snprintf(err, errlen, "cannot sync volume %" PRIu32 ": %s", v->id, strerror(errno));
    rc = FM_EIO;
    goto out;
  }
  v->dat_size = end;
  v->idx_size = idx_size;
  if (repaired)
    s->repaired++;
  rc = 0;
out:
  free(raw);
  free(recs);
  return rc;
}

/* ================================================================ open */

/* Parses "<id>.<ext>" with a canonical decimal id in 1..UINT32_MAX. */
static bool parse_volume_name(const char *name, const char *ext, uint32_t *id)
{
  uint64_t v = 0;
  size_t i = 0;
  if (name[0] < '1' || name[0] > '9')
    return false;
  for (; name[i] >= '0' && name[i] <= '9'; i++) {
    v = v * 10 + (uint64_t)(name[i] - '0');
    if (v > UINT32_MAX)
      return false;
  }
  if (name[i] != '.' || strcmp(name + i + 1, ext) != 0)
    return false;
  *id = (uint32_t)v;
  return true;
}

static int cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Lists the volume ids in s->dir, sorted; rejects an index without its .dat. */
static int scan_dir(fm_chunk_store *s, uint32_t **ids, size_t *nids, char *err, size_t errlen)
{
  DIR *d = opendir(s->dir);
  if (d == NULL) {
    int e = errno;
    snprintf(err, errlen, "cannot list %s: %s", s->dir, strerror(e));
    return errno_to_fm(e);
  }
  uint32_t *list = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    uint32_t id;
    if (parse_volume_name(de->d_name, "idx", &id)) {
      char path[PATH_MAX];
      volume_path(s, id, "dat", path, sizeof path);
      struct stat st;
      if (access(path, F_OK) != 0) {
        volume_path(s, id, "idx", path, sizeof path);
        if (stat(path, &st) == 0 && st.st_size > 0) {
          snprintf(err, errlen, "%s has records but its volume file is missing", path);
          rc = FM_EDECODE;
          break;
        }
      }
      continue;
    }
    if (!parse_volume_name(de->d_name, "dat", &id))
      continue;
    if (n == cap) {
      size_t ncap = cap != 0 ? cap * 2 : 16;
      uint32_t *l = realloc(list, ncap * sizeof *l);
      if (l == NULL) {
        rc = FM_ENOMEM;
        break;
      }
      list = l;
      cap = ncap;
    }
    list[n++] = id;
  }
  closedir(d);
  if (rc != 0) {
    free(list);
    return rc;
  }
  if (n > 0)
    qsort(list, n, sizeof *list, cmp_u32);
  *ids = list;
  *nids = n;
  return 0;
}

/* Appends v to the sorted table (its id is above every other). Holds wmu
 * (or is in open) and takes rw. */
static int add_volume(fm_chunk_store *s, volume *v)
{
  pthread_rwlock_wrlock(&s->rw);
  int rc = 0;
  if (s->nvols == s->cap) {
    size_t ncap = s->cap != 0 ? s->cap * 2 : 8;
    volume **t = realloc(s->vols, ncap * sizeof *t);
    if (t == NULL) {
      rc = FM_ENOMEM;
      goto out;
    }
    s->vols = t;
    s->cap = ncap;
  }
  s->vols[s->nvols++] = v;
out:
  pthread_rwlock_unlock(&s->rw);
  return rc;
}

int fm_chunk_store_open(const char *dir, uint64_t volume_bytes, const fm_chunk_store_options *opt, fm_chunk_store **out,
                        char *err, size_t errlen)
{
  if (dir == NULL || dir[0] == '\0' || strlen(dir) > PATH_MAX - 32) {
    snprintf(err, errlen, "chunk store directory path is empty or too long");
    return FM_EINVAL;
  }
  if (volume_bytes == 0)
    volume_bytes = FM_CHUNK_VOLUME_BYTES_DEFAULT;
  if (volume_bytes < SUPERBLOCK_SIZE + NEEDLE_HEADER_SIZE) {
    snprintf(err, errlen, "volume size %" PRIu64 " is too small", volume_bytes);
    return FM_EINVAL;
  }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    int e = errno;
    snprintf(err, errlen, "cannot create %s: %s", dir, strerror(e));
    return errno_to_fm(e);
  }

  fm_chunk_store *s = calloc(1, sizeof *s);
  if (s == NULL || (s->dir = strdup(dir)) == NULL) {
    free(s);
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  s->lock_fd = -1;
  s->volume_bytes = volume_bytes;
  s->sync = opt != NULL && opt->sync;
  pthread_mutex_init(&s->wmu, NULL);
  pthread_rwlock_init(&s->rw, NULL);

  uint32_t *ids = NULL;
  size_t nids = 0;
  int rc;
  /* two processes appending to the same volumes would interleave needles */
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/LOCK", dir);
  s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lock_fd < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
    rc = errno_to_fm(e);
    goto err;
  }
  if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    snprintf(err, errlen, "chunk store is locked: %s is in use (%s)", dir, strerror(e));
    rc = e == EWOULDBLOCK ? FM_EBUSY : FM_EIO;
    goto err;
  }

  rc = scan_dir(s, &ids, &nids, err, errlen);
  if (rc != 0)
    goto err;
  for (size_t i = 0; i < nids; i++) {
    volume *v = volume_new(ids[i]);
    if (v == NULL) {
      rc = FM_ENOMEM;
      goto err;
    }
    volume_path(s, ids[i], "dat", path, sizeof path);
    v->dat = open(path, O_RDWR | O_CLOEXEC);
    if (v->dat < 0) {
      int e = errno;
      snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
      volume_free(v);
      rc = errno_to_fm(e);
      goto err;
    }
    rc = load_volume(s, v, err, errlen);
    if (rc == 0)
      rc = add_volume(s, v);
    if (rc != 0) {
      if (rc == FM_ENOMEM)
        snprintf(err, errlen, "out of memory");
      volume_free(v);
      goto err;
    }
  }
  free(ids);
  *out = s;
  return 0;
err:
  free(ids);
  fm_chunk_store_free(s);
  return rc;
}

void fm_chunk_store_free(fm_chunk_store *s)
{
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->nvols; i++)
    volume_free(s->vols[i]);
  free(s->vols);
  if (s->lock_fd >= 0)
    close(s->lock_fd); /* releases the flock */
  pthread_rwlock_destroy(&s->rw);
  pthread_mutex_destroy(&s->wmu);
  free(s->dir);
  free(s);
}

/* ================================================================ assign */

/* Creates volume `id` (empty .dat with its superblock, empty .idx). Holds wmu. */
static int create_volume(fm_chunk_store *s, uint32_t id, volume **out)
{
  char dat_path[PATH_MAX], idx_path[PATH_MAX];
  volume_path(s, id, "dat", dat_path, sizeof dat_path);
  volume_path(s, id, "idx", idx_path, sizeof idx_path);
  volume *v = volume_new(id);
  if (v == NULL)
    return FM_ENOMEM;
  uint8_t sb[SUPERBLOCK_SIZE];
  fm_storage__put_be32(sb, SUPERBLOCK_MAGIC);
  fm_storage__put_be32(sb + 4, VOLUME_VERSION);
  fm_storage__put_be32(sb + 8, id);
  fm_storage__put_be32(sb + 12, 0);
  int e;
  /* .dat first: open() treats a .dat without .idx as a creation that did not finish */
  v->dat = open(dat_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (v->dat < 0) {
    e = errno;
    goto err;
  }
  if (pwrite_all(v->dat, sb, sizeof sb, 0) != 0 || (s->sync && fdatasync(v->dat) != 0) ||
      (v->idx = open(idx_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 ||
      (s->sync && fsync_dir(s->dir) != 0)) {
    e = errno;
    goto err_unlink;
  }
  v->dat_size = SUPERBLOCK_SIZE;
  if (add_volume(s, v) != 0) {
    e = ENOMEM;
    goto err_unlink;
  }
  *out = v;
  return 0;
err_unlink:
  unlink(idx_path);
  unlink(dat_path);
err:
  fm_log_error("chunk store: cannot create volume %s: %s", dat_path, strerror(e));
  volume_free(v);
  return errno_to_fm(e);
}

/* True if v takes no new fids: full, or out of keys. Holds wmu. */
static bool volume_full(const fm_chunk_store *s, const volume *v)
{
  return v->dat_size >= s->volume_bytes || v->next_key > UINT64_MAX - KEY_RESERVE_BATCH;
}

int fm_chunk_store_assign(fm_chunk_store *s, fm_fid *out)
{
  uint32_t cookie;
  if (getrandom(&cookie, sizeof cookie, 0) != (ssize_t)sizeof cookie)
    return FM_EIO;

  pthread_mutex_lock(&s->wmu);
  int rc = 0;
  volume *v = s->nvols > 0 ? s->vols[s->nvols - 1] : NULL;
  if (v == NULL || volume_full(s, v)) {
    uint32_t id = v != NULL ? v->id + 1 : 1;
    if (id == 0) {
      rc = FM_ETOOBIG; /* volume UINT32_MAX is full */
      goto out;
    }
    rc = create_volume(s, id, &v);
    if (rc != 0)
      goto out;
  }
  uint64_t key = v->next_key;
  if (key >= v->reserved) {
    /* persist the new high-water mark before handing out keys below it */
    record r = { .key = key + KEY_RESERVE_BATCH, .type = RECORD_RESERVE };
    char err[FM_ERR_LEN];
    rc = append_record(s, v, &r, err, sizeof err);
    if (rc != 0) {
      fm_log_error("chunk store: %s", err);
      goto out;
    }
    v->reserved = r.key;
  }
  v->next_key = key + 1;
  out->volume_id = v->id;
  out->key = key;
  out->cookie = cookie;
out:
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

/* ================================================================ write, delete */

int fm_chunk_store_write(fm_chunk_store *s, const fm_fid *fid, const void *data, size_t len, char *err, size_t errlen)
{
  if (len > UINT32_MAX || SUPERBLOCK_SIZE + needle_span(len) > s->volume_bytes) {
    snprintf(err, errlen, "needle of %zu bytes exceeds the volume size %" PRIu64, len, s->volume_bytes);
    return FM_ETOOBIG;
  }
  uint8_t h[NEEDLE_HEADER_SIZE];
  encode_needle_header(h, fid->key, fid->cookie, (uint32_t)len, crc(data, len));
  static const uint8_t zeros[NEEDLE_ALIGN];
  uint64_t span = needle_span(len);

  pthread_mutex_lock(&s->wmu);
  int rc;
  char path[PATH_MAX];
  volume *v = find_volume(s, fid->volume_id);
  if (v == NULL) {
    snprintf(err, errlen, "volume %" PRIu32 " does not exist", fid->volume_id);
    rc = FM_ENOTFOUND;
    goto out;
  }
  if (map_find(&v->map, fid->key) != NULL) {
    snprintf(err, errlen, "key %" PRIx64 " was already written in volume %" PRIu32, fid->key, v->id);
    rc = FM_EEXIST;
    goto out;
  }
  /* Only keys that assign handed out (or may have, before a restart: every
   * key below next_key) can be written. A key at or past next_key would be
   * handed out again by a later assign, and that writer would get FM_EEXIST
   * for a fid it was given; key 0 is never handed out. */
  if (fid->key == 0 || fid->key >= v->next_key) {
    snprintf(err, errlen, "key %" PRIx64 " was never assigned in volume %" PRIu32, fid->key, v->id);
    rc = FM_EINVAL;
    goto out;
  }
  /* room first, so that publishing after the I/O cannot fail */
  pthread_rwlock_wrlock(&s->rw);
  rc = map_reserve(&v->map, 1);
  pthread_rwlock_unlock(&s->rw);
  if (rc != 0) {
    snprintf(err, errlen, "out of memory");
    goto out;
  }

  uint64_t off = v->dat_size;
  struct iovec iov[3] = {
    { h, sizeof h },
    { (void *)data, len },
    { (void *)zeros, span - NEEDLE_HEADER_SIZE - len },
  };
  if (pwritev_all(v->dat, iov, 3, off) != 0 || (s->sync && fdatasync(v->dat) != 0)) {
    int e = errno;
    volume_path(s, v->id, "dat", path, sizeof path);
    snprintf(err, errlen, "cannot append to %s at offset %" PRIu64 ": %s", path, off, strerror(e));
    rc = errno_to_fm(e);
    goto cut_dat;
  }
  record r = { .key = fid->key, .offset = off, .size = (uint32_t)len, .cookie = fid->cookie, .type = RECORD_PUT };
  rc = append_record(s, v, &r, err, errlen);
  if (rc != 0)
    goto cut_dat;

  pthread_rwlock_wrlock(&s->rw);
  slot sl = { .key = fid->key, .offset = off, .size = (uint32_t)len, .cookie = fid->cookie, .state = SLOT_LIVE };
  map_insert(&v->map, &sl);
  v->dat_size = off + span;
  v->needles++;
  v->live_bytes += len;
  pthread_rwlock_unlock(&s->rw);
  goto out;

cut_dat:
  /* nothing of a failed write may stay: the next needle goes at `off` */
  if (ftruncate(v->dat, (off_t)off) != 0) {
    volume_path(s, v->id, "dat", path, sizeof path);
    fm_log_error("chunk store: cannot cut %s back to %" PRIu64 " bytes: %s", path, off, strerror(errno));
  }
out:
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

int fm_chunk_store_delete(fm_chunk_store *s, const fm_fid *fid)
{
  pthread_mutex_lock(&s->wmu);
  int rc = FM_ENOTFOUND;
  volume *v = find_volume(s, fid->volume_id);
  slot *sl = v != NULL ? map_find(&v->map, fid->key) : NULL;
  if (sl == NULL || sl->state != SLOT_LIVE || sl->cookie != fid->cookie)
    goto out;
  record r = { .key = sl->key, .offset = sl->offset, .size = sl->size, .cookie = sl->cookie, .type = RECORD_DELETE };
  char err[FM_ERR_LEN];
  rc = append_record(s, v, &r, err, sizeof err);
  if (rc != 0) {
    fm_log_error("chunk store: %s", err);
    goto out;
  }
  pthread_rwlock_wrlock(&s->rw);
  sl->state = SLOT_DELETED;
  v->needles--;
  v->deleted++;
  v->live_bytes -= sl->size;
  pthread_rwlock_unlock(&s->rw);
out:
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

/* ================================================================ read */

/* Copies fid's index entry and its volume's .dat descriptor into *sl and
 * *fd; false when there is no live needle with fid's key and cookie. Takes rw. */
static bool lookup_needle(fm_chunk_store *s, const fm_fid *fid, slot *sl, int *fd)
{
  pthread_rwlock_rdlock(&s->rw);
  volume *v = find_volume(s, fid->volume_id);
  const slot *found = v != NULL ? map_find(&v->map, fid->key) : NULL;
  if (found != NULL) {
    *sl = *found;
    *fd = v->dat;
  }
  pthread_rwlock_unlock(&s->rw);
  /* a wrong cookie looks exactly like a missing needle, as upstream's 404 */
  return found != NULL && sl->state == SLOT_LIVE && sl->cookie == fid->cookie;
}

int fm_chunk_store_stat(fm_chunk_store *s, const fm_fid *fid, fm_chunk_needle_info *out, char *err, size_t errlen)
{
  slot sl = { 0 };
  int fd = -1;
  if (!lookup_needle(s, fid, &sl, &fd))
    return FM_ENOTFOUND;
  char path[PATH_MAX];
  uint8_t h[NEEDLE_HEADER_SIZE];
  if (pread_all(fd, h, sizeof h, sl.offset) != 0) {
    int e = errno;
    volume_path(s, fid->volume_id, "dat", path, sizeof path);
    snprintf(err, errlen, "cannot read %s at offset %" PRIu64 ": %s", path, sl.offset,
             e != 0 ? strerror(e) : "end of file");
    return FM_EIO;
  }
  if (!needle_header_matches(h, sl.key, sl.cookie, sl.size)) {
    volume_path(s, fid->volume_id, "dat", path, sizeof path);
    snprintf(err, errlen, "needle header mismatch in %s at offset %" PRIu64, path, sl.offset);
    return FM_EDECODE;
  }
  out->size = sl.size;
  out->crc = fm_storage__get_be32(h + 20);
  return 0;
}

int fm_chunk_store_read_range(fm_chunk_store *s, const fm_fid *fid, uint64_t offset, uint64_t length, void **data,
                              size_t *len, char *err, size_t errlen)
{
  slot sl = { 0 };
  int fd = -1;
  if (!lookup_needle(s, fid, &sl, &fd))
    return FM_ENOTFOUND;
  if (offset > sl.size) {
    snprintf(err, errlen, "range starts at %" PRIu64 ", past the needle's %" PRIu32 " bytes", offset, sl.size);
    return FM_EINVAL;
  }

  char path[PATH_MAX];
  uint8_t h[NEEDLE_HEADER_SIZE];
  uint8_t *buf = malloc(sl.size > 0 ? sl.size : 1);
  if (buf == NULL) {
    snprintf(err, errlen, "out of memory");
    return FM_ENOMEM;
  }
  struct iovec iov[2] = { { h, sizeof h }, { buf, sl.size } };
  if (preadv_all(fd, iov, 2, sl.offset) != 0) {
    int e = errno;
    volume_path(s, fid->volume_id, "dat", path, sizeof path);
    snprintf(err, errlen, "cannot read %s at offset %" PRIu64 ": %s", path, sl.offset,
             e != 0 ? strerror(e) : "end of file");
    free(buf);
    return FM_EIO;
  }
  if (!needle_header_matches(h, sl.key, sl.cookie, sl.size)) {
    volume_path(s, fid->volume_id, "dat", path, sizeof path);
    snprintf(err, errlen, "needle header mismatch in %s at offset %" PRIu64, path, sl.offset);
    free(buf);
    return FM_EDECODE;
  }
  if (fm_storage__get_be32(h + 20) != crc(buf, sl.size)) {
    volume_path(s, fid->volume_id, "dat", path, sizeof path);
    snprintf(err, errlen, "crc mismatch in %s at offset %" PRIu64, path, sl.offset);
    free(buf);
    return FM_EDECODE;
  }
  uint64_t n = sl.size - offset;
  if (length < n)
    n = length;
  if (offset > 0 || n < sl.size) {
    memmove(buf, buf + offset, (size_t)n);
    uint8_t *shrunk = realloc(buf, n > 0 ? (size_t)n : 1);
    if (shrunk != NULL)
      buf = shrunk;
  }
  *data = buf;
  *len = (size_t)n;
  return 0;
}

int fm_chunk_store_read(fm_chunk_store *s, const fm_fid *fid, void **data, size_t *len, char *err, size_t errlen)
{
  return fm_chunk_store_read_range(s, fid, 0, UINT64_MAX, data, len, err, errlen);
}

/* ================================================================ queries */

int fm_chunk_store_sync(fm_chunk_store *s, uint32_t volume_id, char *err, size_t errlen)
{
  pthread_mutex_lock(&s->wmu); /* volumes are created under it; their fds live as long as the store */
  volume *v = find_volume(s, volume_id);
  int rc = 0;
  if (v == NULL) {
    snprintf(err, errlen, "volume %" PRIu32 " does not exist", volume_id);
    rc = FM_ENOTFOUND;
  } else if (fdatasync(v->dat) != 0 || fdatasync(v->idx) != 0) {
    int e = errno;
    snprintf(err, errlen, "cannot sync volume %" PRIu32 ": %s", volume_id, strerror(e));
    rc = errno_to_fm(e);
  }
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

bool fm_chunk_store_has_volume(fm_chunk_store *s, uint32_t volume_id)
{
  pthread_rwlock_rdlock(&s->rw);
  bool has = find_volume(s, volume_id) != NULL;
  pthread_rwlock_unlock(&s->rw);
  return has;
}

void fm_chunk_store_stats(fm_chunk_store *s, struct fm_chunk_store_stats *out)
{
  memset(out, 0, sizeof *out);
  pthread_rwlock_rdlock(&s->rw);
  out->volumes = s->nvols;
  for (size_t i = 0; i < s->nvols; i++) {
    const volume *v = s->vols[i];
    out->needles += v->needles;
    out->deleted_needles += v->deleted;
    out->live_bytes += v->live_bytes;
    out->disk_bytes += v->dat_size + v->idx_size;
  }
  out->repaired_volumes = s->repaired;
  pthread_rwlock_unlock(&s->rw);
}
