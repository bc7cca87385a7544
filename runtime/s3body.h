/* s3body.h - internal: a request body, in memory or in a file, read in pieces (libcurl
 * asks for it in pieces, and may rewind it to send it again) and hashed in one pass
 * before it is sent. */
#ifndef S3SINK_S3BODY_H
#define S3SINK_S3BODY_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "error.h"

/* A request body: in memory, or read with pread() from a file (from offset 0). */
typedef struct s3body {
  const char *data; /* NULL: read from fd */
  int fd;
  size_t len;
} s3body;

/* Reads n bytes of the body at offset off into p; false (errno set) on a read error or a
 * file shorter than the body. */
bool s3body_read(const s3body *b, size_t off, char *p, size_t n);

/* The body's SHA-256 as lowercase hex: one pass over it. */
int s3body_hash(const s3body *b, const EVP_MD *sha256, char sha_hex[65], s3sink_err *err);

#endif
