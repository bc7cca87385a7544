/* cells.h - internal: one cell's text in CSV and JSON, appended to a bytebuf. The one cell
 * writer behind both the Lua `fmt` functions (numfmt.c) and the native encoders
 * (encoders.c), so the two cannot drift apart. */
#ifndef S3SINK_CELLS_H
#define S3SINK_CELLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytebuf.h"
#include "s3sink.h"

/* Column types as the cell writers tell them apart: the runtime's (options.c), where "any"
 * is not a cell's type (each of its values has its own). */
typedef s3sink_type coltype;
#define CELLS_NO_TYPE S3SINK_T_COUNT /* unknown, or "any" */

/* One value with its type; s points at bytes the caller keeps alive. */
typedef struct cell {
  bool null;
  coltype t;
  int b;
  int64_t i;
  double f;
  const char *s;
  size_t len;
} cell;

const char *cells_type_name(coltype t);

/* The cell of a host's value: its kind is its type (composites are JSON text). */
static inline cell cells_of_value(const s3sink_value *v) {
  static const coltype by_kind[] = {
      [S3SINK_V_INT] = S3SINK_T_INT,
      [S3SINK_V_FLOAT] = S3SINK_T_FLOAT,
      [S3SINK_V_BOOL] = S3SINK_T_BOOL,
      [S3SINK_V_STR] = S3SINK_T_STR,
      [S3SINK_V_BYTES] = S3SINK_T_BYTES,
      [S3SINK_V_POINTER] = S3SINK_T_POINTER,
      [S3SINK_V_DATETIME_NAIVE] = S3SINK_T_DATETIME_NAIVE,
      [S3SINK_V_DATETIME_UTC] = S3SINK_T_DATETIME_UTC,
      [S3SINK_V_DURATION] = S3SINK_T_DURATION,
      [S3SINK_V_JSON] = S3SINK_T_JSON,
  };
  cell c = {.null = v->kind == S3SINK_V_NULL, .t = by_kind[v->kind]};
  switch (v->kind) {
  case S3SINK_V_FLOAT: c.f = v->u.f; break;
  case S3SINK_V_BOOL: c.b = v->u.b; break;
  case S3SINK_V_STR:
  case S3SINK_V_BYTES:
  case S3SINK_V_POINTER:
  case S3SINK_V_JSON:
    c.s = v->u.s.ptr ? v->u.s.ptr : "";
    c.len = v->u.s.ptr ? v->u.s.len : 0;
    break;
  default: c.i = v->u.i; break;
  }
  return c;
}

/* Each appends to b and returns false when b is full (its cap, or out of memory); what
 * was appended then is the caller's to roll back (b->len from before). */

/* CSV cell text before quoting, with the quote character q doubled when q != 0. */
bool cells_csv(bytebuf *b, const cell *c, char q);
/* A JSON value: numbers, true/false/null, strings escaped, composites embedded. */
bool cells_json(bytebuf *b, const cell *c);
/* A JSON string with serde_json's escapes: '"', '\\' and 0x00-0x1F only. */
bool cells_json_string(bytebuf *b, const char *s, size_t n);
/* s with every byte equal to q doubled (the quotes around it are the caller's). */
bool cells_doubled(bytebuf *b, const char *s, size_t n, char q);
bool cells_base64(bytebuf *b, const unsigned char *s, size_t n);
bool cells_int(bytebuf *b, int64_t v);

/* Whole-row pieces shared by fmt.csv_row / fmt.json_row and the native encoders. */
/* A CSV field: the cell quoted with '"' (inner quotes doubled), then the separator. */
bool cells_csv_quoted(bytebuf *b, const cell *c, const char *sep, size_t seplen);
/* The end of a CSV row: "time"<sep>"diff" and LF. */
bool cells_csv_tail(bytebuf *b, int64_t time, int64_t diff, const char *sep, size_t seplen);
/* The end of a JSON Lines row, after the columns' `"name":value,`: "diff":d,"time":t} LF. */
bool cells_json_tail(bytebuf *b, int64_t time, int64_t diff);

#endif
