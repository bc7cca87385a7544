/* formatter.c - binds a Lua format script to a table's columns and writes rows with it:
 * through its native encoder when its `row` is one (encoders.h), else by calling `row`. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "formatter.h"
#include "encoders.h"
#include "error.h"
#include "options.h"

struct s3sink_formatter {
  luahost *host;
  bool owns_host;
  luahost_script script;
  int row_ref, values_ref;
  int types_ref;           /* each value's type in the current row, passed to row() */
  int kind_types_ref;      /* type name of each value kind, for "any" columns */
  const char *label;       /* script.label */
  size_t ncolumns;
  s3sink_kind *kinds;      /* kind each column's values must have */
  bool *any;               /* "any" columns take values of every kind */
  bool has_any;
  bool *optional;
  char **names;
  char *header;
  size_t header_len;
  char *extension, *content_type;
  encoder *enc;            /* the script's native encoder, or NULL: row() is Lua */
  bytebuf out;             /* s3sink_formatter_row's bytes on the native path (reused) */
};

/* The name of the column type whose values have kind k ("int" for S3SINK_V_INT, ...). */
static const char *kind_name(s3sink_kind k) {
  if (k == S3SINK_V_NULL) return "null";
  for (int t = 0; t < S3SINK_T_COUNT; t++) {
    const s3sink_column_type *ct = s3sink_column_type_info((s3sink_type)t);
    if (ct->kind == k) return ct->name;
  }
  return "unknown";
}

void s3sink_formatter_free(s3sink_formatter *f) {
  if (!f) return;
  if (f->host) {
    lua_State *L = luahost_state(f->host);
    luahost_unref_script(f->host, &f->script);
    luaL_unref(L, LUA_REGISTRYINDEX, f->row_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, f->values_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, f->types_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, f->kind_types_ref);
    if (f->owns_host) luahost_free(f->host);
  }
  if (f->names)
    for (size_t i = 0; i < f->ncolumns; i++) free(f->names[i]);
  free(f->names);
  free(f->kinds);
  free(f->any);
  free(f->optional);
  free(f->header);
  free(f->extension);
  free(f->content_type);
  encoders_free(f->enc);
  bytebuf_free(&f->out);
  free(f);
}

/* Pushes {{name=, type=, optional=}, ...}. */
static void push_columns(lua_State *L, const s3sink_column *columns, size_t n) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, columns[i].name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, columns[i].type);
    lua_setfield(L, -2, "type");
    lua_pushboolean(L, columns[i].optional);
    lua_setfield(L, -2, "optional");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static int check_columns(const s3sink_column *columns, size_t n, s3sink_formatter *f,
                         s3sink_err *err) {
  if (n == 0) return err_set(err, S3SINK_EINVAL, "the table has no columns: pass at least one column");
  f->kinds = calloc(n, sizeof *f->kinds);
  f->any = calloc(n, sizeof *f->any);
  f->optional = calloc(n, sizeof *f->optional);
  f->names = calloc(n, sizeof *f->names);
  if (!f->kinds || !f->any || !f->optional || !f->names)
    return err_set(err, S3SINK_ENOMEM, "out of memory");
  f->ncolumns = n;
  for (size_t i = 0; i < n; i++) {
    const s3sink_column *c = &columns[i];
    if (!c->name || !*c->name)
      return err_set(err, S3SINK_EINVAL, "column %zu has no name", i + 1);
    if (strcmp(c->name, "time") == 0 || strcmp(c->name, "diff") == 0)
      return err_set(err, S3SINK_EINVAL,
                     "column '%s' clashes with the '%s' field every row gets: rename "
                     "the column",
                     c->name, c->name);
    for (size_t j = 0; j < i; j++)
      if (strcmp(columns[j].name, c->name) == 0)
        return err_set(err, S3SINK_EINVAL, "column '%s' appears twice", c->name);
    int t = s3sink_column_type_find(c->type);
    if (t < 0) {
      char names[256];
      options_column_type_names(names, sizeof names);
      return err_set(err, S3SINK_EINVAL, "column '%s' has unsupported type '%s': use one of %s",
                     c->name, c->type ? c->type : "(none)", names);
    }
    f->kinds[i] = s3sink_column_type_info((s3sink_type)t)->kind;
    f->any[i] = t == S3SINK_T_ANY;
    f->has_any |= f->any[i];
    f->optional[i] = c->optional || f->any[i];
    if (!(f->names[i] = strdup(c->name))) return err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  return S3SINK_OK;
}

/* Reads an optional string field of the script table at idx. */
static int string_field(lua_State *L, int idx, const char *field, const char *dflt, char **out,
                        const char *label, s3sink_err *err) {
  lua_getfield(L, idx, field);
  const char *v = dflt;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      return err_set(err, S3SINK_ESCRIPT, "format script %s: '%s' must be a string",
                     label, field);
    }
    v = lua_tostring(L, -1);
  }
  *out = strdup(v);
  lua_pop(L, 1);
  return *out ? S3SINK_OK : err_set(err, S3SINK_ENOMEM, "out of memory");
}

