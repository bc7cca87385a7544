/* numfmt.c - the `fmt` library that format scripts call: value text (valtext.c) and cells
 * (cells.c) for Lua values, and the native encoders' constructors (encoders.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cells.h"
#include "encoders.h"
#include "numfmt.h"

/* The text a function builds goes to one scratch buffer per fmt table (an upvalue of its
 * functions, freed with the state), then to Lua as one string: no allocation per call, and
 * a Lua error between the two leaks nothing. Its cap is the Lua state's own. */
#define SCRATCH_MAX ((size_t)512 << 20)

static int scratch_gc(lua_State *L) {
  bytebuf_free(lua_touserdata(L, 1));
  return 0;
}

static bytebuf *scratch(lua_State *L) {
  bytebuf *b = lua_touserdata(L, lua_upvalueindex(1));
  b->len = 0;
  return b;
}

/* Pushes the scratch's text, or raises when it did not fit. */
static int push_scratch(lua_State *L, bytebuf *b, bool ok, const char *fn) {
  if (!ok) return luaL_error(L, "%s: the text does not fit in memory (%zu bytes so far)", fn, b->len);
  lua_pushlstring(L, b->data ? b->data : "", b->len);
  return 1;
}

/* ----------------------------------------------------------------------------------------
 * Reading cells off the Lua stack
 * -------------------------------------------------------------------------------------- */

/* Fills c from the value at idx for column type t, or raises an error naming the column
 * (`col` > 0: its index; `name`: its name, may be NULL). Strings stay alive in the
 * caller's tables or argument slots. */
