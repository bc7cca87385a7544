/* s3body.h - internal: a request body, in memory or in a file, read in pieces (libcurl
 * asks for it in pieces, and may rewind it to send it again) and hashed in one pass
 * before it is sent. */
#ifndef S3SINK_S3BODY_H
#define S3SINK_S3BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "error.h"

/* A request body: in memory, or read with pread() from a file, from `offset` (a part
 * of a multipart upload is a range of the object's file; in memory, `data` points at the
 * part). */
typedef struct s3body {
  const char *data; /* NULL: read from fd */
  int fd;
  size_t len;
  uint64_t offset;  /* files: where the body starts */
} s3body;

/* Reads n bytes of the body at offset off into p; false (errno set) on a read error or a
 * file shorter than the body. */
bool s3body_read(const s3body *b, size_t off, char *p, size_t n);

/* The body's SHA-256 as lowercase hex: one pass over it. */
int s3body_hash(const s3body *b, const EVP_MD *sha256, char sha_hex[65], s3sink_err *err);

/* One pass over the body for a multipart upload: the SHA-256 of the whole body (hex) and
 * the SHA-256 of each part of part_len bytes (the last one shorter), ceil(len / part_len)
 * digests into parts. */
int s3body_hash_parts(const s3body *b, const EVP_MD *sha256, uint64_t part_len,
                      unsigned char (*parts)[32], char whole_hex[65], s3sink_err *err);

#endif
