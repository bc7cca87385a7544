/* compress.h - internal: the codecs of the `compression` option (gzip on zlib, zstd on
 * libzstd) and compressing one object's body, from memory or a file, into one
 * self-contained gzip member or zstd frame, written to memory or a file. The sink's
 * upload path calls it once per object (upload.c), never per row. */
#ifndef S3SINK_COMPRESS_H
#define S3SINK_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "bytebuf.h"
#include "error.h"
#include "s3body.h"

typedef enum compress_codec { COMPRESS_NONE = 0, COMPRESS_GZIP, COMPRESS_ZSTD, COMPRESS_COUNT } compress_codec;

typedef struct compress_codec_info {
  const char *name;          /* the option's value: "none", "gzip", "zstd" */
  const char *extension;     /* appended to the format's extension ("gz": "csv.gz"); NULL
                                for none */
  const char *content_type;  /* of the objects ("application/gzip"); NULL for none: the
                                format's */
  int min_level, max_level;  /* compression_level's range for this codec */
  int default_level;         /* the library's default */
} compress_codec_info;

/* The codec's entry (static). */
const compress_codec_info *compress_info(compress_codec c);

/* The codec called `name`, or -1. */
int compress_find(const char *name);

/* The i-th codec's name (static), NULL past the last: for messages. */
const char *compress_name_at(size_t i, void *ud);

/* Where compressed bytes go: appended to `buf`, or written to the file `fd` from its
 * offset 0 (buf NULL). `len` counts what was written. */
typedef struct compress_out {
  bytebuf *buf;
  int fd;
  uint64_t len;
} compress_out;

/* Compresses the whole body as one gzip member, or one zstd frame that records the
 * content size and a checksum. level 0: the codec's default. The output depends only on
 * the bytes, the codec, the level and the library's version. */
int compress_body(compress_codec codec, int level, const s3body *in, compress_out *out,
                  s3sink_err *err);

#endif
