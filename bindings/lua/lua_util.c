/* lua_util.c - see lua_util.h. */
#include <string.h>

#include <lauxlib.h>

#include "lua_util.h"
#include "s3sink.h"

void lopt_check_known(lua_State *L, int t, const char *fn, const char *const *known) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    bool ok = false;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, lua_tostring(L, -2)) == 0;
    if (!ok) {
      lua_pushvalue(L, -2);
      luaL_error(L, "%s: unknown option '%s'", fn, luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
  }
}

static bool is_own(const char *name, const char *const *own) {
  for (; *own; own++)
    if (strcmp(*own, name) == 0) return true;
  return false;
}

/* The names of a list given as a Lua sequence of strings, joined by commas (as the runtime
 * takes them), stored in the table at `anchor` so the text lives as long as it. */
static const char *join_list(lua_State *L, const char *fn, const char *name, int anchor) {
  int list = lua_absindex(L, -1);
  lua_Integer n = (lua_Integer)lua_rawlen(L, list);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, list, i) != LUA_TSTRING)
      luaL_error(L, "%s: option '%s' must be a string or a list of strings", fn, name);
    size_t len;
    const char *item = lua_tolstring(L, -1, &len);
    if (memchr(item, ',', len))
      luaL_error(L, "%s: option '%s': the name '%s' holds a comma, which separates names", fn,
                 name, item);
    lua_pop(L, 1);
    if (i > 1) luaL_addchar(&b, ',');
    luaL_addlstring(&b, item, len);
  }
  luaL_pushresult(&b);
  const char *joined = lua_tostring(L, -1);
  lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  return joined;
}

/* The string at idx, which must be a string without NUL bytes. */
static const char *map_text(lua_State *L, int idx, const char *fn, const char *name, size_t *n) {
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, n) : NULL;
  if (!s)
    luaL_error(L, "%s: option '%s' must map strings to strings, not hold a %s", fn, name,
               luaL_typename(L, idx));
  if (strlen(s) != *n) luaL_error(L, "%s: option '%s' holds a NUL byte", fn, name);
  return s;
}

/* The table on top of the stack as pairs, copied with their strings into one userdata
 * that is put in the table at `anchor` (it lives as long as that table). */
static void read_map(lua_State *L, const char *fn, const char *name, int anchor,
                     s3sink_config *cfg, s3sink_err *e, int *rc) {
  int t = lua_gettop(L);
  size_t n = 0, bytes = 0, len;
  for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
    bytes += strlen(map_text(L, -2, fn, name, &len)) + 1;
    bytes += strlen(map_text(L, -1, fn, name, &len)) + 1;
    n++;
  }
  s3sink_pair *pairs = lua_newuserdatauv(L, n * sizeof *pairs + bytes, 0);
  char *text = (char *)(pairs + n);
  size_t i = 0;
  for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1), i++) {
    const char *k = lua_tolstring(L, -2, &len);
    memcpy(text, k, len + 1);
    pairs[i].key = text;
    text += len + 1;
    const char *v = lua_tolstring(L, -1, &len);
    memcpy(text, v, len + 1);
    pairs[i].value = text;
    text += len + 1;
  }
  lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
  *rc = s3sink_config_set_map(cfg, name, pairs, n, e);
}

