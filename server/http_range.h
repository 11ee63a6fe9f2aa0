/* The value of an HTTP Range request header (RFC 9110 §14), which
 * libmicrohttpd leaves unparsed, resolved against a body's size. Called by the
 * HTTP side's chunk reads; a pure function, any thread. */
#ifndef FM_HTTP_RANGE_H
#define FM_HTTP_RANGE_H

#include <stdint.h>

typedef enum fm_http_range {
  FM_HTTP_RANGE_WHOLE,         /* no range to honour: send the whole body with 200 */
  FM_HTTP_RANGE_PARTIAL,       /* send [offset, offset + length) with 206 */
  FM_HTTP_RANGE_UNSATISFIABLE, /* 416; its Content-Range gives only the size */
} fm_http_range;

/*
 * Resolves `header` (NULL when the request had none) for a body of `size`
 * bytes. One range of the "bytes" unit is honoured: "a-b" (b past the end is
 * cut to the end), "a-", and the suffix "-n" (the last n bytes, all of them if
 * n >= size). A range that starts at or past the end, a suffix of 0 bytes and
 * any range of an empty body are unsatisfiable. A header that does not parse,
 * names another unit, or holds several ranges gives FM_HTTP_RANGE_WHOLE: the
 * RFC lets a server ignore such a header. *offset and *length are set for
 * FM_HTTP_RANGE_PARTIAL only (length >= 1).
 */
fm_http_range fm_http_range_parse(const char *header, uint64_t size, uint64_t *offset, uint64_t *length);

#endif
