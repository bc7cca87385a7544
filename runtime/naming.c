/* naming.c - calls a naming policy's functions (see naming.h) with a protected call and
 * checks what they return. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "error.h"
#include "options.h"
#include "naming.h"

#define MAX_KEY_LEN 1024 /* S3's limit on key length, in bytes */

struct naming {
  luahost *host;
  luahost_script script;
  bool has_owns, has_start_after;
};

static bool has_function(lua_State *L, int script_ref, const char *field) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, script_ref);
  lua_getfield(L, -1, field);
  bool yes = lua_isfunction(L, -1);
  lua_pop(L, 2);
  return yes;
}

int naming_open(luahost *host, const char *name, naming **out, s3sink_err *err) {
  *out = NULL;
  naming *n = calloc(1, sizeof *n);
  if (!n) return err_set(err, S3SINK_ENOMEM, "out of memory");
  n->host = host;
  int rc = luahost_load_script(host, NAMING_DIR, name ? name : options_default_string("naming"), "naming",
                               &n->script, err);
  if (rc) {
    free(n);
    return rc;
  }
  lua_State *L = luahost_state(host);
  if (!has_function(L, n->script.ref, "name")) {
    rc = err_set(err, S3SINK_ESCRIPT,
                 "naming script %s must have a function 'name(ctx)' returning the key",
                 n->script.label);
    naming_free(n);
    return rc;
  }
  n->has_owns = has_function(L, n->script.ref, "owns");
  n->has_start_after = has_function(L, n->script.ref, "start_after");
  *out = n;
  return S3SINK_OK;
}

void naming_free(naming *n) {
  if (!n) return;
  luahost_unref_script(n->host, &n->script);
  free(n);
}

const char *naming_label(const naming *n) { return n->script.label; }

static void set_int(lua_State *L, const char *k, int64_t v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* Pushes the handler and the script's function `fn`; returns the handler's index. */
static int push_call(naming *n, const char *fn) {
  lua_State *L = luahost_state(n->host);
  lua_settop(L, 0);
  int handler = luahost_push_handler(n->host);
  lua_rawgeti(L, LUA_REGISTRYINDEX, n->script.ref);
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  return handler;
}

static int call(naming *n, const char *fn, int handler, s3sink_err *err) {
  char ctx[300];
  snprintf(ctx, sizeof ctx, "naming script %s: %s() failed", n->script.label, fn);
  return luahost_pcall(n->host, &n->script, 1, 1, handler, ctx, err);
}

int naming_name(naming *n, const naming_ctx *c, char **key, s3sink_err *err) {
  *key = NULL;
  lua_State *L = luahost_state(n->host);
  int handler = push_call(n, "name");
  lua_createtable(L, 0, 16);
  set_str(L, "prefix", c->prefix);
  set_str(L, "extension", c->extension);
  set_int(L, "sequence", (int64_t)c->sequence);
  set_int(L, "flush_time_ms", c->flush_time_ms);
  set_int(L, "first_time", c->first_time);
  set_int(L, "last_time", c->last_time);
  set_int(L, "rows", (int64_t)c->rows);
  set_int(L, "bytes", (int64_t)c->bytes);
  set_str(L, "writer_id", c->writer_id);
  set_str(L, "last_key", c->last_key);
  if (c->has_event) {
    set_int(L, "min_event_time_ns", c->min_event);
    set_int(L, "max_event_time_ns", c->max_event);
  }
  if (c->partition_path) {
    set_str(L, "partition_path", c->partition_path);
    lua_createtable(L, 0, (int)c->npartition);
    for (size_t i = 0; i < c->npartition; i++)
      set_str(L, partition_column_name(c->partitioner, i), c->partition_values[i]);
    lua_setfield(L, -2, "partition");
  }
  int rc = call(n, "name", handler, err);
  if (rc) return rc;
  const char *label = n->script.label;
  size_t len;
  const char *k = lua_tolstring(L, -1, &len);
  if (lua_type(L, -1) != LUA_TSTRING)
    rc = err_set(err, S3SINK_ESCRIPT, "naming script %s: name() must return a string, not a %s",
                 label, luaL_typename(L, -1));
  else if (len == 0 || len > MAX_KEY_LEN || strlen(k) != len)
    rc = err_set(err, S3SINK_ESCRIPT,
                 "naming script %s returned an invalid key (empty, over %d bytes, or "
                 "containing NUL)", label, MAX_KEY_LEN);
  else if (strncmp(k, c->prefix, strlen(c->prefix)) != 0)
    rc = err_set(err, S3SINK_ESCRIPT,
                 "naming script %s returned key '%s', which is not under the prefix '%s'",
                 label, k, c->prefix);
  else if (c->last_key && strcmp(k, c->last_key) <= 0)
    rc = err_set(err, S3SINK_ESCRIPT,
                 "naming script %s returned key '%s', which does not sort after the "
                 "previous key '%s': keys must increase so readers see every object "
                 "(use a new prefix, or a policy whose keys increase)",
                 label, k, c->last_key);
  else if (!(*key = strdup(k)))
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
  lua_settop(L, 0);
  return rc;
}

int naming_owns(naming *n, const char *prefix, const char *key, bool *owns, s3sink_err *err) {
  *owns = true;
  if (!n->has_owns) return S3SINK_OK;
  lua_State *L = luahost_state(n->host);
  int handler = push_call(n, "owns");
  lua_createtable(L, 0, 2);
  set_str(L, "prefix", prefix);
  set_str(L, "key", key);
  int rc = call(n, "owns", handler, err);
  if (rc == S3SINK_OK) *owns = lua_toboolean(L, -1);
  lua_settop(L, 0);
  return rc;
}

int naming_start_after(naming *n, const char *prefix, const char *writer_id, int64_t now_ms,
                       char **out, s3sink_err *err) {
  *out = NULL;
  if (!n->has_start_after) return S3SINK_OK;
  lua_State *L = luahost_state(n->host);
  int handler = push_call(n, "start_after");
  lua_createtable(L, 0, 3);
  set_str(L, "prefix", prefix);
  set_str(L, "writer_id", writer_id);
  set_int(L, "now_ms", now_ms);
  int rc = call(n, "start_after", handler, err);
  if (rc == S3SINK_OK && !lua_isnil(L, -1)) {
    size_t len;
    const char *k = lua_tolstring(L, -1, &len);
    if (lua_type(L, -1) != LUA_TSTRING || len > MAX_KEY_LEN || strlen(k) != len ||
        strncmp(k, prefix, strlen(prefix)) != 0)
      rc = err_set(err, S3SINK_ESCRIPT,
                   "naming script %s: start_after() must return nil or a key under the "
                   "prefix '%s'", n->script.label, prefix);
    else if (!(*out = strdup(k)))
      rc = err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  lua_settop(L, 0);
  return rc;
}