/* Sets one option from the value on top of the stack. */
static void read_option(lua_State *L, const char *fn, const char *name, int anchor,
                        s3sink_config *cfg) {
  const s3sink_option *o = s3sink_option_find(name);
  s3sink_err e;
  int rc;
  if (!o) {
    rc = s3sink_config_set_string(cfg, name, NULL, &e); /* names the option meant */
  } else if (o->type == S3SINK_OPTION_STRING && o->list && lua_type(L, -1) == LUA_TTABLE) {
    rc = s3sink_config_set_string(cfg, name, join_list(L, fn, name, anchor), &e);
  } else if (o->type == S3SINK_OPTION_STRING) {
    size_t n;
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (!v) luaL_error(L, "%s: option '%s' must be a string, not a %s", fn, name, luaL_typename(L, -1));
    if (strlen(v) != n) luaL_error(L, "%s: option '%s' holds a NUL byte", fn, name);
    rc = s3sink_config_set_string(cfg, name, v, &e);
  } else if (o->type == S3SINK_OPTION_INT) {
    if (!lua_isinteger(L, -1))
      luaL_error(L, "%s: option '%s' must be an integer, not a %s", fn, name,
                 lua_type(L, -1) == LUA_TNUMBER ? "float" : luaL_typename(L, -1));
    rc = s3sink_config_set_int(cfg, name, (int64_t)lua_tointeger(L, -1), &e);
  } else if (o->type == S3SINK_OPTION_MAP) {
    if (!lua_istable(L, -1))
      luaL_error(L, "%s: option '%s' must be a table, not a %s", fn, name, luaL_typename(L, -1));
    read_map(L, fn, name, anchor, cfg, &e, &rc);
  } else {
    if (!lua_isboolean(L, -1))
      luaL_error(L, "%s: option '%s' must be a boolean, not a %s", fn, name, luaL_typename(L, -1));
    rc = s3sink_config_set_bool(cfg, name, lua_toboolean(L, -1), &e);
  }
  if (rc) luaL_error(L, "%s: %s", fn, e.msg);
}

void lutil_read_options(lua_State *L, int t, const char *fn, const char *const *own,
                        s3sink_config *cfg) {
  t = lua_absindex(L, t);
  lua_newtable(L); /* the anchor of joined lists and copied maps, left on the stack */
  int anchor = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pushvalue(L, -2);
      luaL_error(L, "%s: unknown option '%s'", fn, luaL_tolstring(L, -1, NULL));
    }
    const char *name = lua_tostring(L, -2);
    if (!is_own(name, own)) read_option(L, fn, name, anchor, cfg);
    lua_pop(L, 1);
  }
}

int lutil_push_failure(lua_State *L, const s3sink_err *e) {
  lua_pushnil(L);
  lua_pushstring(L, e->msg[0] ? e->msg : s3sink_strerror(e->code));
  lua_pushstring(L, e->s3_code[0] ? e->s3_code : s3sink_strerror(e->code));
  return 3;
}

const char *lopt_string(lua_State *L, int t, const char *fn, const char *name, bool required,
                        size_t *len) {
  int ty = lua_getfield(L, t, name);
  const char *s = NULL;
  if (ty == LUA_TNIL) {
    if (required) luaL_error(L, "%s: option '%s' is required", fn, name);
  } else if (ty != LUA_TSTRING) {
    luaL_error(L, "%s: option '%s' must be a string, not a %s", fn, name, luaL_typename(L, -1));
  } else {
    size_t n;
    s = lua_tolstring(L, -1, &n);
    if (!len && strlen(s) != n) luaL_error(L, "%s: option '%s' holds a NUL byte", fn, name);
    if (len) *len = n;
  }
  lua_pop(L, 1);
  return s;
}

bool lopt_bool(lua_State *L, int t, const char *fn, const char *name, bool dflt) {
  int ty = lua_getfield(L, t, name);
  bool v = dflt;
  if (ty == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL)
    luaL_error(L, "%s: option '%s' must be a boolean, not a %s", fn, name, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

lua_Integer lopt_int(lua_State *L, int t, const char *fn, const char *name, lua_Integer dflt) {
  int ty = lua_getfield(L, t, name);
  lua_Integer v = dflt;
  if (ty != LUA_TNIL) {
    if (!lua_isinteger(L, -1)) luaL_error(L, "%s: option '%s' must be an integer", fn, name);
    v = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

void lutil_metatable(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                     bool closes) {
  if (!luaL_newmetatable(L, name)) return;
  if (methods) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  if (closes) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
  }
}

void *lutil_push_owned(lua_State *L, size_t size, const char *name, lua_CFunction gc) {
  void *p = lua_newuserdatauv(L, size, 0);
  memset(p, 0, size);
  lutil_metatable(L, name, NULL, gc, false);
  lua_setmetatable(L, -2);
  return p;
}
