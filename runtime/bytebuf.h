/* bytebuf.h - internal: a growable byte buffer with a hard cap. Init cannot fail;
 * appends fail past the cap. Reused across batches (reset, not freed).
 *
 * A buffer that asks for it (map_large: an object's body) takes capacities of
 * BYTEBUF_MAP_MIN and more as a mapping of its own (Linux; elsewhere malloc), grown with
 * mremap (no copy) and unmapped when freed. Through malloc, bodies of a few MB come from
 * the heap, where an object freed on the sink's thread leaves holes that the next, slightly
 * larger body cannot use: the process's memory crept up by megabytes a minute while
 * streaming. Whoever takes such a buffer's data releases it with bytebuf_free. */
#ifndef S3SINK_BYTEBUF_H
#define S3SINK_BYTEBUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct bytebuf {
  char *data;
  size_t len, cap, max;
  bool map_large; /* capacities of BYTEBUF_MAP_MIN and more are mappings (see above) */
  bool mapped;    /* data is such a mapping */
} bytebuf;

#define BYTEBUF_MAP_MIN ((size_t)1 << 20)

static inline void bytebuf_init(bytebuf *b, size_t max) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->max = max;
  b->map_large = b->mapped = false;
}

/* bytebuf.c: the capacity ncap as a mapping; false when out of memory (b unchanged). */
bool bytebuf_map(bytebuf *b, size_t ncap);
/* bytebuf.c: unmaps b's mapping (bytebuf_free's part) */
void bytebuf_unmap(bytebuf *b);
/* bytebuf.c: the capacity cut down to what is used (a page's worth for a mapping) */
void bytebuf_shrink(bytebuf *b);

/* Ensures room for `extra` more bytes; false when over the cap or out of memory. */
static inline bool bytebuf_reserve(bytebuf *b, size_t extra) {
  if (extra > b->max - b->len) return false;
  size_t need = b->len + extra;
  if (need <= b->cap) return true;
  size_t ncap = b->cap ? b->cap : 4096;
  while (ncap < need) ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
  if (ncap > b->max) ncap = b->max;
  if (b->mapped || (b->map_large && ncap >= BYTEBUF_MAP_MIN)) return bytebuf_map(b, ncap);
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
  if (b->mapped) bytebuf_unmap(b);
  else free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->mapped = false;
}

#endif
