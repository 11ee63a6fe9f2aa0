/*
 * Log files (log_file.h), in four parts:
 *   names     UTC calendar arithmetic without the C library's time zone state, so that it is reentrant and
 *             independent of TZ;
 *   listing   day directories once, then each day's files as the listing gets there;
 *   chunks    one chunk's bytes: needle, then decryption and gunzip for files upstream wrote;
 *   scan      per filer id one stream reading its files in order, merged by ts with a min-heap; a readahead
 *             thread fetches chunks ahead of the streams.
 */
#include "log_file.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "error.h"
#include "filer.pb-c.h"
#include "log.h"

/* ================================================================ names */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Writes v's last n decimal digits, zero-padded. */
static void put_digits(char *out, unsigned v, int n)
{
  for (int i = n - 1; i >= 0; i--) {
    out[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

int64_t fm_log_minute_of(int64_t ts_ns)
{
  return ts_ns - ts_ns % FM_NS_PER_MINUTE;
}

void fm_log_file_path(int64_t ts_ns, uint32_t filer_id, char day_dir[FM_LOG_DAY_DIR_MAX],
                      char name[FM_LOG_FILE_NAME_MAX])
{
  int64_t days = ts_ns / FM_NS_PER_DAY;
  int64_t in_day = (ts_ns % FM_NS_PER_DAY) / FM_NS_PER_MINUTE;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  /* written digit by digit: the values are in range, but snprintf's truncation warnings cannot see that */
  memcpy(day_dir, FM_LOG_DIR "/", sizeof FM_LOG_DIR);
  char *p = day_dir + sizeof FM_LOG_DIR;
  put_digits(p, (unsigned)(y % 10000), 4);
  p[4] = '-';
  put_digits(p + 5, m, 2);
  p[7] = '-';
  put_digits(p + 8, d, 2);
  p[10] = '\0';
  put_digits(name, (unsigned)(in_day / 60), 2);
  name[2] = '-';
  put_digits(name + 3, (unsigned)(in_day % 60), 2);
  name[5] = '.';
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++)
    name[6 + i] = hex[(filer_id >> (28 - 4 * i)) & 0xf];
  name[14] = '\0';
}

static bool digits(const char *s, size_t n, unsigned *out)
{
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return true;
}

bool fm_log_parse_day(const char *day, size_t len, int64_t *day_ns)
{
  unsigned y, m, d;
  if (len != 10 || day[4] != '-' || day[7] != '-' || !digits(day, 4, &y) || !digits(day + 5, 2, &m) ||
      !digits(day + 8, 2, &d))
    return false;
  if (y < 1970 || m < 1 || m > 12 || d < 1)
    return false;
  static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > mdays[m - 1] + (m == 2 && leap))
    return false;
  int64_t days = days_from_civil(y, m, d);
  if (days > INT64_MAX / FM_NS_PER_DAY)
    return false; /* its start would not fit in int64 ns (after 2262-04-11) */
  *day_ns = days * FM_NS_PER_DAY;
  return true;
}

bool fm_log_parse_file_name(const char *name, size_t len, int64_t *minute_ns, uint32_t *filer_id)
{
  unsigned hh, mm;
  if (len < 7 || len > 14 || name[2] != '-' || name[5] != '.' || !digits(name, 2, &hh) || !digits(name + 3, 2, &mm) ||
      hh > 23 || mm > 59)
    return false;
  uint32_t id = 0;
  for (size_t i = 6; i < len; i++) {
    char c = name[i];
    unsigned v;
    if (c >= '0' && c <= '9')
      v = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v = (unsigned)(c - 'A' + 10);
    else
      return false;
    id = id << 4 | v;
  }
  *minute_ns = (int64_t)(hh * 60 + mm) * FM_NS_PER_MINUTE;
  *filer_id = id;
  return true;
}

/* ================================================================ listing */

/* Longest chunk accepted: upstream uploads pieces of at most 8 MiB, so a size over this is damage, and it bounds what
 * a gunzip allocates. */
#define LOG_CHUNK_MAX (UINT64_C(1) << 30)

/* protobuf-c's allocator plus a note of a failed allocation: unpack returns NULL for malformed bytes and for a failed
 * malloc alike, and only the first is damage. */
static void *pb_alloc(void *oom, size_t size)
{
  void *p = malloc(size);
  if (p == NULL && size > 0)
    *(bool *)oom = true;
  return p;
}

static void pb_free(void *oom, void *p)
{
  free(p);
}

typedef struct day_ref {
  int64_t day_ns;
  char name[FM_LOG_DAY_NAME_MAX];
} day_ref;

/* A file name listed in the current day, with a copy of its entry's bytes. */
typedef struct listed {
  char name[FM_LOG_FILE_NAME_MAX];
  int64_t file_ts_ns;
  uint32_t filer_id;
  uint8_t *value;
  size_t len;
} listed;

struct fm_log_files {
  fm_store *store;
  int64_t from_ns;  /* the first minute listed */
  int64_t until_ns; /* 0: no bound */
  day_ref *days;    /* day directories from from_ns's day through until_ns's, in order */
  size_t ndays, days_cap, next_day;
  char day[FM_LOG_DAY_NAME_MAX]; /* the day being listed */
  int64_t day_ns;
  bool day_open;                     /* the day has names not listed yet */
  char cursor[FM_LOG_FILE_NAME_MAX]; /* the day's last name listed so far */
  listed *files;                     /* the current batch of the day's files */
  size_t nfiles, cap, pos;
  char path[FM_LOG_PATH_MAX]; /* the file fm_log_files_next looked at last, for the scan's messages */
};

void fm_log_file_free(fm_log_file *f)
{
  if (f == NULL)
    return;
  if (f->entry != NULL)
    filer_pb__entry__free_unpacked(f->entry, NULL);
  free(f->chunks);
  free(f);
}

/* The day name "YYYY-MM-DD" and the minute "HH-MM" of ts_ns. */
static void day_and_minute(int64_t ts_ns, char day[FM_LOG_DAY_NAME_MAX], char minute[6])
{
  char dir[FM_LOG_DAY_DIR_MAX], name[FM_LOG_FILE_NAME_MAX];
  fm_log_file_path(ts_ns, 0, dir, name);
  memcpy(day, dir + sizeof FM_LOG_DIR, FM_LOG_DAY_NAME_MAX);
  memcpy(minute, name, 5);
  minute[5] = '\0';
}

/* Names in messages are cut, so that a bogus long name cannot push the rest out of the line. */
static int shown(size_t len)
{
  return len > 64 ? 64 : (int)len;
}

/* Files listed per store iteration: a day holds up to 1440 files per filer id, and only the first few are needed
 * at a time. */
#define LIST_BATCH 64

typedef struct list_ctx {
  fm_log_files *l;
  int64_t day_ns;      /* listing files: the day; listing days: the last day wanted (INT64_MAX: any) */
  const char *day_dir; /* listing files: for messages */
  bool oom;
  bool full; /* listing files: stopped at LIST_BATCH */
} list_ctx;

static bool add_day(void *arg, const char *name, size_t len, const void *value, size_t vlen)
{
  list_ctx *c = arg;
  fm_log_files *l = c->l;
  int64_t day_ns;
  if (!fm_log_parse_day(name, len, &day_ns)) {
    fm_log_warn("log files: skipping %s/%.*s: not a YYYY-MM-DD day directory", FM_LOG_DIR, shown(len), name);
    return true;
  }
  if (day_ns > c->day_ns)
    return false;
  if (l->ndays == l->days_cap) {
    size_t cap = l->days_cap > 0 ? l->days_cap * 2 : 16;
    day_ref *d = realloc(l->days, cap * sizeof *d);
    if (d == NULL) {
      c->oom = true;
      return false;
    }
    l->days = d;
    l->days_cap = cap;
  }
  l->days[l->ndays].day_ns = day_ns;
  memcpy(l->days[l->ndays].name, name, 10);
  l->days[l->ndays].name[10] = '\0';
  l->ndays++;
  return true;
}

static bool add_file(void *arg, const char *name, size_t len, const void *value, size_t vlen)
{
  list_ctx *c = arg;
  fm_log_files *l = c->l;
  int64_t minute;
  uint32_t id;
  if (!fm_log_parse_file_name(name, len, &minute, &id) || minute > INT64_MAX - c->day_ns) {
    fm_log_warn("log files: skipping %s/%.*s: not a HH-MM.<filer id> log file name", c->day_dir, shown(len), name);
    return true;
  }
  int64_t ts = c->day_ns + minute;
  if (ts < l->from_ns)
    return true;
  if (l->until_ns != 0 && ts > l->until_ns)
    return false; /* names sort by their HH-MM first */
  if (l->nfiles == l->cap) {
    size_t cap = l->cap > 0 ? l->cap * 2 : 64;
    listed *f = realloc(l->files, cap * sizeof *f);
    if (f == NULL) {
      c->oom = true;
      return false;
    }
    l->files = f;
    l->cap = cap;
  }
  listed *e = &l->files[l->nfiles];
  e->value = malloc(vlen > 0 ? vlen : 1);
  if (e->value == NULL) {
    c->oom = true;
    return false;
  }
  memcpy(e->value, value, vlen);
  e->len = vlen;
  memcpy(e->name, name, len); /* at most 14 bytes: the parser says so */
  e->name[len] = '\0';
  e->file_ts_ns = ts;
  e->filer_id = id;
  l->nfiles++;
  if (l->nfiles == LIST_BATCH) {
    c->full = true;
    return false;
  }
  return true;
}

static void clear_files(fm_log_files *l)
{
  for (size_t i = l->pos; i < l->nfiles; i++)
    free(l->files[i].value);
  l->nfiles = 0;
  l->pos = 0;
}

int fm_log_files_open(fm_store *s, int64_t after_ns, int64_t until_ns, fm_log_files **out, char *err, size_t errlen)
{
  *out = NULL;
  if (after_ns < 0 || until_ns < 0) {
    snprintf(err, errlen, "log files: negative time (after %" PRId64 ", until %" PRId64 ")", after_ns, until_ns);
    return FM_EINVAL;
  }
  fm_log_files *l = calloc(1, sizeof *l);
  if (l == NULL)
    return FM_ENOMEM;
  l->store = s;
  l->from_ns = fm_log_minute_of(after_ns > FM_NS_PER_MINUTE ? after_ns - FM_NS_PER_MINUTE : 0);
  l->until_ns = until_ns;
  char day[FM_LOG_DAY_NAME_MAX], minute[6];
  day_and_minute(l->from_ns, day, minute);
  list_ctx c = { .l = l, .day_ns = until_ns != 0 ? until_ns - until_ns % FM_NS_PER_DAY : INT64_MAX };
  int rc = fm_store_list(s, FM_LOG_DIR, day, true, "", add_day, &c, err, errlen);
  if (rc == 0 && c.oom)
    rc = FM_ENOMEM;
  if (rc != 0) {
    fm_log_files_free(l);
    return rc;
  }
  *out = l;
  return 0;
}

void fm_log_files_free(fm_log_files *l)
{
  if (l == NULL)
    return;
  clear_files(l);
  free(l->files);
  free(l->days);
  free(l);
}

/* Lists the next batch of the current day's files that the range wants. */
static int list_batch(fm_log_files *l, char *err, size_t errlen)
{
  clear_files(l);
  char dir[FM_LOG_DAY_DIR_MAX];
  snprintf(dir, sizeof dir, "%s/%s", FM_LOG_DIR, l->day);
  char from_day[FM_LOG_DAY_NAME_MAX], from_minute[6];
  day_and_minute(l->from_ns, from_day, from_minute);
  const char *start = l->cursor[0] != '\0' ? l->cursor : strcmp(l->day, from_day) == 0 ? from_minute : "";
  list_ctx c = { .l = l, .day_ns = l->day_ns, .day_dir = dir };
  int rc = fm_store_list(l->store, dir, start, l->cursor[0] == '\0', "", add_file, &c, err, errlen);
  if (rc == 0 && c.oom)
    rc = FM_ENOMEM;
  if (rc != 0) {
    clear_files(l);
    return rc;
  }
  l->day_open = c.full;
  if (l->nfiles > 0)
    memcpy(l->cursor, l->files[l->nfiles - 1].name, sizeof l->cursor);
  return 0;
}

static int cmp_chunk(const void *a, const void *b)
{
  const fm_log_chunk *x = a, *y = b;
  if (x->offset != y->offset)
    return x->offset < y->offset ? -1 : 1;
  return x->size < y->size ? -1 : x->size > y->size; /* empty chunks first, so that contiguity holds */
}

/* Decodes one chunk's description into *c. Returns false with a reason in `why`. */
static bool chunk_from_pb(const FilerPb__FileChunk *pb, fm_log_chunk *c, char *why, size_t whylen)
{
  memset(c, 0, sizeof *c);
  c->pb = pb;
  c->offset = pb->offset < 0 ? 0 : (uint64_t)pb->offset;
  c->size = pb->size;
  if (pb->offset < 0) {
    snprintf(why, whylen, "chunk with negative offset %" PRId64, pb->offset);
    return false;
  }
  if (pb->file_id != NULL && pb->file_id[0] != '\0') {
    if (fm_fid_parse(pb->file_id, strlen(pb->file_id), &c->fid) != 0) {
      snprintf(why, whylen, "chunk with a bad file id \"%.*s\"", shown(strlen(pb->file_id)), pb->file_id);
      return false;
    }
  } else if (pb->fid != NULL && pb->fid->volume_id != 0) {
    c->fid.volume_id = pb->fid->volume_id;
    c->fid.key = pb->fid->file_key;
    c->fid.cookie = pb->fid->cookie;
  } else {
    snprintf(why, whylen, "chunk without a file id");
    return false;
  }
  if (pb->is_chunk_manifest) {
    snprintf(why, whylen, "chunk manifest (log files never have them)");
    return false;
  }
  if (pb->sse_type != FILER_PB__SSETYPE__NONE) {
    snprintf(why, whylen, "chunk with S3 server-side encryption (type %d)", (int)pb->sse_type);
    return false;
  }
  if (pb->size > LOG_CHUNK_MAX || pb->offset > INT64_MAX - (int64_t)LOG_CHUNK_MAX) {
    snprintf(why, whylen, "chunk of %" PRIu64 " bytes at offset %" PRId64 " is out of bounds", pb->size, pb->offset);
    return false;
  }
  return true;
}

/* Builds the fm_log_file for a listed name. FM_ENOTFOUND: nothing to read there (a directory, no chunks). */
static int build_file(fm_log_files *l, const listed *e, fm_log_file **out, char *err, size_t errlen)
{
  bool oom = false;
  ProtobufCAllocator allocator = { .alloc = pb_alloc, .free = pb_free, .allocator_data = &oom };
  FilerPb__Entry *en = filer_pb__entry__unpack(&allocator, e->len, e->value);
  if (en == NULL && oom)
    return FM_ENOMEM;
  if (en == NULL) {
    snprintf(err, errlen, "%s offset 0: its entry does not decode as filer_pb.Entry (%zu bytes)", l->path, e->len);
    return FM_EDECODE;
  }
  if (en->is_directory || en->n_chunks == 0) {
    fm_log_debug("log files: skipping %s: %s", l->path, en->is_directory ? "a directory" : "no chunks");
    filer_pb__entry__free_unpacked(en, NULL);
    return FM_ENOTFOUND;
  }
  fm_log_file *f = calloc(1, sizeof *f);
  fm_log_chunk *chunks = calloc(en->n_chunks, sizeof *chunks);
  if (f == NULL || chunks == NULL) {
    free(f);
    free(chunks);
    filer_pb__entry__free_unpacked(en, NULL);
    return FM_ENOMEM;
  }
  f->entry = en;
  f->chunks = chunks;
  f->nchunks = en->n_chunks;
  memcpy(f->day, l->day, sizeof f->day);
  memcpy(f->name, e->name, sizeof f->name);
  memcpy(f->path, l->path, sizeof f->path);
  f->file_ts_ns = e->file_ts_ns;
  f->filer_id = e->filer_id;
  char why[160];
  for (size_t i = 0; i < en->n_chunks; i++) {
    if (!chunk_from_pb(en->chunks[i], &chunks[i], why, sizeof why)) {
      snprintf(err, errlen, "%s offset %" PRIu64 ": %s", l->path, chunks[i].offset, why);
      fm_log_file_free(f);
      return FM_EDECODE;
    }
  }
  qsort(chunks, f->nchunks, sizeof *chunks, cmp_chunk);
  for (size_t i = 1; i < f->nchunks; i++) {
    uint64_t end = chunks[i - 1].offset + chunks[i - 1].size;
    if (chunks[i].offset != end) {
      snprintf(err, errlen, "%s offset %" PRIu64 ": chunk does not start where the previous one ends (%" PRIu64 ")",
               l->path, chunks[i].offset, end);
      fm_log_file_free(f);
      return FM_EDECODE;
    }
  }
  *out = f;
  return 0;
}

int fm_log_files_next(fm_log_files *l, fm_log_file **file, char *err, size_t errlen)
{
  *file = NULL;
  for (;;) {
    if (l->pos < l->nfiles) {
      listed *e = &l->files[l->pos++];
      snprintf(l->path, sizeof l->path, "%s/%s/%s", FM_LOG_DIR, l->day, e->name);
      int rc = build_file(l, e, file, err, errlen);
      free(e->value);
      e->value = NULL;
      if (rc == FM_ENOTFOUND)
        continue;
      return rc;
    }
    if (!l->day_open) {
      if (l->next_day >= l->ndays)
        return FM_ENOTFOUND;
      const day_ref *d = &l->days[l->next_day++];
      memcpy(l->day, d->name, sizeof l->day);
      l->day_ns = d->day_ns;
      l->cursor[0] = '\0';
      l->day_open = true;
    }
    int rc = list_batch(l, err, errlen);
    if (rc != 0)
      return rc; /* the next call lists the same batch again */
  }
}

int fm_log_files_oldest(fm_store *s, int64_t *oldest_minute_ns, char *err, size_t errlen)
{
  *oldest_minute_ns = 0;
  fm_log_files *l;
  int rc = fm_log_files_open(s, 0, 0, &l, err, errlen);
  if (rc != 0)
    return rc;
  for (;;) {
    fm_log_file *f;
    rc = fm_log_files_next(l, &f, err, errlen);
    if (rc == FM_EDECODE)
      continue; /* damage is the scan's to report */
    if (rc == 0) {
      *oldest_minute_ns = f->file_ts_ns;
      fm_log_file_free(f);
    }
    break;
  }
  fm_log_files_free(l);
  return rc == FM_ENOTFOUND ? 0 : rc;
}

/* ================================================================ chunks */

#define GCM_NONCE 12
#define GCM_TAG 16

/* Replaces *buf (nonce, ciphertext, tag: Go's gcm.Seal(nonce, nonce, ...) as upstream's util.Encrypt) with its
 * plaintext. */
static int decrypt(const ProtobufCBinaryData *key, void **buf, size_t *len, const char *fid, char *err, size_t errlen)
{
  if (key->len != 32) {
    snprintf(err, errlen, "chunk %s: cipher key of %zu bytes (AES-256-GCM needs 32)", fid, key->len);
    return FM_EDECODE;
  }
  if (*len < GCM_NONCE + GCM_TAG) {
    snprintf(err, errlen, "chunk %s: %zu encrypted bytes cannot hold a nonce and a tag", fid, *len);
    return FM_EDECODE;
  }
  uint8_t *in = *buf;
  size_t clen = *len - GCM_NONCE - GCM_TAG;
  uint8_t *out = malloc(clen > 0 ? clen : 1);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (out == NULL || ctx == NULL) {
    free(out);
    EVP_CIPHER_CTX_free(ctx);
    return FM_ENOMEM;
  }
  int n = 0, fin = 0;
  bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE, NULL) == 1 &&
            EVP_DecryptInit_ex(ctx, NULL, NULL, key->data, in) == 1 &&
            EVP_DecryptUpdate(ctx, out, &n, in + GCM_NONCE, (int)clen) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, in + GCM_NONCE + clen) == 1 &&
            EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    free(out);
    snprintf(err, errlen, "chunk %s: does not decrypt with its cipher key (AES-256-GCM)", fid);
    return FM_EDECODE;
  }
  free(in);
  *buf = out;
  *len = clen;
  return 0;
}

