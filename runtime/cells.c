/* cells.c - one cell's CSV or JSON text appended to a bytebuf (see cells.h). Each writer
 * reserves what it needs, then writes in place: one capacity check per piece, no
 * temporaries. */
#include <string.h>

#include "cells.h"
#include "s3sink_text.h"

const char *cells_type_name(coltype t) {
  return t < CELLS_NO_TYPE ? s3sink_column_type_info(t)->name : "unknown";
}

/* Appends n bytes known to fit (the caller reserved them). */
static inline void put(bytebuf *b, const void *p, size_t n) {
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static inline bool put1(bytebuf *b, char c) {
  if (!bytebuf_reserve(b, 1)) return false;
  b->data[b->len++] = c;
  return true;
}

bool cells_int(bytebuf *b, int64_t v) {
  if (!bytebuf_reserve(b, S3SINK_TEXT_NUMBUF)) return false;
  b->len += s3sink_text_int(b->data + b->len, v);
  return true;
}

bool cells_base64(bytebuf *b, const unsigned char *s, size_t n) {
  size_t out = (n + 2) / 3 * 4;
  if (!bytebuf_reserve(b, out)) return false;
  b->len += s3sink_text_base64(s, n, b->data + b->len);
  return true;
}

bool cells_doubled(bytebuf *b, const char *s, size_t n, char q) {
  const char *end = s + n, *p;
  while ((p = memchr(s, q, (size_t)(end - s))) != NULL) {
    size_t run = (size_t)(p - s) + 1;
    if (!bytebuf_reserve(b, run + 1)) return false;
    put(b, s, run);
    b->data[b->len++] = q;
    s = p + 1;
  }
  return bytebuf_append(b, s, (size_t)(end - s));
}

bool cells_json_string(bytebuf *b, const char *s, size_t n) {
  /* room for the common case, no escapes; each escape reserves its own */
  if (!bytebuf_reserve(b, n + 2)) return false;
  b->data[b->len++] = '"';
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    char e[6];
    size_t el = s3sink_text_json_escape(c, e);
    if (!bytebuf_reserve(b, i - run + el + (n - i) + 1)) return false;
    put(b, s + run, i - run);
    put(b, e, el);
    run = i + 1;
  }
  if (!bytebuf_reserve(b, n - run + 1)) return false;
  put(b, s + run, n - run);
  b->data[b->len++] = '"';
  return true;
}

/* Numbers and datetimes: written in place (S3SINK_TEXT_NUMBUF covers each, with its NUL). */
static bool number(bytebuf *b, const cell *c, bool json) {
  if (!bytebuf_reserve(b, S3SINK_TEXT_NUMBUF)) return false;
  char *p = b->data + b->len;
  switch (c->t) {
  case S3SINK_T_FLOAT:
    b->len += json ? s3sink_text_float_json(p, c->f) : s3sink_text_float_csv(p, c->f);
    break;
  case S3SINK_T_DATETIME_NAIVE:
  case S3SINK_T_DATETIME_UTC: b->len += s3sink_text_datetime(p, c->i, c->t == S3SINK_T_DATETIME_UTC); break;
  default: b->len += s3sink_text_int(p, c->i); break;
  }
  return true;
}

bool cells_csv(bytebuf *b, const cell *c, char q) {
  if (c->null) return bytebuf_append(b, "None", 4);
  switch (c->t) {
  case S3SINK_T_INT:
  case S3SINK_T_DURATION:
  case S3SINK_T_FLOAT:
  case S3SINK_T_DATETIME_NAIVE:
  case S3SINK_T_DATETIME_UTC: return number(b, c, false); /* numbers and dates never contain a quote */
  case S3SINK_T_BOOL: return c->b ? bytebuf_append(b, "True", 4) : bytebuf_append(b, "False", 5);
  case S3SINK_T_BYTES: return cells_base64(b, (const unsigned char *)c->s, c->len);
  default: /* str, pointer and the JSON texts: raw */
    return q ? cells_doubled(b, c->s, c->len, q) : bytebuf_append(b, c->s, c->len);
  }
}

bool cells_json(bytebuf *b, const cell *c) {
  if (c->null) return bytebuf_append(b, "null", 4);
  switch (c->t) {
  case S3SINK_T_INT:
  case S3SINK_T_DURATION:
  case S3SINK_T_FLOAT: return number(b, c, true);
  case S3SINK_T_BOOL: return c->b ? bytebuf_append(b, "true", 4) : bytebuf_append(b, "false", 5);
  case S3SINK_T_DATETIME_NAIVE:
  case S3SINK_T_DATETIME_UTC: return put1(b, '"') && number(b, c, true) && put1(b, '"');
  case S3SINK_T_BYTES:
    return put1(b, '"') && cells_base64(b, (const unsigned char *)c->s, c->len) && put1(b, '"');
  case S3SINK_T_STR:
  case S3SINK_T_POINTER: return cells_json_string(b, c->s, c->len);
  default: /* json, tuple, list, array: already JSON text, embedded */
    return bytebuf_append(b, c->s, c->len);
  }
}

bool cells_csv_quoted(bytebuf *b, const cell *c, const char *sep, size_t seplen) {
  return put1(b, '"') && cells_csv(b, c, '"') && put1(b, '"') && bytebuf_append(b, sep, seplen);
}

bool cells_csv_tail(bytebuf *b, int64_t time, int64_t diff, const char *sep, size_t seplen) {
  return put1(b, '"') && cells_int(b, time) && put1(b, '"') && bytebuf_append(b, sep, seplen) &&
         put1(b, '"') && cells_int(b, diff) && bytebuf_append(b, "\"\n", 2);
}

bool cells_json_tail(bytebuf *b, int64_t time, int64_t diff) {
  return bytebuf_append(b, "\"diff\":", 7) && cells_int(b, diff) &&
         bytebuf_append(b, ",\"time\":", 8) && cells_int(b, time) && bytebuf_append(b, "}\n", 2);
}
