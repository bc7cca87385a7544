/* lua_patterns.h - internal: string.find, string.match, string.gmatch and string.gsub for
 * sandboxed scripts, with Lua 5.4's pattern semantics but a matcher that counts its steps.
 *
 * Lua's own matcher runs in C, where the instruction-count hook never fires, and a pattern
 * such as "a-a-a-a-a-b" backtracks polynomially in the subject's length: a script could
 * hang the host inside one call. This matcher charges every step to the caller's budget
 * (see lua_host.c), so such a call ends with the budget error instead. */
#ifndef S3SINK_LUA_PATTERNS_H
#define S3SINK_LUA_PATTERNS_H

#include <stddef.h>

#include <lua.h>

/* Charges `steps` units of work to the running call's budget; raises (never returns) once
 * the budget is spent. */
typedef void (*luapat_charge_fn)(lua_State *L, size_t steps);

/* Replaces find, match, gmatch and gsub in the table at `idx` (a copy of the string
 * library) by the counting versions, which call `charge` as they work. */
void luapat_install(lua_State *L, int idx, luapat_charge_fn charge);

#endif