/* Replaces *buf (a gzip stream) with what it decompresses to, which must be exactly `size` bytes. */
static int gunzip(void **buf, size_t *len, uint64_t size, const char *fid, char *err, size_t errlen)
{
  if (*len > UINT32_MAX) {
    snprintf(err, errlen, "chunk %s: %zu compressed bytes is too many", fid, *len);
    return FM_EDECODE;
  }
  uint8_t *out = malloc(size > 0 ? (size_t)size : 1);
  if (out == NULL)
    return FM_ENOMEM;
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    free(out);
    return FM_ENOMEM;
  }
  zs.next_in = *buf;
  zs.avail_in = (uInt)*len;
  zs.next_out = out;
  zs.avail_out = (uInt)size;
  int zr = inflate(&zs, Z_FINISH);
  char why[96];
  snprintf(why, sizeof why, "%s", zs.msg != NULL ? zs.msg : "truncated");
  bool full = zs.avail_out == 0;
  uint64_t got = zs.total_out;
  inflateEnd(&zs);
  if (zr == Z_MEM_ERROR) {
    free(out);
    return FM_ENOMEM;
  }
  if (zr != Z_STREAM_END) {
    free(out);
    if (zr == Z_BUF_ERROR && full)
      snprintf(err, errlen, "chunk %s: decompresses to more than its size, %" PRIu64 " bytes", fid, size);
    else
      snprintf(err, errlen, "chunk %s: is_compressed but does not gunzip (%s)", fid, why);
    return FM_EDECODE;
  }
  if (got != size) {
    free(out);
    snprintf(err, errlen, "chunk %s: decompresses to %" PRIu64 " bytes, its size is %" PRIu64, fid, got, size);
    return FM_EDECODE;
  }
  free(*buf);
  *buf = out;
  *len = (size_t)size;
  return 0;
}

