/* lua_util.c - see lua_util.h. */
#include <string.h>

#include <lauxlib.h>

#include "lua_util.h"

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
