/* keytemplate.c - key templates (see keytemplate.h, docs/partitions.md).
 *
 * A template is literal text and {placeholders}. What keeps keys unique and increasing in
 * a partition is checked here once: everything before {stamp} is fixed for a partition
 * (the prefix, the partition's values, the calendar fields of its bucket or of the flush,
 * which never goes back), and the object's name ends with {stamp} (the flush time, never
 * going back within a run), literal text, {seq} (the writer's object counter), then only
 * text, {writer_id} and {ext}. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytebuf.h"
#include "error.h"
#include "keytemplate.h"
#include "options.h"
#include "s3sink_text.h"

#define MAX_KEY_LEN 1024 /* S3's limit, in bytes */

typedef enum piece_kind {
  P_TEXT, P_PREFIX, P_DATE, P_YEAR, P_MONTH, P_DAY, P_HOUR, P_MINUTE, P_STAMP, P_SEQ,
  P_WRITER_ID, P_EXT, P_PARTITION, P_COLUMN
} piece_kind;

/* The named placeholders, in the order messages list them. */
static const struct {
  const char *name;
  piece_kind kind;
} NAMED[] = {
    {"prefix", P_PREFIX}, {"date", P_DATE},   {"year", P_YEAR},           {"month", P_MONTH},
    {"day", P_DAY},       {"hour", P_HOUR},   {"minute", P_MINUTE},       {"stamp", P_STAMP},
    {"seq", P_SEQ},       {"writer_id", P_WRITER_ID}, {"ext", P_EXT},     {"partition", P_PARTITION},
};
#define NNAMED (sizeof NAMED / sizeof NAMED[0])

typedef struct piece {
  piece_kind kind;
  char *text;   /* P_TEXT */
  size_t column; /* P_COLUMN: the partition_by column's position */
} piece;

struct keytemplate {
  piece *pieces;
  size_t n;
  part_unit unit;
};

const char *keytemplate_default(bool writer_id) {
  return writer_id ? "{prefix}{partition}/{stamp}-{seq}-{writer_id}.{ext}"
                   : "{prefix}{partition}/{stamp}-{seq}.{ext}";
}

void keytemplate_free(keytemplate *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) free(t->pieces[i].text);
  free(t->pieces);
  free(t);
}

part_unit keytemplate_unit(const keytemplate *t) { return t->unit; }

static part_unit unit_of(piece_kind k) {
  switch (k) {
  case P_YEAR: return PART_UNIT_YEAR;
  case P_MONTH: return PART_UNIT_MONTH;
  case P_DATE:
  case P_DAY: return PART_UNIT_DAY;
  case P_HOUR: return PART_UNIT_HOUR;
  case P_MINUTE: return PART_UNIT_MINUTE;
  default: return PART_UNIT_NONE;
  }
}

/* The i-th partition_by column name (len bytes at *name), from the comma-separated list. */
static bool nth_column(const char *list, size_t i, const char **name, size_t *len) {
  for (const char *at = list; at && *at;) {
    size_t n = strcspn(at, ",");
    if (i-- == 0) {
      *name = at;
      *len = n;
      return true;
    }
    at += n + (at[n] == ',');
  }
  return false;
}

static int unknown(const char *text, const char *name, size_t len, const char *partition_by,
                   s3sink_err *err) {
  char names[400] = "", given[64], suggestion[96] = "";
  size_t at = 0;
  for (size_t i = 0; i < NNAMED; i++)
    at += (size_t)snprintf(names + at, sizeof names - at, "%s{%s}", i ? " " : "", NAMED[i].name);
  snprintf(given, sizeof given, "%.*s", (int)(len < 63 ? len : 63), name);
  for (size_t i = 0, best = 3; i < NNAMED; i++) { /* at most two edits away */
    size_t d = options_distance(given, NAMED[i].name);
    if (d < best) {
      best = d;
      snprintf(suggestion, sizeof suggestion, " (did you mean {%s}?)", NAMED[i].name);
    }
  }
  if (partition_by && *partition_by)
    return err_set(err, S3SINK_EINVAL,
                   "key_template '%s': unknown placeholder {%.*s}%s; the placeholders are %s "
                   "and the partition_by columns by name (%s)",
                   text, (int)len, name, suggestion, names, partition_by);
  return err_set(err, S3SINK_EINVAL,
                 "key_template '%s': unknown placeholder {%.*s}%s; the placeholders are %s; "
                 "to put a column's value in keys, add the column to partition_by",
                 text, (int)len, name, suggestion, names);
}

static bool add_piece(keytemplate *t, piece_kind kind, const char *text, size_t len, size_t column) {
  piece *p = realloc(t->pieces, (t->n + 1) * sizeof *p);
  if (!p) return false;
  t->pieces = p;
  p[t->n] = (piece){kind, NULL, column};
  if (kind == P_TEXT && !(p[t->n].text = strndup(text, len))) return false;
  t->n++;
  return true;
}