int fm_log_chunk_read(fm_chunk_store *cs, const fm_log_chunk *c, void **data, size_t *len, char *err, size_t errlen)
{
  *data = NULL;
  *len = 0;
  char fid[FM_FID_MAX];
  if (fm_fid_format(&c->fid, fid, sizeof fid) != 0)
    snprintf(fid, sizeof fid, "(volume 0)");
  if (c->size > LOG_CHUNK_MAX) {
    snprintf(err, errlen, "chunk %s: size %" PRIu64 " is over the limit", fid, c->size);
    return FM_EDECODE;
  }
  void *buf;
  size_t n;
  char why[FM_ERR_LEN] = "";
  int rc = fm_chunk_store_read(cs, &c->fid, &buf, &n, why, sizeof why);
  if (rc == FM_ENOTFOUND) {
    snprintf(err, errlen, "chunk %s: not found", fid);
    return rc;
  }
  if (rc != 0) {
    snprintf(err, errlen, "chunk %s: %s", fid, why[0] != '\0' ? why : fm_strerror(rc));
    return rc;
  }
  if (c->pb != NULL && c->pb->cipher_key.len > 0)
    rc = decrypt(&c->pb->cipher_key, &buf, &n, fid, err, errlen);
  if (rc == 0 && c->pb != NULL && c->pb->is_compressed)
    rc = gunzip(&buf, &n, c->size, fid, err, errlen);
  if (rc == 0 && n != c->size) {
    snprintf(err, errlen, "chunk %s: holds %zu bytes, its size is %" PRIu64, fid, n, c->size);
    rc = FM_EDECODE;
  }
  if (rc != 0) {
    free(buf);
    return rc;
  }
  *data = buf;
  *len = n;
  return 0;
}

