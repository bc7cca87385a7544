/* compress.c - gzip (zlib) and zstd (libzstd) compression of one object's body (see
 * compress.h). Input is read in chunks, so a body in a spool file is never loaded whole;
 * output goes to a growing buffer or a file. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "compress.h"

#define CHUNK ((size_t)256 * 1024)

static const compress_codec_info codecs[COMPRESS_COUNT] = {
    [COMPRESS_NONE] = {"none", NULL, NULL, 0, 0, 0},
    [COMPRESS_GZIP] = {"gzip", "gz", "application/gzip", 1, 9, 6},
    /* 20 to 22 ("ultra") take windows of up to 128 MiB per compressor: not offered */
    [COMPRESS_ZSTD] = {"zstd", "zst", "application/zstd", 1, 19, ZSTD_CLEVEL_DEFAULT},
};

const compress_codec_info *compress_info(compress_codec c) {
  return (unsigned)c < COMPRESS_COUNT ? &codecs[c] : &codecs[COMPRESS_NONE];
}

int compress_find(const char *name) {
  for (int c = 0; name && c < COMPRESS_COUNT; c++)
    if (strcmp(codecs[c].name, name) == 0) return c;
  return -1;
}

const char *compress_name_at(size_t i, void *ud) {
  (void)ud;
  return i < COMPRESS_COUNT ? codecs[i].name : NULL;
}

static int emit(compress_out *out, const void *p, size_t n, s3sink_err *err) {
  if (!n) return S3SINK_OK;
  if (out->buf) {
    if (!bytebuf_append(out->buf, p, n))
      return err_set(err, S3SINK_ENOMEM, "out of memory compressing an object");
  } else {
    const char *q = p;
    for (size_t left = n; left;) {
      ssize_t w = pwrite(out->fd, q, left, (off_t)(out->len + (n - left)));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        return err_set(err, S3SINK_EIO, "cannot write a compressed object: %s",
                       strerror(w < 0 ? errno : ENOSPC));
      q += w;
      left -= (size_t)w;
    }
  }
  out->len += n;
  return S3SINK_OK;
}

/* The next piece of input: borrowed from memory, or read into `chunk`. */
static int next_input(const s3body *in, size_t off, char *chunk, const char **p, size_t *n,
                      s3sink_err *err) {
  *n = in->len - off < CHUNK ? in->len - off : CHUNK;
  if (in->data) {
    *p = in->data + off;
    return S3SINK_OK;
  }
  *p = chunk;
  if (!s3body_read(in, off, chunk, *n))
    return err_set(err, S3SINK_EIO, "cannot read an object's body from its file: %s",
                   strerror(errno));
  return S3SINK_OK;
}

static int gzip_body(int level, const s3body *in, compress_out *out, char *chunk, char *obuf,
                     s3sink_err *err) {
  z_stream z;
  memset(&z, 0, sizeof z);
  /* 15 + 16: the largest window, with a gzip header (mtime 0) and trailer */
  if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return err_set(err, S3SINK_ENOMEM, "zlib: cannot start a gzip compressor");
  int rc = S3SINK_OK;
  size_t off = 0;
  for (bool last = false; rc == S3SINK_OK && !last;) {
    const char *p;
    size_t n;
    if ((rc = next_input(in, off, chunk, &p, &n, err))) break;
    off += n;
    last = off == in->len;
    z.next_in = (Bytef *)(uintptr_t)p; /* zlib does not write through next_in */
    z.avail_in = (uInt)n;
    int zr;
    do {
      z.next_out = (Bytef *)obuf;
      z.avail_out = (uInt)CHUNK;
      zr = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
      if (zr == Z_STREAM_ERROR) {
        rc = err_set(err, S3SINK_ENOMEM, "zlib: deflate failed");
        break;
      }
      rc = emit(out, obuf, CHUNK - z.avail_out, err);
    } while (rc == S3SINK_OK && (z.avail_out == 0 || (last && zr != Z_STREAM_END)));
  }
  deflateEnd(&z);
  return rc;
}

static int zstd_body(int level, const s3body *in, compress_out *out, char *chunk, char *obuf,
                     s3sink_err *err) {
  ZSTD_CCtx *cx = ZSTD_createCCtx();
  if (!cx) return err_set(err, S3SINK_ENOMEM, "libzstd: cannot start a compressor");
  /* the content size goes in the frame header (readers can size their buffer), and a
   * checksum of the content at its end */
  size_t zr = ZSTD_CCtx_setParameter(cx, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setParameter(cx, ZSTD_c_checksumFlag, 1);
  if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setParameter(cx, ZSTD_c_contentSizeFlag, 1);
  if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setPledgedSrcSize(cx, (unsigned long long)in->len);
  int rc = ZSTD_isError(zr) ? err_set(err, S3SINK_EINVAL, "libzstd: %s", ZSTD_getErrorName(zr))
                            : S3SINK_OK;
  size_t off = 0;
  for (bool last = false; rc == S3SINK_OK && !last;) {
    const char *p;
    size_t n;
    if ((rc = next_input(in, off, chunk, &p, &n, err))) break;
    off += n;
    last = off == in->len;
    ZSTD_inBuffer ib = {p, n, 0};
    for (;;) {
      ZSTD_outBuffer ob = {obuf, CHUNK, 0};
      size_t left = ZSTD_compressStream2(cx, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(left)) {
        rc = err_set(err, S3SINK_ENOMEM, "libzstd: %s", ZSTD_getErrorName(left));
        break;
      }
      if ((rc = emit(out, obuf, ob.pos, err))) break;
      if (last ? left == 0 : ib.pos == ib.size) break;
    }
  }
  ZSTD_freeCCtx(cx);
  return rc;
}

int compress_body(compress_codec codec, int level, const s3body *in, compress_out *out,
                  s3sink_err *err) {
  const compress_codec_info *ci = compress_info(codec);
  if (codec == COMPRESS_NONE) return err_set(err, S3SINK_EINVAL, "compress_body: no codec");
  if (level == 0) level = ci->default_level;
  if (level < ci->min_level || level > ci->max_level)
    return err_set(err, S3SINK_EINVAL, "compression_level %d is out of %s's range %d to %d",
                   level, ci->name, ci->min_level, ci->max_level);
  out->len = 0;
  char *chunk = in->data ? NULL : malloc(CHUNK), *obuf = malloc(CHUNK);
  int rc;
  if ((!in->data && !chunk) || !obuf)
    rc = err_set(err, S3SINK_ENOMEM, "out of memory compressing an object");
  else if (codec == COMPRESS_GZIP)
    rc = gzip_body(level, in, out, chunk, obuf, err);
  else
    rc = zstd_body(level, in, out, chunk, obuf, err);
  free(chunk);
  free(obuf);
  return rc;
}
