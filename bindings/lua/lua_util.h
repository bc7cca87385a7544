/* lua_util.h - what every part of the Lua module does alike: reading option tables and
 * declaring userdata types. Option misuse raises a Lua error naming the function and the
 * option; strings returned are borrowed from the table, which keeps them alive while it
 * is reachable. */
#ifndef S3SINK_LUA_UTIL_H
#define S3SINK_LUA_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <lauxlib.h>
#include <lua.h>

#include "s3sink.h"

/* Raises if the table at t has a key not in `known` (NULL-terminated): a typo would
 * otherwise silently mean "default". */
void lopt_check_known(lua_State *L, int t, const char *fn, const char *const *known);

/* A string without NUL bytes (any bytes when len is non-NULL), or NULL when absent. */
const char *lopt_string(lua_State *L, int t, const char *fn, const char *name, bool required,
                        size_t *len);

/* Sets cfg's options from the table at t, by the runtime's option table: each value
 * must have its option's type and pass its rules, else a Lua error naming the option
 * (and, for a misspelt name, the option meant). Keys in `own` (NULL-terminated) are the
 * binding's own and are skipped. Strings are borrowed from the table; a list option given
 * as a sequence of strings is joined into a string, and maps (tables of strings) are
 * copied into memory: both are kept in a table this pushes, which must stay on the stack
 * until cfg is used. */
void lutil_read_options(lua_State *L, int t, const char *fn, const char *const *own,
                        s3sink_config *cfg);

/* The one way a call reports a failure: pushes nil, message, code (the S3 error code such
 * as "NoSuchBucket", else the category, e.g. "transport error"); returns 3. */
int lutil_push_failure(lua_State *L, const s3sink_err *e);

bool lopt_bool(lua_State *L, int t, const char *fn, const char *name, bool dflt);

lua_Integer lopt_int(lua_State *L, int t, const char *fn, const char *name, lua_Integer dflt);

/* Creates (once) the metatable `name` for a userdata type: `methods` as __index (unless
 * NULL), `gc` as __gc and, when `closes`, as __close too. Leaves it on the stack. */
void lutil_metatable(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                     bool closes);

/* Pushes a zeroed userdata of `size` bytes whose metatable (made by lutil_metatable)
 * frees what it owns with `gc` when collected; returns its memory. */
void *lutil_push_owned(lua_State *L, size_t size, const char *name, lua_CFunction gc);

#endif
