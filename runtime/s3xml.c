/* s3xml.c - element lookup and text decoding for S3's XML answers (see s3xml.h). */
#include <stdio.h>
#include <string.h>

#include "s3xml.h"

/* Bounded substring search: the documents are not NUL-terminated where we look. */
static const char *find(const char *s, const char *end, const char *needle) {
  size_t n = strlen(needle);
  for (; s && s < end && (size_t)(end - s) >= n; s++)
    if (*s == needle[0] && memcmp(s, needle, n) == 0) return s;
  return NULL;
}

static bool put_utf8(bytebuf *b, unsigned long cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  return bytebuf_append(b, u, n);
}

/* Appends the character named by the entity name[0..len) ("amp", "#65", "#x41"). */
static bool put_entity(bytebuf *out, const char *name, size_t len) {
  static const struct {
    const char *name;
    char ch;
  } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
  for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
    if (strlen(named[i].name) == len && memcmp(name, named[i].name, len) == 0)
      return bytebuf_append(out, &named[i].ch, 1);
  if (len < 2 || name[0] != '#') return false;
  bool hex = name[1] == 'x' || name[1] == 'X';
  const char *d = name + (hex ? 2 : 1), *end = name + len;
  if (d == end) return false;
  unsigned long cp = 0;
  for (; d < end; d++) {
    int v;
    if (*d >= '0' && *d <= '9')
      v = *d - '0';
    else if (hex && *d >= 'a' && *d <= 'f')
      v = *d - 'a' + 10;
    else if (hex && *d >= 'A' && *d <= 'F')
      v = *d - 'A' + 10;
    else
      return false;
    cp = cp * (hex ? 16 : 10) + (unsigned long)v;
    if (cp > 0x10FFFF) return false;
  }
  if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return false; /* not XML characters */
  return put_utf8(out, cp);
}

bool s3xml_text(const char *p, size_t n, bytebuf *out) {
  out->len = 0;
  const char *end = p + n;
  while (p < end) {
    if (*p != '&') {
      const char *amp = memchr(p, '&', (size_t)(end - p));
      size_t run = amp ? (size_t)(amp - p) : (size_t)(end - p);
      if (!bytebuf_append(out, p, run)) return false;
      p += run;
      continue;
    }
    const char *semi = memchr(p, ';', (size_t)(end - p));
    if (!semi || semi - p > 12) return false;
    if (!put_entity(out, p + 1, (size_t)(semi - p - 1))) return false;
    p = semi + 1;
  }
  return bytebuf_terminate(out);
}

bool s3xml_find(const char *s, const char *end, const char *tag, const char **ts,
                const char **te, const char **after) {
  char open[72], close[72];
  snprintf(open, sizeof open, "<%s", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  size_t olen = strlen(open);
  const char *o = s;
  while ((o = find(o, end, open)) != NULL) {
    const char *q = o + olen; /* "<Key" must not match "<KeyCount" */
    if (q < end && (*q == '>' || *q == '/' || *q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
      break;
    o = q;
  }
  if (!o) return false;
  const char *gt = memchr(o + olen, '>', (size_t)(end - (o + olen)));
  if (!gt) return false;
  if (gt[-1] == '/') { /* <tag/> */
    *ts = *te = gt + 1;
    if (after) *after = gt + 1;
    return true;
  }
  const char *c = find(gt + 1, end, close);
  if (!c) return false;
  *ts = gt + 1;
  *te = c;
  if (after) *after = c + strlen(close);
  return true;
}

void s3xml_copy(const char *s, const char *end, const char *tag, char *dst, size_t cap) {
  const char *ts, *te;
  dst[0] = '\0';
  if (!s3xml_find(s, end, tag, &ts, &te, NULL)) return;
  bytebuf tmp;
  bytebuf_init(&tmp, 1 << 20);
  if (s3xml_text(ts, (size_t)(te - ts), &tmp)) snprintf(dst, cap, "%s", tmp.data);
  bytebuf_free(&tmp);
}