/* ================================================================ scan: files and the readahead thread */

/*
 * Ownership. Every file the scan has listed is a scan_file on the scan's list (first..last, listing order) from its
 * listing until its stream finishes it (or the scan ends). The list, the fetch state of each file and the byte
 * counters are guarded by `mu`; `cond` is broadcast whenever any of them changes, and both the readahead thread
 * (waiting for work) and the caller's thread (waiting for a chunk) wait on it. The readahead thread fetches a chunk
 * with `mu` released, after marking the file in_flight: a file is never freed while in_flight, and its fm_log_file
 * (chunk list) does not change while it is on the list, so reading it without `mu` is safe. A fetched buffer belongs
 * to the file (bufs[i]) until the caller's thread takes it, and then to that file's stream, which frees it once its
 * reader has moved past it.
 */

/* Listed files kept ahead of the merge: the next file's minute tells when it joins, and the readahead thread fetches
 * the first chunks of these while the current files are read. */
#define SCAN_LOOKAHEAD_FILES 2

/* The readahead thread's stack: it calls only the chunk store, zlib and libcrypto, which keep their state on the
 * heap. */
#define READAHEAD_STACK ((size_t)256 << 10)

typedef struct scan_file {
  fm_log_file *info;
  uint64_t seq;                  /* listing order; tells fm_log_scan_file which file it is */
  struct scan_file *prev, *next; /* the scan's list (mu) */
  /* fetch state (mu) */
  void **bufs;       /* per chunk: fetched bytes the stream has not taken yet */
  size_t *lens;      /* their lengths */
  size_t next_fetch; /* the next chunk to fetch */
  size_t fail_at;    /* the chunk whose fetch failed (SIZE_MAX: none); nothing after it is fetched */
  int fail_rc;
  char fail_err[FM_ERR_LEN];
  uint64_t ahead; /* bytes in bufs */
  bool in_flight; /* the readahead thread is fetching chunk next_fetch */
  bool want;      /* the stream is waiting for chunk next_fetch */
  /* the caller's thread only */
  struct scan_file *qnext; /* in the planned queue or a stream's queue */
  fm_log_reader reader;
  bool reading;  /* reader initialised */
  bool fed_last; /* the last chunk is in the reader */
  size_t next_take;
  void *fed; /* the chunk the reader is reading */
  uint64_t dropped;
} scan_file;

