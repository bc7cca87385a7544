/* bytebuf.h - internal: a growable byte buffer with a hard cap. Init cannot fail;
 * appends fail past the cap. Reused across batches (reset, not freed). */
#ifndef S3SINK_BYTEBUF_H
#define S3SINK_BYTEBUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct bytebuf {
  char *data;
  size_t len, cap, max;
} bytebuf;

static inline void bytebuf_init(bytebuf *b, size_t max) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->max = max;
}

/* Ensures room for `extra` more bytes; false when over the cap or out of memory. */
static inline bool bytebuf_reserve(bytebuf *b, size_t extra) {
  if (extra > b->max - b->len) return false;
  size_t need = b->len + extra;
  if (need <= b->cap) return true;
  size_t ncap = b->cap ? b->cap : 4096;
  while (ncap < need) ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
  if (ncap > b->max) ncap = b->max;
  char *p = realloc(b->data, ncap);
  if (!p) return false;
  b->data = p;
  b->cap = ncap;
  return true;
}

static inline bool bytebuf_append(bytebuf *b, const void *p, size_t n) {
  if (!bytebuf_reserve(b, n)) return false;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return true;
}

static inline bool bytebuf_append_str(bytebuf *b, const char *s) {
  return bytebuf_append(b, s, strlen(s));
}

/* NUL-terminates the contents (the NUL is not counted in len). */
static inline bool bytebuf_terminate(bytebuf *b) {
  if (!bytebuf_reserve(b, 1)) return false;
  b->data[b->len] = '\0';
  return true;
}

static inline void bytebuf_free(bytebuf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

#endif