/* Splits text into pieces; checks the syntax and the names. */
static int split(keytemplate *t, const char *text, const char *partition_by, s3sink_err *err) {
  for (const char *at = text; *at;) {
    if (*at == '}')
      return err_set(err, S3SINK_EINVAL,
                     "key_template '%s': '}' at position %d closes no placeholder; "
                     "placeholders are written {name}, and keys cannot hold braces otherwise",
                     text, (int)(at - text) + 1);
    if (*at != '{') {
      size_t len = strcspn(at, "{}");
      if (!add_piece(t, P_TEXT, at, len, 0)) return err_set(err, S3SINK_ENOMEM, "out of memory");
      at += len;
      continue;
    }
    const char *name = at + 1;
    size_t len = strcspn(name, "{}");
    if (name[len] != '}')
      return err_set(err, S3SINK_EINVAL,
                     "key_template '%s': '{' at position %d is not closed; placeholders are "
                     "written {name}", text, (int)(at - text) + 1);
    piece_kind kind = P_TEXT;
    size_t column = 0;
    for (size_t i = 0; i < NNAMED && kind == P_TEXT; i++)
      if (strlen(NAMED[i].name) == len && memcmp(NAMED[i].name, name, len) == 0) kind = NAMED[i].kind;
    const char *c;
    size_t clen;
    for (size_t i = 0; kind == P_TEXT && nth_column(partition_by, i, &c, &clen); i++)
      if (clen == len && memcmp(c, name, len) == 0) kind = P_COLUMN, column = i;
    if (kind == P_TEXT) return unknown(text, name, len, partition_by, err);
    if (!add_piece(t, kind, NULL, 0, column)) return err_set(err, S3SINK_ENOMEM, "out of memory");
    at = name + len + 1;
  }
  return S3SINK_OK;
}

static size_t count(const keytemplate *t, piece_kind k) {
  size_t n = 0;
  for (size_t i = 0; i < t->n; i++) n += t->pieces[i].kind == k;
  return n;
}

static size_t find(const keytemplate *t, piece_kind k) {
  for (size_t i = 0; i < t->n; i++)
    if (t->pieces[i].kind == k) return i;
  return t->n;
}

/* The rules that keep keys under the prefix, unique and increasing per partition. */
static int check(keytemplate *t, const char *text, const char *partition_by, bool time_column,
                 bool writer_id, s3sink_err *err) {
  if (t->n == 0 || t->pieces[0].kind != P_PREFIX || count(t, P_PREFIX) != 1)
    return err_set(err, S3SINK_EINVAL,
                   "key_template '%s' must start with {prefix} (and hold it once), so that "
                   "keys stay under the prefix readers read", text);
  size_t stamp = find(t, P_STAMP), seq = find(t, P_SEQ);
  if (count(t, P_STAMP) != 1 || count(t, P_SEQ) != 1 || seq < stamp)
    return err_set(err, S3SINK_EINVAL,
                   "key_template '%s' must hold {stamp} then {seq}, once each, in the "
                   "object's name (e.g. '.../{stamp}-{seq}.{ext}'): the flush time and the "
                   "writer's counter keep keys unique and increasing", text);
  for (size_t i = stamp + 1; i < t->n; i++) {
    const piece *p = &t->pieces[i];
    if (p->kind == P_TEXT && strchr(p->text, '/'))
      return err_set(err, S3SINK_EINVAL,
                     "key_template '%s': {stamp} and {seq} must be in the object's name, "
                     "after the last '/'", text);
    if (i < seq && p->kind != P_TEXT)
      return err_set(err, S3SINK_EINVAL,
                     "key_template '%s': only text may stand between {stamp} and {seq}", text);
    if (i > seq && p->kind != P_TEXT && p->kind != P_WRITER_ID && p->kind != P_EXT)
      return err_set(err, S3SINK_EINVAL,
                     "key_template '%s': only text, {writer_id} and {ext} may follow {seq}; "
                     "put the other placeholders before {stamp}", text);
  }
  const char *c;
  size_t clen;
  bool all = count(t, P_PARTITION) > 0;
  if (all && !(partition_by && *partition_by))
    return err_set(err, S3SINK_EINVAL,
                   "key_template '%s': {partition} places the partition_by columns, but "
                   "partition_by is not set: set it, or drop {partition}", text);
  for (size_t i = 0; !all && nth_column(partition_by, i, &c, &clen); i++) {
    bool placed = false;
    for (size_t j = 0; j < t->n && !placed; j++)
      placed = t->pieces[j].kind == P_COLUMN && t->pieces[j].column == i;
    if (!placed)
      return err_set(err, S3SINK_EINVAL,
                     "key_template '%s' does not place partition_by column '%.*s': add "
                     "{partition} (every column as name=value/...) or {%.*s}, so each "
                     "partition has keys of its own", text, (int)clen, c, (int)clen, c);
  }
  for (size_t i = 0; i < t->n; i++)
    if (unit_of(t->pieces[i].kind) > t->unit) t->unit = unit_of(t->pieces[i].kind);
  if (time_column && t->unit == PART_UNIT_NONE)
    return err_set(err, S3SINK_EINVAL,
                   "time_column is set but key_template '%s' uses no calendar field: add "
                   "{date}, {year}, {month}, {day}, {hour} or {minute} (e.g. 'dt={date}/'), "
                   "or drop time_column", text);
  if (writer_id && !count(t, P_WRITER_ID))
    return err_set(err, S3SINK_EINVAL,
                   "writer_id is set but key_template '%s' has no {writer_id}: add it (e.g. "
                   "'{stamp}-{seq}-{writer_id}.{ext}'), so writers sharing the prefix never "
                   "take each other's keys", text);
  if (!writer_id && count(t, P_WRITER_ID))
    return err_set(err, S3SINK_EINVAL,
                   "key_template '%s' uses {writer_id} but no writer_id is set: set "
                   "writer_id, or drop the placeholder", text);
  return S3SINK_OK;
}