/* One filer id's files, read one after the other. In the heap exactly when it has a head record. */
typedef struct scan_stream {
  uint32_t filer_id;
  scan_file *cur;           /* the file being read, or NULL */
  scan_file *qhead, *qtail; /* files that joined and wait for cur to end */
  int64_t last_ts;          /* the last ts read from this filer id, INT64_MIN before the first */
  fm_log_record head;       /* the next record; borrowed from cur's reader */
} scan_stream;

struct fm_log_scan {
  fm_store *store;
  fm_chunk_store *cs;
  int64_t after_ns, until_ns;
  fm_log_scan_options opt;
  size_t budget;
  /* the caller's thread only */
  fm_log_files *listing; /* NULL once exhausted */
  int list_rc;           /* the listing stopped at a damaged entry: list_err, raised when the merge gets there */
  char list_err[FM_ERR_LEN];
  char list_err_path[FM_LOG_PATH_MAX];
  int64_t list_err_ts;
  scan_file *phead, *ptail; /* planned: listed, not yet joined a stream */
  size_t nplanned;
  scan_stream **streams;
  size_t nstreams, streams_cap;
  scan_stream **heap; /* min-heap by (head.ts_ns, filer_id), streams_cap slots */
  size_t nheap;
  scan_stream *popped; /* returned its head; advanced at the next call */
  uint64_t next_seq;
  int failed;
  char fail_err[FM_ERR_LEN];
  bool ended;
  int64_t last_ts;
  uint64_t path_seq;
  char path[FM_LOG_PATH_MAX];
  uint64_t records, files_opened, fetch_waits;
  bool thread_started;
  pthread_t thread;
  /* shared with the readahead thread (mu) */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  scan_file *first, *last;
  uint64_t ahead; /* bytes fetched and not taken, all files */
  uint64_t chunks_fetched, bytes_fetched;
  bool stop;
};

static bool fetchable(const scan_file *f)
{
  return !f->in_flight && f->next_fetch < f->info->nchunks && f->fail_at == SIZE_MAX;
}

/* The file whose next chunk to fetch: the one a stream waits for, else (within the budget) the first in listing
 * order with nothing fetched ahead, else the first holding less than half the budget. Holds mu. */
static scan_file *pick_locked(fm_log_scan *s)
{
  for (scan_file *f = s->first; f != NULL; f = f->next)
    if (f->want && fetchable(f))
      return f;
  if (s->ahead >= s->budget)
    return NULL;
  for (scan_file *f = s->first; f != NULL; f = f->next)
    if (f->ahead == 0 && fetchable(f))
      return f;
  for (scan_file *f = s->first; f != NULL; f = f->next)
    if (f->ahead < s->budget / 2 && fetchable(f))
      return f;
  return NULL;
}

