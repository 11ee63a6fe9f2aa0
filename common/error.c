/* fm_strerror: one switch over every fm_err code. */
#include "error.h"

const char *fm_strerror(int code)
{
  switch ((fm_err)code) {
  case FM_OK:
    return "success";
  case FM_EINVAL:
    return "invalid argument";
  case FM_ENOMEM:
    return "out of memory";
  case FM_EIO:
    return "input/output error";
  case FM_ENOTFOUND:
    return "not found";
  case FM_EEXIST:
    return "already exists";
  case FM_EBUSY:
    return "operation already in progress";
  case FM_ECANCELED:
    return "call is over";
  case FM_EDECODE:
    return "message does not decode";
  case FM_ETOOBIG:
    return "too large";
  case FM_ESHUTDOWN:
    return "shutting down";
  case FM_EADDR:
    return "address not available";
  case FM_EPERM:
    return "permission denied";
  case FM_ETIMEDOUT:
    return "deadline exceeded";
  case FM_EUNAVAILABLE:
    return "unavailable";
  }
  return "unknown error";
}