int keytemplate_parse(const char *text, const char *partition_by, bool time_column,
                      bool writer_id, keytemplate **out, s3sink_err *err) {
  *out = NULL;
  keytemplate *t = calloc(1, sizeof *t);
  if (!t) return err_set(err, S3SINK_ENOMEM, "out of memory");
  int rc = split(t, text, partition_by, err);
  if (rc == S3SINK_OK) rc = check(t, text, partition_by, time_column, writer_id, err);
  if (rc) {
    keytemplate_free(t);
    return rc;
  }
  *out = t;
  return S3SINK_OK;
}

/* "20261125T002556.123Z": the flush time, as the default naming policy writes it. */
static void stamp_text(int64_t ms, char out[24]) {
  char t[S3SINK_TEXT_NUMBUF];
  s3sink_text_datetime(t, ms * 1000000, false); /* YYYY-MM-DDTHH:MM:SS.fff... */
  snprintf(out, 24, "%.4s%.2s%.2sT%.2s%.2s%.2s.%.3sZ", t, t + 5, t + 8, t + 11, t + 14, t + 17, t + 20);
}

int keytemplate_render(const keytemplate *t, const keytemplate_ctx *c, char **key, s3sink_err *err) {
  *key = NULL;
  part_time fields;
  bool null_time = c->part->timed && !c->part->has_time;
  partition_time_fields(c->part->timed ? c->part->time_ns : c->flush_ms * 1000000, &fields);
  bytebuf b;
  bytebuf_init(&b, SIZE_MAX);
  bool ok = true;
  for (size_t i = 0; i < t->n && ok; i++) {
    const piece *p = &t->pieces[i];
    char num[24];
    const char *s = NULL;
    switch (p->kind) {
    case P_TEXT: s = p->text; break;
    case P_PREFIX: s = c->prefix; break;
    case P_DATE: s = fields.date; break;
    case P_YEAR: s = fields.year; break;
    case P_MONTH: s = fields.month; break;
    case P_DAY: s = fields.day; break;
    case P_HOUR: s = fields.hour; break;
    case P_MINUTE: s = fields.minute; break;
    case P_STAMP: stamp_text(c->flush_ms, num), s = num; break;
    case P_SEQ: snprintf(num, sizeof num, "%010" PRIu64, c->sequence), s = num; break;
    case P_WRITER_ID: s = c->writer_id ? c->writer_id : ""; break;
    case P_EXT: s = c->extension; break;
    case P_PARTITION: s = c->part->path; break;
    case P_COLUMN: s = c->part->values[p->column]; break;
    }
    if (null_time && unit_of(p->kind) != PART_UNIT_NONE) s = PARTITION_NULL_TEXT;
    ok = bytebuf_append_str(&b, s);
  }
  if (!ok || !bytebuf_terminate(&b)) {
    bytebuf_free(&b);
    return err_set(err, S3SINK_ENOMEM, "out of memory naming an object");
  }
  if (b.len > MAX_KEY_LEN) {
    int rc = err_set(err, S3SINK_EINVAL,
                     "key_template gives a key of %zu bytes, over S3's %d: '%.120s...'; "
                     "shorten the prefix, the template or the partition values", b.len,
                     MAX_KEY_LEN, b.data);
    bytebuf_free(&b);
    return rc;
  }
  *key = b.data;
  return S3SINK_OK;
}