static void *readahead_main(void *arg)
{
  fm_log_scan *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->stop) {
    scan_file *f = pick_locked(s);
    if (f == NULL) {
      pthread_cond_wait(&s->cond, &s->mu);
      continue;
    }
    size_t i = f->next_fetch;
    f->in_flight = true;
    pthread_mutex_unlock(&s->mu);

    void *buf;
    size_t len;
    char err[FM_ERR_LEN] = "";
    int rc = fm_log_chunk_read(s->cs, &f->info->chunks[i], &buf, &len, err, sizeof err);

    pthread_mutex_lock(&s->mu);
    f->in_flight = false;
    if (rc == 0) {
      f->bufs[i] = buf;
      f->lens[i] = len;
      f->ahead += len;
      s->ahead += len;
      s->chunks_fetched++;
      s->bytes_fetched += len;
      f->next_fetch = i + 1;
    } else {
      f->fail_at = i;
      f->fail_rc = rc;
      memcpy(f->fail_err, err, sizeof f->fail_err);
    }
    pthread_cond_broadcast(&s->cond);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void file_free(scan_file *f)
{
  if (f->reading)
    fm_log_reader_destroy(&f->reader);
  free(f->fed);
  if (f->bufs != NULL)
    for (size_t i = 0; i < f->info->nchunks; i++)
      free(f->bufs[i]);
  free(f->bufs);
  free(f->lens);
  fm_log_file_free(f->info);
  free(f);
}

/* Takes a finished file off the list (waiting for a fetch in flight) and frees it. */
static void file_drop(fm_log_scan *s, scan_file *f)
{
  pthread_mutex_lock(&s->mu);
  while (f->in_flight)
    pthread_cond_wait(&s->cond, &s->mu);
  if (f->prev != NULL)
    f->prev->next = f->next;
  else
    s->first = f->next;
  if (f->next != NULL)
    f->next->prev = f->prev;
  else
    s->last = f->prev;
  s->ahead -= f->ahead;
  pthread_cond_broadcast(&s->cond); /* budget freed */
  pthread_mutex_unlock(&s->mu);
  if (f->dropped > 0)
    fm_log_warn("log scan: %s: dropped %" PRIu64 " records whose ts did not increase", f->info->path, f->dropped);
  file_free(f);
}

/* Puts a listed file on the scan's list and in the planned queue; starts the readahead thread with the first. Takes
 * ownership of `info`. */
static int file_add(fm_log_scan *s, fm_log_file *info)
{
  scan_file *f = calloc(1, sizeof *f);
  if (f != NULL) {
    f->bufs = calloc(info->nchunks, sizeof *f->bufs);
    f->lens = calloc(info->nchunks, sizeof *f->lens);
  }
  if (f == NULL || f->bufs == NULL || f->lens == NULL) {
    if (f != NULL) {
      free(f->bufs);
      free(f->lens);
    }
    free(f);
    fm_log_file_free(info);
    return FM_ENOMEM;
  }
  f->info = info;
  f->seq = ++s->next_seq;
  f->fail_at = SIZE_MAX;
  if (s->ptail != NULL)
    s->ptail->qnext = f;
  else
    s->phead = f;
  s->ptail = f;
  s->nplanned++;

  pthread_mutex_lock(&s->mu);
  f->prev = s->last;
  if (s->last != NULL)
    s->last->next = f;
  else
    s->first = f;
  s->last = f;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);

  if (!s->thread_started && !s->opt.synchronous) {
    /* a small stack: a server may run one scan per catching-up subscriber */
    pthread_attr_t attr;
    bool have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr)
      pthread_attr_setstacksize(&attr, READAHEAD_STACK);
    int rc = pthread_create(&s->thread, have_attr ? &attr : NULL, readahead_main, s);
    if (have_attr)
      pthread_attr_destroy(&attr);
    if (rc == 0) {
      s->thread_started = true;
    } else {
      fm_log_warn("log scan: cannot start the readahead thread (%s); reading without readahead", strerror(rc));
      s->opt.synchronous = true;
    }
  }
  return 0;
}

/* Hands the stream the next chunk of f: from the readahead thread, waiting if it is not fetched yet, or read here in
 * a synchronous scan. Returns 0 with *buf (the caller owns it), or the fetch's error with `err`. */
static int file_take(fm_log_scan *s, scan_file *f, void **buf, size_t *len, char *err, size_t errlen)
{
  size_t i = f->next_take;
  if (s->opt.synchronous) {
    int rc = fm_log_chunk_read(s->cs, &f->info->chunks[i], buf, len, err, errlen);
    if (rc != 0)
      return rc;
    pthread_mutex_lock(&s->mu);
    s->chunks_fetched++;
    s->bytes_fetched += *len;
    pthread_mutex_unlock(&s->mu);
    f->next_take++;
    return 0;
  }
  pthread_mutex_lock(&s->mu);
  if (i >= f->next_fetch && f->fail_at != i) {
    s->fetch_waits++;
    f->want = true;
    pthread_cond_broadcast(&s->cond);
    while (i >= f->next_fetch && f->fail_at != i)
      pthread_cond_wait(&s->cond, &s->mu);
    f->want = false;
  }
  int rc = 0;
  if (f->fail_at == i) {
    rc = f->fail_rc;
    snprintf(err, errlen, "%s", f->fail_err);
  } else {
    *buf = f->bufs[i];
    *len = f->lens[i];
    f->bufs[i] = NULL;
    f->ahead -= *len;
    s->ahead -= *len;
    pthread_cond_broadcast(&s->cond); /* budget freed */
  }
  pthread_mutex_unlock(&s->mu);
  if (rc == 0)
    f->next_take++;
  return rc;
}

/* Stops the readahead thread and frees every file; the scan returns nothing more. */
static void scan_release(fm_log_scan *s)
{
  if (s->thread_started) {
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->thread_started = false;
  }
  /* single-threaded from here */
  for (scan_file *f = s->first; f != NULL;) {
    scan_file *next = f->next;
    file_free(f);
    f = next;
  }
  s->first = s->last = NULL;
  s->ahead = 0;
  s->phead = s->ptail = NULL;
  s->nplanned = 0;
  for (size_t i = 0; i < s->nstreams; i++) {
    s->streams[i]->cur = NULL;
    s->streams[i]->qhead = s->streams[i]->qtail = NULL;
  }
  s->nheap = 0;
  s->popped = NULL;
  fm_log_files_free(s->listing);
  s->listing = NULL;
}

/* ================================================================ scan: streams and the merge */

static int scan_fail(fm_log_scan *s, int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Ends the scan with rc and a message; later calls return the same. */
static int scan_fail(fm_log_scan *s, int rc, char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->fail_err, sizeof s->fail_err, fmt, ap);
  va_end(ap);
  s->failed = rc;
  snprintf(err, errlen, "%s", s->fail_err);
  scan_release(s);
  return rc;
}

static void set_path(fm_log_scan *s, const scan_file *f)
{
  if (s->path_seq != f->seq) {
    s->path_seq = f->seq;
    memcpy(s->path, f->info->path, sizeof s->path);
  }
}

