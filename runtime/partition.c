/* partition.c - a row's partition, in C (see partition.h and docs/partitions.md).
 *
 * A row's identity is the path text of each partition_by column's value, then its event
 * time's calendar fields down to the template's finest one, each ended by '\n' (which the
 * path text never holds): rows with equal identities share a partition, and so a key. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cells.h"
#include "error.h"
#include "partition.h"
#include "s3sink_text.h"

struct partitioner {
  size_t ncols;
  size_t *index;         /* of each partition_by column in the row */
  char **names;          /* their names */
  char **path_names;     /* their names as path text */
  int time_index;        /* of the time_column, or -1 */
  part_unit unit;
};

void partition_time_fields(int64_t ns, part_time *out) {
  char t[S3SINK_TEXT_NUMBUF]; /* "YYYY-MM-DDTHH:MM:SS.fffffffff": int64 ns keep 4 year digits */
  s3sink_text_datetime(t, ns, false);
  memcpy(out->year, t, 4), out->year[4] = '\0';
  memcpy(out->month, t + 5, 2), out->month[2] = '\0';
  memcpy(out->day, t + 8, 2), out->day[2] = '\0';
  memcpy(out->hour, t + 11, 2), out->hour[2] = '\0';
  memcpy(out->minute, t + 14, 2), out->minute[2] = '\0';
  memcpy(out->date, t, 10), out->date[10] = '\0';
}

static bool path_safe(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

bool partition_encode(bytebuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  if (n == 0) return bytebuf_append_str(b, PARTITION_NULL_TEXT);
  if (!bytebuf_reserve(b, 3 * n)) return false; /* the most it can take */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (path_safe(c) && !(i == 0 && c == '.')) {
      b->data[b->len++] = (char)c;
    } else {
      b->data[b->len++] = '%';
      b->data[b->len++] = hex[c >> 4];
      b->data[b->len++] = hex[c & 15];
    }
  }
  return true;
}

partkey *partition_key_ref(partkey *k) {
  k->refs++;
  return k;
}

void partition_key_unref(partkey *k) {
  if (!k || --k->refs > 0) return;
  for (size_t i = 0; i < k->nvalues; i++) free(k->values[i]);
  free(k->values);
  free(k->id);
  free(k->path);
  free(k->last_key);
  free(k);
}

/* ------------------------------------------------------------------------------------ */

static const char *unroutable(s3sink_type t) {
  switch (t) {
  case S3SINK_T_JSON:
  case S3SINK_T_TUPLE:
  case S3SINK_T_LIST:
  case S3SINK_T_ARRAY: return s3sink_column_type_info(t)->name;
  default: return NULL;
  }
}

typedef struct column_list {
  const s3sink_column *columns;
  size_t n;
} column_list;

static const char *column_name_at(size_t i, void *ud) {
  const column_list *l = ud;
  return i < l->n ? l->columns[i].name : NULL;
}

static int find_column(const s3sink_column *columns, size_t ncolumns, const char *name,
                       size_t len, const char *option, s3sink_err *err) {
  for (size_t i = 0; i < ncolumns; i++)
    if (strlen(columns[i].name) == len && memcmp(columns[i].name, name, len) == 0) return (int)i;
  char names[700];
  column_list l = {columns, ncolumns};
  err_join_names(names, sizeof names, "'", column_name_at, &l);
  err_set(err, S3SINK_EINVAL, "%s: '%.*s' is not a column of the table; its columns are %s",
          option, (int)len, name, names);
  return -1;
}

void partition_free(partitioner *p) {
  if (!p) return;
  for (size_t i = 0; i < p->ncols; i++) {
    free(p->names[i]);
    free(p->path_names[i]);
  }
  free(p->names);
  free(p->path_names);
  free(p->index);
  free(p);
}