/* Calls the script's function `name`, if it has one, with the columns, leaving its
 * `nresults` results on the stack (nothing if there is no such function). */
static int call_with_columns(s3sink_formatter *f, int script, const char *name, int nresults,
                             const s3sink_column *columns, size_t ncolumns, const char *failed,
                             s3sink_err *err) {
  lua_State *L = luahost_state(f->host);
  lua_getfield(L, script, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return S3SINK_OK;
  }
  int fn = lua_gettop(L);
  int handler = luahost_push_handler(f->host);
  lua_pushvalue(L, fn);
  push_columns(L, columns, ncolumns);
  char ctx[512];
  snprintf(ctx, sizeof ctx, "format script %s%s", f->label, failed);
  int rc = luahost_pcall(f->host, &f->script, 1, nresults, handler, ctx, err);
  if (rc == S3SINK_OK) lua_remove(L, fn);
  return rc;
}

int formatter_open_on(luahost *host, const char *format, const s3sink_column *columns,
                      size_t ncolumns, s3sink_formatter **out, s3sink_err *err) {
  s3sink_formatter *f = calloc(1, sizeof *f);
  if (!f) return err_set(err, S3SINK_ENOMEM, "out of memory");
  f->script = (luahost_script)LUAHOST_NO_SCRIPT;
  bytebuf_init(&f->out, SIZE_MAX);
  f->row_ref = f->values_ref = f->types_ref = f->kind_types_ref = LUA_NOREF;
  int rc = check_columns(columns, ncolumns, f, err);
  if (rc) goto fail;
  f->host = host;
  lua_State *L = luahost_state(host);
  lua_settop(L, 0);
  if (!format) format = options_default_string("format");
  rc = luahost_load_script(host, FORMAT_DIR, format, "format", &f->script, err);
  if (rc) goto fail;
  f->label = f->script.label;

  lua_rawgeti(L, LUA_REGISTRYINDEX, f->script.ref);
  int script = lua_gettop(L);
  lua_getfield(L, script, "row");
  if (encoders_is_decl(L, -1)) {
    if ((rc = encoders_new(L, -1, columns, ncolumns, &f->enc, err))) goto fail;
  } else if (!lua_isfunction(L, -1)) {
    rc = err_set(err, S3SINK_ESCRIPT,
                 "format script %s must have a function 'row(values, time, diff)' "
                 "returning the bytes of one row, or a native encoder "
                 "(row = fmt.csv_encoder{} or fmt.json_encoder{})",
                 f->label);
    goto fail;
  }
  f->row_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if ((rc = string_field(L, script, "extension", "dat", &f->extension, f->label, err)) ||
      (rc = string_field(L, script, "content_type", "application/octet-stream",
                         &f->content_type, f->label, err)))
    goto fail;

  /* init(columns): the script may refuse column types it cannot write */
  if ((rc = call_with_columns(f, script, "init", 0, columns, ncolumns, " refused the columns", err)))
    goto fail;
  lua_settop(L, script);

  if ((rc = call_with_columns(f, script, "header", 1, columns, ncolumns, ": header() failed", err)))
    goto fail;
  if (lua_gettop(L) > script && !lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      rc = err_set(err, S3SINK_ESCRIPT,
                   "format script %s: header() must return a string or nil, not a %s",
                   f->label, luaL_typename(L, -1));
      goto fail;
    }
    size_t n;
    const char *h = lua_tolstring(L, -1, &n);
    f->header = malloc(n + 1);
    if (!f->header) {
      rc = err_set(err, S3SINK_ENOMEM, "out of memory");
      goto fail;
    }
    memcpy(f->header, h, n + 1);
    f->header_len = n;
  }
  lua_createtable(L, (int)ncolumns, 0);
  f->values_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_createtable(L, (int)ncolumns, 0);
  for (size_t i = 0; i < ncolumns; i++) {
    lua_pushstring(L, columns[i].type);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  f->types_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* a null in an "any" column is written as null whatever the type, "str" will do */
  lua_createtable(L, S3SINK_V_JSON + 1, 0);
  for (int k = S3SINK_V_NULL; k <= S3SINK_V_JSON; k++) {
    lua_pushstring(L, k == S3SINK_V_NULL ? "str" : kind_name((s3sink_kind)k));
    lua_rawseti(L, -2, k + 1);
  }
  f->kind_types_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  *out = f;
  return S3SINK_OK;
fail:
  if (f->host) lua_settop(luahost_state(f->host), 0);
  f->owns_host = false; /* the caller owns the host it passed */
  s3sink_formatter_free(f);
  return rc;
}

