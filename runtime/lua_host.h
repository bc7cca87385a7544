/* lua_host.h - internal: one sandboxed lua_State per sink, the scripts loaded into it and
 * protected calls with tracebacks. Used by one thread at a time (the sink's lock). */
#ifndef S3SINK_LUA_HOST_H
#define S3SINK_LUA_HOST_H

#include <lua.h>

#include "s3sink.h"

typedef struct luahost luahost;

int luahost_new(luahost **out, s3sink_err *err);
void luahost_free(luahost *h);
lua_State *luahost_state(luahost *h);

/* Loads a script given as a bundled name (looked up as "<dir>/<name>.lua" among the
 * scripts compiled into the library) or as a file path (anything with a '/' or ending in
 * ".lua"), runs it in its own restricted environment and stores the table it returns in
 * the registry: *ref. `what` ("format", "naming") is used in messages. *label receives a
 * static or host-owned name of the script for later messages. */
int luahost_load_script(luahost *h, const char *dir, const char *name, const char *what,
                        int *ref, const char **label, s3sink_err *err);

/* Pushes the traceback message handler; returns its stack index. */
int luahost_push_handler(luahost *h);

/* lua_pcall with the handler at `handler_idx`; on error fills err with ESCRIPT, prefixed
 * by `context`, and pops the message. The instruction budget is reset for every call. */
int luahost_pcall(luahost *h, int nargs, int nresults, int handler_idx, const char *context,
                  s3sink_err *err);

#endif