int partition_new(const s3sink_column *columns, size_t ncolumns, const char *partition_by,
                  const char *time_column, part_unit unit, partitioner **out, s3sink_err *err) {
  *out = NULL;
  partitioner *p = calloc(1, sizeof *p);
  if (!p) return err_set(err, S3SINK_ENOMEM, "out of memory");
  p->time_index = -1;
  p->unit = time_column ? unit : PART_UNIT_NONE;
  size_t n = 0;
  if (partition_by && *partition_by) {
    n = 1;
    for (const char *c = partition_by; *c; c++) n += *c == ',';
  }
  int rc = S3SINK_OK;
  if (n && (!(p->index = calloc(n, sizeof *p->index)) || !(p->names = calloc(n, sizeof *p->names)) ||
            !(p->path_names = calloc(n, sizeof *p->path_names)))) {
    partition_free(p);
    return err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  const char *name = partition_by;
  for (size_t i = 0; i < n && rc == S3SINK_OK; i++) {
    size_t len = strcspn(name, ",");
    int at = find_column(columns, ncolumns, name, len, "partition_by", err);
    if (at < 0) {
      rc = S3SINK_EINVAL;
      break;
    }
    for (size_t j = 0; j < i && rc == S3SINK_OK; j++)
      if (p->index[j] == (size_t)at)
        rc = err_set(err, S3SINK_EINVAL, "partition_by names column '%s' twice: name it once",
                     columns[at].name);
    int t = s3sink_column_type_find(columns[at].type);
    const char *bad = t >= 0 ? unroutable((s3sink_type)t) : NULL;
    if (rc == S3SINK_OK && bad)
      rc = err_set(err, S3SINK_EINVAL,
                   "partition_by: column '%s' has type %s, whose values cannot name a "
                   "partition; partition by columns of scalar types (int, str, bool, bytes, "
                   "pointer, datetimes, duration, float)", columns[at].name, bad);
    if (rc) break;
    p->index[i] = (size_t)at;
    p->ncols = i + 1;
    bytebuf b;
    bytebuf_init(&b, SIZE_MAX);
    if (!(p->names[i] = strdup(columns[at].name)) ||
        !partition_encode(&b, columns[at].name, strlen(columns[at].name)) || !bytebuf_terminate(&b)) {
      bytebuf_free(&b);
      rc = err_set(err, S3SINK_ENOMEM, "out of memory");
      break;
    }
    p->path_names[i] = b.data;
    name += len + (name[len] == ',');
  }
  if (rc == S3SINK_OK && time_column) {
    int at = find_column(columns, ncolumns, time_column, strlen(time_column), "time_column", err);
    if (at < 0) {
      rc = S3SINK_EINVAL;
    } else {
      int t = s3sink_column_type_find(columns[at].type);
      if (t != S3SINK_T_DATETIME_UTC && t != S3SINK_T_DATETIME_NAIVE)
        rc = err_set(err, S3SINK_EINVAL,
                     "time_column: column '%s' has type %s; the event time must be a "
                     "datetime_utc or datetime_naive column (a naive one is read as UTC)",
                     time_column, columns[at].type);
      p->time_index = at;
    }
  }
  if (rc) {
    partition_free(p);
    return rc;
  }
  *out = p;
  return S3SINK_OK;
}

size_t partition_ncolumns(const partitioner *p) { return p->ncols; }
const char *partition_column_name(const partitioner *p, size_t i) { return p->names[i]; }
bool partition_routes(const partitioner *p) { return p->ncols > 0 || p->unit != PART_UNIT_NONE; }
bool partition_has_time(const partitioner *p) { return p->time_index >= 0; }

/* The event-time part of an identity: the calendar fields down to the unit, or "null". */
static bool append_bucket(const partitioner *p, bool has_time, int64_t ns, bytebuf *id) {
  if (p->unit == PART_UNIT_NONE) return true;
  if (!has_time) return bytebuf_append(id, "null\n", 5);
  char t[S3SINK_TEXT_NUMBUF];
  s3sink_text_datetime(t, ns, false); /* YYYY-MM-DDTHH:MM... */
  static const size_t upto[] = {[PART_UNIT_YEAR] = 4, [PART_UNIT_MONTH] = 7, [PART_UNIT_DAY] = 10,
                                [PART_UNIT_HOUR] = 13, [PART_UNIT_MINUTE] = 16};
  t[upto[p->unit]] = '\n';
  return bytebuf_append(id, t, upto[p->unit] + 1);
}

bool partition_of_row(const partitioner *p, const s3sink_value *values, bytebuf *id,
                      bool *has_event, int64_t *event_ns) {
  id->len = 0;
  *has_event = false;
  *event_ns = 0;
  if (p->time_index >= 0 && values[p->time_index].kind != S3SINK_V_NULL) {
    *has_event = true;
    *event_ns = values[p->time_index].u.i;
  }
  for (size_t i = 0; i < p->ncols; i++) {
    const s3sink_value *v = &values[p->index[i]];
    size_t start = id->len;
    bool ok;
    if (v->kind == S3SINK_V_NULL) {
      ok = bytebuf_append_str(id, PARTITION_NULL_TEXT);
    } else {
      /* the value's CSV text (docs/value-text.md), then made path-safe: written at the end
       * of the buffer, then encoded after it and moved down */
      cell c = cells_of_value(v);
      ok = cells_csv(id, &c, 0);
      size_t raw = id->len - start;
      ok = ok && bytebuf_reserve(id, 3 * raw + sizeof PARTITION_NULL_TEXT);
      if (ok) {
        size_t enc = id->len;
        ok = partition_encode(id, id->data + start, raw);
        memmove(id->data + start, id->data + enc, id->len - enc);
        id->len = start + (id->len - enc);
      }
    }
    if (!ok || !bytebuf_append(id, "\n", 1)) return false;
  }
  return append_bucket(p, *has_event, *event_ns, id);
}

uint64_t partition_hash(const char *s, size_t n) { /* FNV-1a */
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
  return h;
}

/* A partkey from its values (path text, copied) and event time. */
static partkey *make_key(const partitioner *p, char *const *values, bool has_time, int64_t ns) {
  partkey *k = calloc(1, sizeof *k);
  if (!k) return NULL;
  k->refs = 1;
  k->timed = p->unit != PART_UNIT_NONE;
  k->has_time = k->timed && has_time;
  k->time_ns = k->has_time ? ns : 0;
  bytebuf id, path;
  bytebuf_init(&id, SIZE_MAX);
  bytebuf_init(&path, SIZE_MAX);
  bool ok = !p->ncols || (k->values = calloc(p->ncols, sizeof *k->values)) != NULL;
  for (size_t i = 0; ok && i < p->ncols; i++) {
    k->nvalues = i + 1;
    ok = (k->values[i] = strdup(values[i])) != NULL && bytebuf_append_str(&id, values[i]) &&
         bytebuf_append(&id, "\n", 1) && (i == 0 || bytebuf_append(&path, "/", 1)) &&
         bytebuf_append_str(&path, p->path_names[i]) && bytebuf_append(&path, "=", 1) &&
         bytebuf_append_str(&path, values[i]);
  }
  ok = ok && append_bucket(p, k->has_time, k->time_ns, &id) && bytebuf_terminate(&id) &&
       bytebuf_terminate(&path);
  k->id = id.data;
  k->id_len = id.len;
  k->path = path.data;
  if (ok && !k->id && !(k->id = strdup(""))) ok = false;
  if (ok && !k->path && !(k->path = strdup(""))) ok = false;
  if (!ok) {
    if (!k->id) free(id.data);
    if (!k->path) free(path.data);
    partition_key_unref(k);
    return NULL;
  }
  k->hash = partition_hash(k->id, k->id_len);
  return k;
}

partkey *partition_key_new(const partitioner *p, const char *id, size_t id_len, bool has_event,
                           int64_t event_ns) {
  char **values = p->ncols ? calloc(p->ncols, sizeof *values) : NULL;
  if (p->ncols && !values) return NULL;
  const char *at = id, *end = id + id_len;
  bool ok = true;
  for (size_t i = 0; i < p->ncols && ok; i++) {
    const char *nl = memchr(at, '\n', (size_t)(end - at));
    ok = nl && (values[i] = strndup(at, (size_t)(nl - at))) != NULL;
    at = nl ? nl + 1 : end;
  }
  partkey *k = ok ? make_key(p, values, has_event, event_ns) : NULL;
  for (size_t i = 0; i < p->ncols; i++) free(values ? values[i] : NULL);
  free(values);
  return k;
}

void partition_key_time_field(const partkey *k, char *buf, size_t cap) {
  if (!k->timed) snprintf(buf, cap, "%s", "");
  else if (!k->has_time) snprintf(buf, cap, "null");
  else snprintf(buf, cap, "%" PRId64, k->time_ns);
}

int partition_key_recover(const partitioner *p, const char *path, const char *time_field,
                          partkey **out, s3sink_err *err) {
  *out = NULL;
  char **values = p->ncols ? calloc(p->ncols, sizeof *values) : NULL;
  if (p->ncols && !values) return err_set(err, S3SINK_ENOMEM, "out of memory");
  bool match = true;
  const char *at = path;
  size_t i = 0;
  for (; *at && match; i++) {
    size_t len = strcspn(at, "/");
    const char *eq = memchr(at, '=', len);
    size_t nlen = eq ? (size_t)(eq - at) : 0;
    match = eq && i < p->ncols && strlen(p->path_names[i]) == nlen &&
            memcmp(p->path_names[i], at, nlen) == 0;
    if (match && !(values[i] = strndup(eq + 1, len - nlen - 1))) match = false;
    at += len + (at[len] == '/');
  }
  match = match && i == p->ncols;
  bool timed = *time_field != '\0', has_time = false;
  int64_t ns = 0;
  if (timed && strcmp(time_field, "null") != 0) {
    char *end;
    ns = (int64_t)strtoll(time_field, &end, 10);
    has_time = *end == '\0';
    match = match && has_time;
  }
  match = match && timed == (p->unit != PART_UNIT_NONE);
  int rc = S3SINK_OK;
  if (!match) {
    rc = err_set(err, S3SINK_EINVAL,
                 "its rows were partitioned as '%s'%s%s, not by this sink's partition_by "
                 "and key_template: open a sink with the settings that wrote them once to "
                 "upload them, or move the folder away",
                 *path ? path : "(no partition_by)", timed ? " with event time " : "", time_field);
  } else if (!(*out = make_key(p, values, has_time, ns))) {
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  for (size_t j = 0; j < p->ncols; j++) free(values ? values[j] : NULL);
  free(values);
  return rc;
}
