/*
 * Log files (log_file.h), in three parts:
 *   names     UTC calendar arithmetic without the C library's time zone state, so that it is reentrant and
 *             independent of TZ;
 *   listing   day directories once, then each day's files as the listing gets there;
 *   chunks    one chunk's bytes: needle, then decryption and gunzip for files upstream wrote.
 * The scan over them is log_scan.c.
 */
#include "log_file.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filer.pb-c.h"
#include "log.h"
#include "storage_internal.h"

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

const char *fm_log_files_path(const fm_log_files *l)
{
  return l->path;
}

int64_t fm_log_files_ts(const fm_log_files *l)
{
  return l->pos > 0 ? l->files[l->pos - 1].file_ts_ns : 0;
}

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
  int rc = fm_log_chunk_fid(pb, &c->fid);
  if (rc == FM_EINVAL) {
    snprintf(why, whylen, "chunk with a bad file id \"%.*s\"", shown(strlen(pb->file_id)), pb->file_id);
    return false;
  }
  if (rc != 0) {
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
  ProtobufCAllocator allocator = fm_storage__oom_allocator(&oom);
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
  rc = fm_log_chunk_decode(c->pb != NULL ? &c->pb->cipher_key : NULL, c->pb != NULL && c->pb->is_compressed, c->size,
                           fid, &buf, &n, err, errlen);
  if (rc != 0) {
    free(buf);
    return rc;
  }
  *data = buf;
  *len = n;
  return 0;
}