static void read_cell(lua_State *L, int idx, coltype t, int col, const char *name,
                      const char *fn, cell *c) {
  int lt = lua_type(L, idx);
  const char *want;
  c->t = t;
  c->null = lt == LUA_TNIL || (lt == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
  if (c->null) return;
  switch (t) {
  case S3SINK_T_INT:
  case S3SINK_T_DATETIME_NAIVE:
  case S3SINK_T_DATETIME_UTC:
  case S3SINK_T_DURATION: {
    int ok = 0;
    if (lt == LUA_TNUMBER) c->i = lua_tointegerx(L, idx, &ok);
    if (ok) return;
    want = "an integer";
    break;
  }
  case S3SINK_T_FLOAT:
    if (lt == LUA_TNUMBER) {
      c->f = lua_tonumber(L, idx);
      return;
    }
    want = "a number";
    break;
  case S3SINK_T_BOOL:
    if (lt == LUA_TBOOLEAN) {
      c->b = lua_toboolean(L, idx);
      return;
    }
    want = "a boolean";
    break;
  default:
    if (lt == LUA_TSTRING) {
      c->s = lua_tolstring(L, idx, &c->len);
      return;
    }
    want = "a string";
    break;
  }
  const char *got = lt == LUA_TNUMBER ? (lua_isinteger(L, idx) ? "integer" : "float")
                                      : luaL_typename(L, idx);
  const char *tn = cells_type_name(t);
  if (col > 0 && name)
    luaL_error(L, "%s: column %d '%s' (%s) needs %s, got %s", fn, col, name, tn, want, got);
  else if (col > 0)
    luaL_error(L, "%s: column %d (%s) needs %s, got %s", fn, col, tn, want, got);
  else
    luaL_error(L, "%s: a value of type %s must be %s, got %s", fn, tn, want, got);
}

/* The type named by the string at idx, looked up in the fmt functions' second upvalue (type
 * name -> type, see numfmt_push_lib): one table lookup of an interned string per cell, where
 * comparing names would take a strcmp per known type. */
static coltype check_coltype(lua_State *L, int idx, int col, const char *fn) {
  bool is_string = lua_type(L, idx) == LUA_TSTRING;
  if (is_string) {
    lua_pushvalue(L, idx);
    lua_rawget(L, lua_upvalueindex(2));
    int known;
    lua_Integer t = lua_tointegerx(L, -1, &known);
    lua_pop(L, 1);
    if (known) return (coltype)t;
  }
  const char *shown = is_string ? lua_tostring(L, idx) : luaL_typename(L, idx);
  if (col > 0)
    luaL_error(L, "%s: column %d has unknown type '%s'", fn, col, shown);
  else
    luaL_error(L, "%s: unknown column type '%s'", fn, shown);
  return CELLS_NO_TYPE;
}

/* ----------------------------------------------------------------------------------------
 * The fmt library
 * -------------------------------------------------------------------------------------- */

static lua_Integer check_int(lua_State *L, int arg) {
  int ok = 0;
  lua_Integer i = lua_type(L, arg) == LUA_TNUMBER ? lua_tointegerx(L, arg, &ok) : 0;
  if (!ok) luaL_typeerror(L, arg, "integer");
  return i;
}

static int l_int(lua_State *L) {
  char buf[S3SINK_TEXT_NUMBUF];
  lua_pushlstring(L, buf, s3sink_text_int(buf, check_int(L, 1)));
  return 1;
}

static int l_float(lua_State *L) {
  char buf[S3SINK_TEXT_NUMBUF];
  lua_pushlstring(L, buf, s3sink_text_float_csv(buf, luaL_checknumber(L, 1)));
  return 1;
}

static int l_json_float(lua_State *L) {
  char buf[S3SINK_TEXT_NUMBUF];
  lua_pushlstring(L, buf, s3sink_text_float_json(buf, luaL_checknumber(L, 1)));
  return 1;
}

static int l_datetime(lua_State *L) {
  char buf[S3SINK_TEXT_NUMBUF];
  lua_pushlstring(L, buf, s3sink_text_datetime(buf, check_int(L, 1), lua_toboolean(L, 2)));
  return 1;
}

static int l_base64(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  bytebuf *b = scratch(L);
  return push_scratch(L, b, cells_base64(b, (const unsigned char *)s, n), "base64");
}

static int l_json_string(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  bytebuf *b = scratch(L);
  return push_scratch(L, b, cells_json_string(b, s, n), "json_string");
}

static char opt_char(lua_State *L, int arg, char dflt, const char *what) {
  size_t n;
  const char *s = luaL_optlstring(L, arg, NULL, &n);
  if (!s) return dflt;
  if (n != 1) luaL_argerror(L, arg, lua_pushfstring(L, "%s must be one byte", what));
  return s[0];
}

static int l_csv_quote(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char q = opt_char(L, 2, '"', "the quote");
  bytebuf *b = scratch(L);
  bool ok = bytebuf_append(b, &q, 1) && cells_doubled(b, s, n, q) && bytebuf_append(b, &q, 1);
  return push_scratch(L, b, ok, "csv_quote");
}

static int l_csv_cell(lua_State *L) {
  cell c;
  luaL_checkany(L, 1);
  read_cell(L, 1, check_coltype(L, 2, 0, "csv_cell"), 0, NULL, "csv_cell", &c);
  bytebuf *b = scratch(L);
  return push_scratch(L, b, cells_csv(b, &c, 0), "csv_cell");
}

static int l_json_value(lua_State *L) {
  cell c;
  luaL_checkany(L, 1);
  read_cell(L, 1, check_coltype(L, 2, 0, "json_value"), 0, NULL, "json_value", &c);
  bytebuf *b = scratch(L);
  return push_scratch(L, b, cells_json(b, &c), "json_value");
}

/* Reads column i (1-based) of the row: its type from the types table at `types` and its
 * value from the values table at `values`. Leaves the stack as it found it. */
static void row_cell(lua_State *L, int values, int types, int i, const char *name,
                     const char *fn, cell *c) {
  lua_rawgeti(L, types, i);
  coltype t = check_coltype(L, -1, i, fn);
  lua_rawgeti(L, values, i);
  read_cell(L, -1, t, i, name, fn, c);
  lua_pop(L, 2);
}

static int row_count(lua_State *L, int values, int types, const char *fn) {
  lua_Unsigned nt = lua_rawlen(L, types), nv = lua_rawlen(L, values);
  if (nv > nt)
    luaL_error(L, "%s: the row has %d values but there are %d column types", fn, (int)nv,
               (int)nt);
  if (nt > (lua_Unsigned)INT32_MAX) luaL_error(L, "%s: too many columns", fn);
  return (int)nt;
}

/* csv_row(values, types, time, diff [, sep]): every cell quoted, then "time" and "diff". */
static int l_csv_row(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer time = check_int(L, 3), diff = check_int(L, 4);
  size_t seplen;
  const char *sep = luaL_optlstring(L, 5, ",", &seplen);
  int n = row_count(L, 1, 2, "csv_row");
  bytebuf *b = scratch(L);
  bool ok = true;
  for (int i = 1; i <= n && ok; i++) {
    cell c;
    row_cell(L, 1, 2, i, NULL, "csv_row", &c);
    ok = cells_csv_quoted(b, &c, sep, seplen);
  }
  ok = ok && cells_csv_tail(b, time, diff, sep, seplen);
  return push_scratch(L, b, ok, "csv_row");
}

/* json_row(values, names, types, time, diff): {"name":value,...,"diff":d,"time":t} */
static int l_json_row(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer time = check_int(L, 4), diff = check_int(L, 5);
  int n = row_count(L, 1, 3, "json_row");
  if (lua_rawlen(L, 2) != (lua_Unsigned)n)
    luaL_error(L, "json_row: %d names for %d column types", (int)lua_rawlen(L, 2), n);
  bytebuf *b = scratch(L);
  bool ok = bytebuf_append(b, "{", 1);
  for (int i = 1; i <= n && ok; i++) {
    size_t nl = 0;
    lua_rawgeti(L, 2, i);
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &nl) : NULL;
    lua_pop(L, 1); /* the names table keeps the string alive */
    if (!name) luaL_error(L, "json_row: name %d is not a string", i);
    cell c;
    row_cell(L, 1, 3, i, name, "json_row", &c);
    ok = cells_json_string(b, name, nl) && bytebuf_append(b, ":", 1) && cells_json(b, &c) &&
         bytebuf_append(b, ",", 1);
  }
  ok = ok && cells_json_tail(b, time, diff);
  return push_scratch(L, b, ok, "json_row");
}

int numfmt_push_lib(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"int", l_int},
      {"float", l_float},
      {"json_float", l_json_float},
      {"datetime", l_datetime},
      {"base64", l_base64},
      {"json_string", l_json_string},
      {"csv_quote", l_csv_quote},
      {"csv_cell", l_csv_cell},
      {"json_value", l_json_value},
      {"csv_row", l_csv_row},
      {"json_row", l_json_row},
      {NULL, NULL},
  };
  luaL_newlibtable(L, fns);
  bytebuf *b = lua_newuserdatauv(L, sizeof *b, 0);
  bytebuf_init(b, SCRATCH_MAX);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_createtable(L, 0, S3SINK_T_COUNT); /* type name -> type, for check_coltype */
  for (int t = 0; t < S3SINK_T_COUNT; t++) {
    if (t == S3SINK_T_ANY) continue; /* not a cell's type: each of its values has its own */
    lua_pushinteger(L, t);
    lua_setfield(L, -2, s3sink_column_type_info(t)->name);
  }
  luaL_setfuncs(L, fns, 2);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  encoders_push_constructors(L);
  return 1;
}