static bool heap_less(const scan_stream *a, const scan_stream *b)
{
  if (a->head.ts_ns != b->head.ts_ns)
    return a->head.ts_ns < b->head.ts_ns;
  return a->filer_id < b->filer_id;
}

static void heap_push(fm_log_scan *s, scan_stream *st)
{
  size_t i = s->nheap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(st, s->heap[parent]))
      break;
    s->heap[i] = s->heap[parent];
    i = parent;
  }
  s->heap[i] = st;
}

static scan_stream *heap_pop(fm_log_scan *s)
{
  scan_stream *top = s->heap[0];
  scan_stream *st = s->heap[--s->nheap];
  size_t n = s->nheap, i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && heap_less(s->heap[c + 1], s->heap[c]))
      c++;
    if (!heap_less(s->heap[c], st))
      break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (n > 0)
    s->heap[i] = st;
  return top;
}

static scan_stream *stream_for(fm_log_scan *s, uint32_t filer_id)
{
  for (size_t i = 0; i < s->nstreams; i++)
    if (s->streams[i]->filer_id == filer_id)
      return s->streams[i];
  if (s->nstreams == s->streams_cap) {
    size_t cap = s->streams_cap > 0 ? s->streams_cap * 2 : 4;
    scan_stream **st = realloc(s->streams, cap * sizeof *st);
    if (st == NULL)
      return NULL;
    s->streams = st;
    scan_stream **h = realloc(s->heap, cap * sizeof *h);
    if (h == NULL)
      return NULL;
    s->heap = h;
    s->streams_cap = cap;
  }
  scan_stream *st = calloc(1, sizeof *st);
  if (st == NULL)
    return NULL;
  st->filer_id = filer_id;
  st->last_ts = INT64_MIN;
  s->streams[s->nstreams++] = st;
  return st;
}

/* Ends the stream's current file. */
static void stream_end_file(fm_log_scan *s, scan_stream *st)
{
  scan_file *f = st->cur;
  st->cur = NULL;
  file_drop(s, f);
}

/*
 * Reads the stream's next record with after_ns < ts into its head and puts it in the heap; a stream with nothing left
 * in its files stays out. Ends files at their end, at a torn last record and at a missing chunk. Returns 0 or the
 * scan's error.
 */
static int stream_advance(fm_log_scan *s, scan_stream *st, char *err, size_t errlen)
{
  char msg[FM_ERR_LEN];
  for (;;) {
    scan_file *f = st->cur;
    if (f == NULL) {
      f = st->qhead;
      if (f == NULL)
        return 0;
      st->qhead = f->qnext;
      if (st->qhead == NULL)
        st->qtail = NULL;
      f->qnext = NULL;
      st->cur = f;
      fm_log_reader_init_stream(&f->reader, f->info->chunks[0].offset);
      f->reading = true;
      s->files_opened++;
    }
    const char *path = f->info->path;
    fm_log_record rec;
    msg[0] = '\0';
    int rc = fm_log_reader_next(&f->reader, &rec, msg, sizeof msg);
    if (rc == 0) {
      if (rec.ts_ns <= st->last_ts) {
        if (f->dropped++ == 0)
          fm_log_warn("log scan: %s offset %" PRIu64 ": ts %" PRId64 " is not after %" PRId64
                      ", the previous of filer %08" PRIx32 "; dropping such records",
                      path, rec.pos, rec.ts_ns, st->last_ts, st->filer_id);
        continue;
      }
      st->last_ts = rec.ts_ns;
      if (rec.ts_ns <= s->after_ns)
        continue;
      st->head = rec;
      heap_push(s, st);
      return 0;
    }
    if (rc == FM_ENOTFOUND) {
      if (f->fed_last) {
        stream_end_file(s, st);
        continue;
      }
      free(f->fed);
      f->fed = NULL;
      const fm_log_chunk *c = &f->info->chunks[f->next_take];
      void *buf;
      size_t len;
      rc = file_take(s, f, &buf, &len, msg, sizeof msg);
      if (rc == FM_ENOTFOUND) {
        fm_log_warn("log scan: %s offset %" PRIu64 ": %s (retention?); skipping the rest of the file", path, c->offset,
                    msg);
        stream_end_file(s, st);
        continue;
      }
      if (rc == FM_EDECODE && s->opt.skip_damaged) {
        fm_log_warn("log scan: %s offset %" PRIu64 ": %s; skipping the rest of the file", path, c->offset, msg);
        stream_end_file(s, st);
        continue;
      }
      if (rc != 0) {
        set_path(s, f);
        return scan_fail(s, rc, err, errlen, "%s offset %" PRIu64 ": %s", path, c->offset, msg);
      }
      f->fed = buf;
      f->fed_last = f->next_take == f->info->nchunks;
      fm_log_reader_feed(&f->reader, buf, len, f->fed_last); /* cannot fail: the reader asked for more */
      continue;
    }
    uint64_t pos = fm_log_reader_pos(&f->reader);
    if (rc == FM_EDECODE && fm_log_reader_torn(&f->reader)) {
      fm_log_warn("log scan: %s offset %" PRIu64 ": %s; the file ends there", path, pos, msg);
      stream_end_file(s, st);
      continue;
    }
    if (rc == FM_EDECODE && s->opt.skip_damaged) {
      fm_log_warn("log scan: %s offset %" PRIu64 ": %s; skipping the rest of the file", path, pos, msg);
      stream_end_file(s, st);
      continue;
    }
    set_path(s, f);
    return scan_fail(s, rc, err, errlen, "%s offset %" PRIu64 ": %s", path, pos,
                     msg[0] != '\0' ? msg : fm_strerror(rc));
  }
}

