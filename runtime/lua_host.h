/* lua_host.h - internal: one sandboxed lua_State per sink, the scripts loaded into it and
 * protected calls with tracebacks and a work budget. Used by one thread at a time (the
 * sink's lock). */
#ifndef S3SINK_LUA_HOST_H
#define S3SINK_LUA_HOST_H

#include <stddef.h>

#include <lua.h>

#include "s3sink.h"

typedef struct luahost luahost;

/* A loaded script. */
typedef struct luahost_script {
  int ref;          /* the table the script returned, in the registry */
  int strings_ref;  /* the script's own copy of the string library, which string methods
                       ("x"):upper() resolve to while the script runs */
  char *label;      /* the script's name for messages (owned) */
} luahost_script;

#define LUAHOST_NO_SCRIPT {LUA_NOREF, LUA_NOREF, NULL}

int luahost_new(luahost **out, s3sink_err *err);
void luahost_free(luahost *h);
lua_State *luahost_state(luahost *h);

/* Loads a script given as a bundled name (looked up as "<dir>/<name>.lua" among the
 * scripts compiled into the library) or as a file path (anything with a '/' or ending in
 * ".lua"), runs it in its own restricted environment and keeps the table it returns.
 * `what` ("format", "naming") is used in messages. */
int luahost_load_script(luahost *h, const char *dir, const char *name, const char *what,
                        luahost_script *out, s3sink_err *err);
void luahost_unref_script(luahost *h, luahost_script *s);

/* S3SINK_OK if `name` names a script luahost_load_script can try: a file path, or a
 * script bundled under dir; otherwise EINVAL listing the bundled names. */
int luahost_check_script_name(const char *dir, const char *name, const char *what,
                              s3sink_err *err);

/* The name ("csv") of the i-th script bundled under dir (static); NULL when i is past
 * the last one. */
const char *luahost_bundled_name(const char *dir, size_t i);

/* Pushes the traceback message handler; returns its stack index. */
int luahost_push_handler(luahost *h);

/* lua_pcall of a function of `script` (whose string methods are made current), with the
 * handler at `handler_idx`; on error fills err with ESCRIPT, prefixed by `context`, and
 * pops the message. Every call gets a fresh work budget, which the script cannot escape:
 * once spent, every instruction raises again and pcall/xpcall pass the error on. */
int luahost_pcall(luahost *h, const luahost_script *script, int nargs, int nresults,
                  int handler_idx, const char *context, s3sink_err *err);

#endif
