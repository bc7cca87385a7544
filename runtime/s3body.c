/* s3body.c - reading and hashing request bodies (see s3body.h). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ascii.h"
#include "s3body.h"

bool s3body_read(const s3body *b, size_t off, char *p, size_t n) {
  if (b->data) {
    memcpy(p, b->data + off, n);
    return true;
  }
  uint64_t at = b->offset + off;
  while (n) {
    ssize_t got = pread(b->fd, p, n, (off_t)at);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      if (got == 0) errno = EIO; /* the file is shorter than it was */
      return false;
    }
    p += got;
    at += (uint64_t)got;
    n -= (size_t)got;
  }
  return true;
}

int s3body_hash(const s3body *b, const EVP_MD *sha256, char sha_hex[65], s3sink_err *err) {
  EVP_MD_CTX *sc = EVP_MD_CTX_new();
  int rc = S3SINK_OK;
  bool ok = sc && EVP_DigestInit_ex(sc, sha256, NULL) == 1;
  char chunk[64 * 1024];
  for (size_t off = 0; ok && off < b->len;) {
    size_t n = b->len - off < sizeof chunk ? b->len - off : sizeof chunk;
    const char *p = b->data ? b->data + off : chunk;
    if (!b->data && !s3body_read(b, off, chunk, n)) {
      rc = err_set(err, S3SINK_EINVAL, "cannot read an object's body from its file: %s",
                   strerror(errno));
      break;
    }
    ok = EVP_DigestUpdate(sc, p, n) == 1;
    off += n;
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int dl = 0;
  if (rc == S3SINK_OK && ok && EVP_DigestFinal_ex(sc, d, &dl) == 1 && dl == 32)
    ascii_hex(d, 32, sha_hex);
  else
    ok = false;
  if (rc == S3SINK_OK && !ok) rc = err_set(err, S3SINK_ENOMEM, "hashing a body failed (OpenSSL)");
  EVP_MD_CTX_free(sc);
  return rc;
}

int s3body_hash_parts(const s3body *b, const EVP_MD *sha256, uint64_t part_len,
                      unsigned char (*parts)[32], char whole_hex[65], s3sink_err *err) {
  if (part_len == 0) return err_set(err, S3SINK_EINVAL, "hashing parts of 0 bytes");
  EVP_MD_CTX *whole = EVP_MD_CTX_new(), *part = EVP_MD_CTX_new();
  int rc = S3SINK_OK;
  bool ok = whole && part && EVP_DigestInit_ex(whole, sha256, NULL) == 1;
  char chunk[64 * 1024];
  size_t index = 0;
  uint64_t part_end = 0; /* where the part being hashed ends; 0: none started */
  for (uint64_t off = 0; ok && off < b->len;) {
    if (off == part_end) {
      ok = EVP_DigestInit_ex(part, sha256, NULL) == 1;
      part_end = off + part_len < b->len ? off + part_len : b->len;
    }
    uint64_t left = part_end - off;
    size_t n = left < sizeof chunk ? (size_t)left : sizeof chunk;
    const char *p = b->data ? b->data + off : chunk;
    if (!b->data && !s3body_read(b, (size_t)off, chunk, n)) {
      rc = err_set(err, S3SINK_EINVAL, "cannot read an object's body from its file: %s",
                   strerror(errno));
      break;
    }
    ok = ok && EVP_DigestUpdate(whole, p, n) == 1 && EVP_DigestUpdate(part, p, n) == 1;
    off += n;
    unsigned int dl = 0;
    if (ok && off == part_end)
      ok = EVP_DigestFinal_ex(part, parts[index++], &dl) == 1 && dl == 32;
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int dl = 0;
  if (rc == S3SINK_OK && ok && EVP_DigestFinal_ex(whole, d, &dl) == 1 && dl == 32)
    ascii_hex(d, 32, whole_hex);
  else
    ok = false;
  if (rc == S3SINK_OK && !ok) rc = err_set(err, S3SINK_ENOMEM, "hashing a body failed (OpenSSL)");
  EVP_MD_CTX_free(whole);
  EVP_MD_CTX_free(part);
  return rc;
}
