/* bytebuf.c - the mapped capacities of large buffers (see bytebuf.h). Without mremap
 * (not Linux) a large capacity is malloc's like any other, and `mapped` stays false. */
#define _GNU_SOURCE /* mremap */
#include <string.h>
#include <unistd.h>

#include "bytebuf.h"

#ifdef __linux__
#include <sys/mman.h>

static size_t page_rounded(size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  return n > SIZE_MAX - page ? n : (n + page - 1) / page * page;
}
#endif

bool bytebuf_map(bytebuf *b, size_t ncap) {
#ifdef __linux__
  ncap = page_rounded(ncap);
  void *p;
  if (b->mapped) {
    p = mremap(b->data, b->cap, ncap, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) return false;
  } else {
    p = mmap(NULL, ncap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    if (b->len) memcpy(p, b->data, b->len);
    free(b->data);
    b->mapped = true;
  }
#else
  char *p = realloc(b->data, ncap);
  if (!p) return false;
#endif
  b->data = p;
  b->cap = ncap;
  return true;
}

void bytebuf_unmap(bytebuf *b) {
#ifdef __linux__
  if (b->data) munmap(b->data, b->cap);
#else
  free(b->data);
#endif
}

void bytebuf_shrink(bytebuf *b) {
#ifdef __linux__
  if (b->mapped) { /* in place: a smaller mapping never moves */
    size_t ncap = page_rounded(b->len ? b->len : 1);
    if (ncap < b->cap && mremap(b->data, b->cap, ncap, 0) != MAP_FAILED) b->cap = ncap;
    return;
  }
#endif
  char *p = realloc(b->data, b->len ? b->len : 1);
  if (p) {
    b->data = p;
    b->cap = b->len;
  }
}