int s3sink_formatter_open(const char *format, const s3sink_column *columns, size_t ncolumns,
                          s3sink_formatter **out, s3sink_err *err) {
  luahost *host;
  int rc = luahost_new(&host, err);
  if (rc) return rc;
  rc = formatter_open_on(host, format, columns, ncolumns, out, err);
  if (rc) {
    luahost_free(host);
    return rc;
  }
  (*out)->owns_host = true;
  return S3SINK_OK;
}

int s3sink_formatter_header(s3sink_formatter *f, const char **bytes, size_t *len,
                            s3sink_err *err) {
  (void)err;
  *bytes = f->header ? f->header : "";
  *len = f->header_len;
  return S3SINK_OK;
}

const char *s3sink_formatter_extension(const s3sink_formatter *f) { return f->extension; }
const char *s3sink_formatter_content_type(const s3sink_formatter *f) { return f->content_type; }

void formatter_describe_row(const s3sink_value *values, size_t n, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = 0;
  for (size_t i = 0; i < n && used + 1 < cap; i++) {
    const s3sink_value *v = &values[i];
    int w;
    const char *sep = i ? ", " : "";
    switch (v->kind) {
    case S3SINK_V_NULL: w = snprintf(buf + used, cap - used, "%snull", sep); break;
    case S3SINK_V_FLOAT: w = snprintf(buf + used, cap - used, "%s%.17g", sep, v->u.f); break;
    case S3SINK_V_BOOL: w = snprintf(buf + used, cap - used, "%s%s", sep, v->u.b ? "true" : "false"); break;
    case S3SINK_V_STR:
    case S3SINK_V_POINTER:
    case S3SINK_V_JSON:
      w = snprintf(buf + used, cap - used, "%s\"%.*s\"", sep, (int)(v->u.s.len > 40 ? 40 : v->u.s.len), v->u.s.ptr);
      break;
    case S3SINK_V_BYTES: w = snprintf(buf + used, cap - used, "%s<%zu bytes>", sep, v->u.s.len); break;
    default: w = snprintf(buf + used, cap - used, "%s%" PRId64, sep, v->u.i); break;
    }
    if (w < 0) break;
    used += (size_t)w < cap - used ? (size_t)w : cap - used - 1;
  }
}

/* Checks that the row has one value per column, each of its column's kind. */
int formatter_check_values(const s3sink_formatter *f, const s3sink_value *values, size_t nvalues,
                           s3sink_err *err) {
  if (nvalues != f->ncolumns)
    return err_set(err, S3SINK_EINVAL, "row has %zu values but the table has %zu columns",
                   nvalues, f->ncolumns);
  for (size_t i = 0; i < nvalues; i++) {
    s3sink_kind k = values[i].kind;
    if (f->any[i] ? (unsigned)k <= S3SINK_V_JSON
                  : k == f->kinds[i] || (k == S3SINK_V_NULL && f->optional[i]))
      continue;
    if (f->any[i])
      return err_set(err, S3SINK_EINVAL, "column '%s' got a value of unknown kind %d",
                     f->names[i], (int)k);
    return err_set(err, S3SINK_EINVAL,
                   "column '%s' holds %s values but got %s%s", f->names[i],
                   kind_name(f->kinds[i]), kind_name(k),
                   k == S3SINK_V_NULL ? ": declare the column optional" : "");
  }
  return S3SINK_OK;
}

