/* options.h - reading option tables passed from Lua: one behaviour for every function of
 * the module. Misuse raises a Lua error naming the function and the option. Strings
 * returned are borrowed from the table, which keeps them alive while it is reachable. */
#ifndef S3SINK_LUA_OPTIONS_H
#define S3SINK_LUA_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

/* Raises if the table at t has a key not in `known` (NULL-terminated): a typo would
 * otherwise silently mean "default". */
void lopt_check_known(lua_State *L, int t, const char *fn, const char *const *known);

/* A string without NUL bytes (any bytes when len is non-NULL), or NULL when absent. */
const char *lopt_string(lua_State *L, int t, const char *fn, const char *name, bool required,
                        size_t *len);

bool lopt_bool(lua_State *L, int t, const char *fn, const char *name, bool dflt);

lua_Integer lopt_int(lua_State *L, int t, const char *fn, const char *name, lua_Integer dflt);

#endif