/* Lists files until SCAN_LOOKAHEAD_FILES are planned or the listing ends. */
static int plan_fill(fm_log_scan *s, char *err, size_t errlen)
{
  while (s->listing != NULL && s->nplanned < SCAN_LOOKAHEAD_FILES) {
    fm_log_file *info;
    char msg[FM_ERR_LEN] = "";
    int rc = fm_log_files_next(s->listing, &info, msg, sizeof msg);
    if (rc == FM_ENOTFOUND) {
      fm_log_files_free(s->listing);
      s->listing = NULL;
      break;
    }
    if (rc == FM_EDECODE && s->opt.skip_damaged) {
      fm_log_warn("log scan: %s; skipping the file", msg);
      continue;
    }
    if (rc == FM_EDECODE) {
      /* reported when the merge gets to that file's minute, after the records before it */
      const fm_log_files *l = s->listing;
      s->list_rc = rc;
      memcpy(s->list_err, msg, sizeof s->list_err);
      memcpy(s->list_err_path, l->path, sizeof s->list_err_path);
      s->list_err_ts = l->files[l->pos - 1].file_ts_ns;
      fm_log_files_free(s->listing);
      s->listing = NULL;
      break;
    }
    if (rc != 0)
      return scan_fail(s, rc, err, errlen, "%s", msg[0] != '\0' ? msg : fm_strerror(rc));
    rc = file_add(s, info);
    if (rc != 0)
      return scan_fail(s, rc, err, errlen, "log scan: out of memory");
  }
  return 0;
}

/* Moves the first planned file to its filer id's stream, which starts reading it if it was idle. */
static int join_planned(fm_log_scan *s, char *err, size_t errlen)
{
  scan_file *f = s->phead;
  s->phead = f->qnext;
  if (s->phead == NULL)
    s->ptail = NULL;
  s->nplanned--;
  f->qnext = NULL;
  scan_stream *st = stream_for(s, f->info->filer_id);
  if (st == NULL) {
    file_drop(s, f);
    return scan_fail(s, FM_ENOMEM, err, errlen, "log scan: out of memory");
  }
  if (st->qtail != NULL)
    st->qtail->qnext = f;
  else
    st->qhead = f;
  st->qtail = f;
  if (st->cur == NULL) /* idle: not in the heap, nothing queued before f */
    return stream_advance(s, st, err, errlen);
  return 0;
}

int fm_log_scan_open(fm_store *store, fm_chunk_store *cs, int64_t after_ns, int64_t until_ns,
                     const fm_log_scan_options *opt, fm_log_scan **out, char *err, size_t errlen)
{
  *out = NULL;
  if (after_ns < 0 || until_ns < 0) {
    snprintf(err, errlen, "log scan: negative time (after %" PRId64 ", until %" PRId64 ")", after_ns, until_ns);
    return FM_EINVAL;
  }
  fm_log_scan *s = calloc(1, sizeof *s);
  if (s == NULL)
    return FM_ENOMEM;
  if (pthread_mutex_init(&s->mu, NULL) != 0) {
    free(s);
    return FM_ENOMEM;
  }
  if (pthread_cond_init(&s->cond, NULL) != 0) {
    pthread_mutex_destroy(&s->mu);
    free(s);
    return FM_ENOMEM;
  }
  s->store = store;
  s->cs = cs;
  s->after_ns = after_ns;
  s->until_ns = until_ns;
  s->last_ts = after_ns;
  if (opt != NULL)
    s->opt = *opt;
  s->budget = s->opt.readahead_bytes > 0 ? s->opt.readahead_bytes : FM_LOG_SCAN_READAHEAD_DEFAULT;
  if (until_ns != 0 && until_ns <= after_ns) {
    s->ended = true; /* an empty range */
  } else {
    int rc = fm_log_files_open(store, after_ns, until_ns, &s->listing, err, errlen);
    if (rc != 0) {
      fm_log_scan_close(s);
      return rc;
    }
  }
  *out = s;
  return 0;
}

int fm_log_scan_next(fm_log_scan *s, fm_log_record *rec, char *err, size_t errlen)
{
  if (s->failed != 0) {
    snprintf(err, errlen, "%s", s->fail_err);
    return s->failed;
  }
  if (s->ended)
    return FM_ENOTFOUND;
  if (s->popped != NULL) {
    scan_stream *st = s->popped;
    s->popped = NULL;
    int rc = stream_advance(s, st, err, errlen);
    if (rc != 0)
      return rc;
  }
  for (;;) {
    int rc = plan_fill(s, err, errlen);
    if (rc != 0)
      return rc;
    scan_stream *top = s->nheap > 0 ? s->heap[0] : NULL;
    /* A file named for minute M holds no ts below M: it joins the merge before any record at or after M leaves. */
    if (s->phead != NULL && (top == NULL || s->phead->info->file_ts_ns <= top->head.ts_ns)) {
      rc = join_planned(s, err, errlen);
      if (rc != 0)
        return rc;
      continue;
    }
    if (s->phead == NULL && s->list_rc != 0 && (top == NULL || s->list_err_ts <= top->head.ts_ns)) {
      memcpy(s->path, s->list_err_path, sizeof s->path);
      s->path_seq = 0;
      return scan_fail(s, s->list_rc, err, errlen, "%s", s->list_err);
    }
    if (top == NULL || (s->until_ns != 0 && top->head.ts_ns > s->until_ns)) {
      s->ended = true;
      scan_release(s);
      return FM_ENOTFOUND;
    }
    heap_pop(s);
    s->popped = top;
    *rec = top->head;
    s->last_ts = rec->ts_ns;
    s->records++;
    set_path(s, top->cur);
    return 0;
  }
}

int64_t fm_log_scan_last_ts(const fm_log_scan *s)
{
  return s->last_ts;
}

const char *fm_log_scan_file(const fm_log_scan *s)
{
  return s->path;
}

void fm_log_scan_get_stats(fm_log_scan *s, fm_log_scan_stats *out)
{
  memset(out, 0, sizeof *out);
  out->records = s->records;
  out->files = s->files_opened;
  pthread_mutex_lock(&s->mu);
  out->chunks = s->chunks_fetched;
  out->bytes = s->bytes_fetched;
  out->fetch_waits = s->fetch_waits;
  pthread_mutex_unlock(&s->mu);
}

void fm_log_scan_close(fm_log_scan *s)
{
  if (s == NULL)
    return;
  scan_release(s);
  for (size_t i = 0; i < s->nstreams; i++)
    free(s->streams[i]);
  free(s->streams);
  free(s->heap);
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