/* Calls the script's Lua row(); the bytes stay on the Lua stack until the next call. */
static int lua_row(s3sink_formatter *f, const s3sink_value *values, size_t nvalues,
                   int64_t time, int diff, const char **bytes, size_t *len, s3sink_err *err) {
  lua_State *L = luahost_state(f->host);
  lua_settop(L, 0);
  int handler = luahost_push_handler(f->host);
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->row_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->values_ref);
  for (size_t i = 0; i < nvalues; i++) {
    const s3sink_value *v = &values[i];
    switch (v->kind) {
    case S3SINK_V_NULL: lua_pushlightuserdata(L, NULL); break;
    case S3SINK_V_FLOAT: lua_pushnumber(L, v->u.f); break;
    case S3SINK_V_BOOL: lua_pushboolean(L, v->u.b); break;
    case S3SINK_V_STR:
    case S3SINK_V_BYTES:
    case S3SINK_V_POINTER:
    case S3SINK_V_JSON: lua_pushlstring(L, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.len); break;
    default: lua_pushinteger(L, v->u.i); break;
    }
    lua_rawseti(L, 3, (lua_Integer)i + 1);
  }
  lua_pushinteger(L, time);
  lua_pushinteger(L, diff);
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->types_ref);
  if (f->has_any) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->kind_types_ref);
    for (size_t i = 0; i < nvalues; i++)
      if (f->any[i]) {
        lua_rawgeti(L, -1, values[i].kind + 1);
        lua_rawseti(L, -3, (lua_Integer)i + 1);
      }
    lua_pop(L, 1);
  }
  int rc = luahost_pcall(f->host, &f->script, 4, 1, handler, "", err);
  if (rc) {
    char row[256];
    formatter_describe_row(values, nvalues, row, sizeof row);
    err_prefix(err, "format script %s failed on row (%s) at time %" PRId64 ", diff %d",
               f->label, row, time, diff);
    return rc;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    return err_set(err, S3SINK_ESCRIPT,
                   "format script %s: row() must return a string, not a %s", f->label,
                   luaL_typename(L, -1));
  *bytes = lua_tolstring(L, -1, len); /* stays on the stack until the next call */
  return S3SINK_OK;
}

bool formatter_is_native(const s3sink_formatter *f) { return f->enc != NULL; }

int formatter_append_row(s3sink_formatter *f, const s3sink_value *values, size_t nvalues,
                         int64_t time, int diff, bytebuf *out, s3sink_err *err) {
  int rc = formatter_check_values(f, values, nvalues, err);
  if (rc) return rc;
  if (f->enc) return encoders_row(f->enc, values, nvalues, time, diff, out) ? S3SINK_OK : S3SINK_EAGAIN;
  const char *bytes;
  size_t len;
  if ((rc = lua_row(f, values, nvalues, time, diff, &bytes, &len, err))) return rc;
  return bytebuf_append(out, bytes, len) ? S3SINK_OK : S3SINK_EAGAIN;
}

int s3sink_formatter_row(s3sink_formatter *f, const s3sink_value *values, size_t nvalues,
                         int64_t time, int diff, const char **bytes, size_t *len,
                         s3sink_err *err) {
  int rc = formatter_check_values(f, values, nvalues, err);
  if (rc) return rc;
  if (!f->enc) return lua_row(f, values, nvalues, time, diff, bytes, len, err);
  f->out.len = 0;
  if (!encoders_row(f->enc, values, nvalues, time, diff, &f->out))
    return err_set(err, S3SINK_ENOMEM, "out of memory formatting a row");
  *bytes = f->out.data;
  *len = f->out.len;
  return S3SINK_OK;
}
