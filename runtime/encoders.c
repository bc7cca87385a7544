/* encoders.c - the native CSV and JSON Lines encoders (see encoders.h): their declaration
 * in Lua (a small userdata), their binding to columns, and the per-row loop. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cells.h"
#include "encoders.h"
#include "error.h"

#define DECL_META "s3sink.encoder" /* the registry name of the declarations' metatable */
#define SEP_MAX 16

typedef enum enc_kind { ENC_CSV, ENC_JSON } enc_kind;

/* What a script declared: the userdata fmt.csv_encoder{} returns. */
typedef struct decl {
  enc_kind kind;
  char sep[SEP_MAX];
  size_t seplen;
} decl;

struct encoder {
  decl d;
  size_t ncolumns;
  char *keys;       /* JSON: every column's `"name":`, back to back */
  size_t *key_end;  /* JSON: where column i's key ends in keys */
};

/* ----------------------------------------------------------------------------------------
 * Declarations
 * -------------------------------------------------------------------------------------- */

/* Reads the options table at arg 1 (nil or {}): only `sep` (CSV) is known; anything else
 * is an error, so a misspelt option does not pass silently. */
static void read_options(lua_State *L, decl *d, const char *fn) {
  if (lua_isnoneornil(L, 1)) return;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (d->kind == ENC_CSV && k && strcmp(k, "sep") == 0) {
      size_t n;
      const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
      if (!s || n == 0 || n >= SEP_MAX)
        luaL_error(L, "%s: sep must be a string of 1 to %d bytes", fn, SEP_MAX - 1);
      memcpy(d->sep, s, n);
      d->seplen = n;
    } else {
      luaL_error(L, "%s: unknown option '%s'%s", fn, k ? k : luaL_typename(L, -2),
                 d->kind == ENC_CSV ? " (known: sep)" : " (it takes none)");
    }
    lua_pop(L, 1);
  }
}

static int new_decl(lua_State *L, enc_kind kind, const char *fn) {
  decl d = {.kind = kind, .sep = ",", .seplen = 1};
  read_options(L, &d, fn);
  decl *u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = d;
  luaL_setmetatable(L, DECL_META);
  return 1;
}

static int l_csv_encoder(lua_State *L) { return new_decl(L, ENC_CSV, "csv_encoder"); }
static int l_json_encoder(lua_State *L) { return new_decl(L, ENC_JSON, "json_encoder"); }

void encoders_push_constructors(lua_State *L) {
  if (luaL_newmetatable(L, DECL_META)) {
    /* scripts see neither the metatable nor a way to forge a declaration */
    lua_pushliteral(L, DECL_META);
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_csv_encoder);
  lua_setfield(L, -2, "csv_encoder");
  lua_pushcfunction(L, l_json_encoder);
  lua_setfield(L, -2, "json_encoder");
}

bool encoders_is_decl(lua_State *L, int idx) { return luaL_testudata(L, idx, DECL_META) != NULL; }

/* ----------------------------------------------------------------------------------------
 * Binding and rows
 * -------------------------------------------------------------------------------------- */

void encoders_free(encoder *e) {
  if (!e) return;
  free(e->keys);
  free(e->key_end);
  free(e);
}

int encoders_new(lua_State *L, int idx, const s3sink_column *columns, size_t ncolumns,
                 encoder **out, s3sink_err *err) {
  const decl *d = luaL_testudata(L, idx, DECL_META);
  encoder *e = calloc(1, sizeof *e);
  if (!d || !e) {
    free(e);
    return err_set(err, d ? S3SINK_ENOMEM : S3SINK_EINVAL,
                   d ? "out of memory" : "not an encoder declaration");
  }
  e->d = *d;
  e->ncolumns = ncolumns;
  if (d->kind == ENC_JSON) {
    /* the keys are written once here; a row only copies them */
    bytebuf keys;
    bytebuf_init(&keys, SIZE_MAX);
    e->key_end = calloc(ncolumns ? ncolumns : 1, sizeof *e->key_end);
    bool ok = e->key_end != NULL;
    for (size_t i = 0; ok && i < ncolumns; i++) {
      ok = cells_json_string(&keys, columns[i].name, strlen(columns[i].name)) &&
           bytebuf_append(&keys, ":", 1);
      if (ok) e->key_end[i] = keys.len;
    }
    e->keys = keys.data;
    if (!ok) {
      encoders_free(e);
      return err_set(err, S3SINK_ENOMEM, "out of memory");
    }
  }
  *out = e;
  return S3SINK_OK;
}

bool encoders_row(const encoder *e, const s3sink_value *values, size_t n, int64_t time,
                  int diff, bytebuf *out) {
  size_t start = out->len;
  bool ok = true;
  if (e->d.kind == ENC_CSV) {
    for (size_t i = 0; i < n && ok; i++) {
      cell c = cells_of_value(&values[i]);
      ok = cells_csv_quoted(out, &c, e->d.sep, e->d.seplen);
    }
    ok = ok && cells_csv_tail(out, time, diff, e->d.sep, e->d.seplen);
  } else {
    ok = bytebuf_append(out, "{", 1);
    for (size_t i = 0; i < n && ok; i++) {
      size_t from = i ? e->key_end[i - 1] : 0;
      cell c = cells_of_value(&values[i]);
      ok = bytebuf_append(out, e->keys + from, e->key_end[i] - from) && cells_json(out, &c) &&
           bytebuf_append(out, ",", 1);
    }
    ok = ok && cells_json_tail(out, time, diff);
  }
  if (!ok) out->len = start;
  return ok;
}
