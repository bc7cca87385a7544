/* error.c - error codes and the one helper that fills an s3sink_err. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

const char *s3sink_strerror(int code) {
  switch (code) {
  case S3SINK_OK: return "ok";
  case S3SINK_EINVAL: return "invalid argument or configuration";
  case S3SINK_ESCRIPT: return "Lua script error";
  case S3SINK_ENOMEM: return "out of memory or buffer limit reached";
  case S3SINK_EHTTP: return "HTTP transport error";
  case S3SINK_ES3: return "S3 error response";
  case S3SINK_ESTATE: return "operation not allowed in the sink's state";
  case S3SINK_EIO: return "spool I/O error";
  case S3SINK_EAGAIN: return "the row waits for room in the buffer";
  default: return "unknown error";
  }
}

int err_set(s3sink_err *err, int code, const char *fmt, ...) {
  if (err) {
    memset(err, 0, sizeof *err);
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void err_prefix(s3sink_err *err, const char *fmt, ...) {
  if (!err) return;
  char head[sizeof err->msg], old[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(head, sizeof head, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  old[sizeof old - 1] = 0;
  size_t hl = strlen(head), ol = strlen(old), room = sizeof err->msg - 1 - hl;
  if (ol > room) ol = room;
  memcpy(err->msg, head, hl);
  memcpy(err->msg + hl, old, ol);
  err->msg[hl + ol] = 0;
}

void err_join_names(char *buf, size_t cap, const char *quote,
                    const char *(*name_at)(size_t i, void *ud), void *ud) {
  size_t used = 0;
  buf[0] = 0;
  const char *name;
  for (size_t i = 0; (name = name_at(i, ud)); i++) {
    int n = snprintf(buf + used, cap - used, "%s%s%s%s", i ? ", " : "", quote, name, quote);
    if (n < 0 || (size_t)n >= cap - used) break;
    used += (size_t)n;
  }
}
