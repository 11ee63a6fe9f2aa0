/* Status codes shared by every filermeta module: 0 or a negative FM_E* value.
 * Leaf module; any thread. fm_strerror() names each code. */
#ifndef FM_ERROR_H
#define FM_ERROR_H

#include <stddef.h>

/* Length of the caller-owned buffers that carry a human-readable reason. */
#define FM_ERR_LEN 256

typedef enum fm_err {
  FM_OK = 0,
  FM_EINVAL = -1,       /* bad argument or malformed input */
  FM_ENOMEM = -2,       /* allocation failed */
  FM_EIO = -3,          /* read/write/system call failed */
  FM_ENOTFOUND = -4,    /* no such thing */
  FM_EEXIST = -5,       /* already exists / already registered */
  FM_EBUSY = -6,        /* an operation of this kind is already in flight */
  FM_ECANCELED = -7,    /* the call or stream is over */
  FM_EDECODE = -8,      /* bytes do not decode as the expected message */
  FM_ETOOBIG = -9,      /* over a size limit */
  FM_ESHUTDOWN = -10,   /* the server is shutting down */
  FM_EADDR = -11,       /* an address could not be bound or resolved */
  FM_EPERM = -12,       /* permission denied */
  FM_ETIMEDOUT = -13,   /* a deadline passed */
  FM_EUNAVAILABLE = -14 /* the peer could not be reached */
} fm_err;

/* Returns a static, never-NULL description of `code` (0 or an FM_E* value). */
const char *fm_strerror(int code);

#endif
