/* lua_host.c - the sandboxed Lua state of a sink: allocation cap, restricted globals,
 * script loading (bundled or by path), protected calls with a traceback. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "bundled.h"
#include "lua_host.h"
#include "numfmt.h"
#include "s3client.h"

#define LUAHOST_MEM_LIMIT ((size_t)512 << 20)       /* per sink */
#define LUAHOST_HOOK_EVERY 1000000                  /* instructions between hook calls */
#define LUAHOST_CALL_BUDGET 200                     /* hook calls per protected call */

struct luahost {
  lua_State *L;
  size_t mem_used;
  int hook_ticks;      /* hook calls since the current protected call began */
  int handler_ref;     /* traceback message handler */
  int safe_env_ref;    /* table of allowed globals, copied into each script's env */
};

static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  luahost *h = ud;
  if (!ptr) osize = 0;
  if (nsize == 0) {
    free(ptr);
    h->mem_used -= osize;
    return NULL;
  }
  if (nsize > osize && h->mem_used - osize + nsize > LUAHOST_MEM_LIMIT) return NULL;
  void *p = realloc(ptr, nsize);
  if (p) h->mem_used = h->mem_used - osize + nsize;
  return p;
}

static luahost *host_of(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

/* Stops runaway scripts: each protected call gets a budget of instructions. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  luahost *h = host_of(L);
  if (++h->hook_ticks > LUAHOST_CALL_BUDGET)
    luaL_error(L, "script exceeded its instruction budget (%d million instructions per call)",
               LUAHOST_CALL_BUDGET);
}

static int traceback_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Globals a script may use. Everything else (io, os.execute, require, load, dofile,
 * debug, package, print) is absent. */
static const char *const safe_base[] = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal",
    "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type",
    "xpcall", "_VERSION", NULL};

static int build_safe_env(lua_State *L) {
  lua_newtable(L);
  int env = lua_gettop(L);
  lua_pushglobaltable(L);
  for (const char *const *n = safe_base; *n; n++) {
    lua_getfield(L, -1, *n);
    lua_setfield(L, env, *n);
  }
  lua_pop(L, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
  lua_setfield(L, env, "string");
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
  lua_setfield(L, env, "table");
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
  lua_setfield(L, env, "math");
  luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
  lua_setfield(L, env, "utf8");
  /* os: only the clock and date functions */
  luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
  lua_createtable(L, 0, 3);
  static const char *const os_safe[] = {"time", "date", "clock", "difftime", NULL};
  for (const char *const *n = os_safe; *n; n++) {
    lua_getfield(L, -2, *n);
    lua_setfield(L, -2, *n);
  }
  lua_setfield(L, env, "os");
  lua_pop(L, 1);
  s3sink_push_fmtlib(L);
  lua_setfield(L, env, "fmt");
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int host_init(lua_State *L) {
  luahost *h = lua_touserdata(L, 1);
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  lua_pop(L, 1);
  lua_pushcfunction(L, traceback_handler);
  h->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  h->safe_env_ref = build_safe_env(L);
  return 0;
}

int luahost_new(luahost **out, s3sink_err *err) {
  luahost *h = calloc(1, sizeof *h);
  if (!h) return s3sink_seterr(err, S3SINK_ENOMEM, "out of memory creating the Lua state");
  h->L = lua_newstate(host_alloc, h);
  if (!h->L) {
    free(h);
    return s3sink_seterr(err, S3SINK_ENOMEM, "out of memory creating the Lua state");
  }
  lua_pushcfunction(h->L, host_init);
  lua_pushlightuserdata(h->L, h);
  if (lua_pcall(h->L, 1, 0, 0) != LUA_OK) {
    s3sink_seterr(err, S3SINK_ENOMEM, "cannot initialize the Lua state: %s",
                  lua_tostring(h->L, -1));
    luahost_free(h);
    return S3SINK_ENOMEM;
  }
  lua_sethook(h->L, budget_hook, LUA_MASKCOUNT, LUAHOST_HOOK_EVERY);
  *out = h;
  return S3SINK_OK;
}

void luahost_free(luahost *h) {
  if (!h) return;
  if (h->L) lua_close(h->L);
  free(h);
}

lua_State *luahost_state(luahost *h) { return h->L; }

int luahost_push_handler(luahost *h) {
  lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->handler_ref);
  return lua_gettop(h->L);
}

int luahost_pcall(luahost *h, int nargs, int nresults, int handler_idx, const char *context,
                  s3sink_err *err) {
  h->hook_ticks = 0;
  int rc = lua_pcall(h->L, nargs, nresults, handler_idx);
  if (rc == LUA_OK) return S3SINK_OK;
  const char *msg = lua_tostring(h->L, -1);
  if (rc == LUA_ERRMEM) msg = "not enough memory (the script's state is limited to 512 MiB)";
  s3sink_seterr(err, S3SINK_ESCRIPT, "%s: %s", context, msg ? msg : "(no message)");
  lua_pop(h->L, 1);
  return S3SINK_ESCRIPT;
}

static bool is_path(const char *name) {
  size_t n = strlen(name);
  return strchr(name, '/') || (n > 4 && strcmp(name + n - 4, ".lua") == 0);
}

static bool valid_bundled_name(const char *name) {
  if (!*name) return false;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
      return false;
  return true;
}

/* Lists the bundled names under dir, for error messages. */
static void bundled_names(const char *dir, char *buf, size_t cap) {
  size_t dl = strlen(dir), used = 0;
  buf[0] = 0;
  for (const s3sink_bundled_script *s = s3sink_bundled_scripts; s->path; s++) {
    if (strncmp(s->path, dir, dl) != 0 || s->path[dl] != '/') continue;
    const char *base = s->path + dl + 1;
    int n = snprintf(buf + used, cap - used, "%s'%.*s'", used ? ", " : "",
                     (int)(strlen(base) - 4), base);
    if (n < 0 || (size_t)n >= cap - used) break;
    used += (size_t)n;
  }
}

static char *read_file(const char *path, size_t *len, s3sink_err *err, const char *what) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    s3sink_seterr(err, S3SINK_EINVAL, "cannot open %s script '%s': %s", what, path,
                  strerror(errno));
    return NULL;
  }
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char *nb = realloc(buf, cap * 2);
    if (!nb) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = nb;
    cap *= 2;
  }
  bool bad = ferror(f);
  fclose(f);
  if (!buf || bad) {
    free(buf);
    s3sink_seterr(err, bad ? S3SINK_EINVAL : S3SINK_ENOMEM, "cannot read %s script '%s'", what,
                  path);
    return NULL;
  }
  *len = n;
  return buf;
}

/* Copies the safe globals into a new table, and each library table into a new one too: a
 * script's assignments (even to string.format or fmt.csv_row) stay in its own globals. */
static void push_script_env(luahost *h) {
  lua_State *L = h->L;
  lua_newtable(L);
  int env = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->safe_env_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_istable(L, -1)) {
      lua_newtable(L);
      lua_pushnil(L);
      while (lua_next(L, -3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
      }
      lua_remove(L, -2);
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, env);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G");
}

int luahost_load_script(luahost *h, const char *dir, const char *name, const char *what,
                        int *ref, const char **label, s3sink_err *err) {
  lua_State *L = h->L;
  int top = lua_gettop(L);
  const char *src = NULL;
  size_t len = 0;
  char *owned = NULL;
  char chunk[600];

  if (is_path(name)) {
    owned = read_file(name, &len, err, what);
    if (!owned) return err ? err->code : S3SINK_EINVAL;
    src = owned;
    snprintf(chunk, sizeof chunk, "@%s", name);
  } else {
    char want[256];
    snprintf(want, sizeof want, "%s/%s.lua", dir, name);
    if (valid_bundled_name(name))
      for (const s3sink_bundled_script *s = s3sink_bundled_scripts; s->path; s++)
        if (strcmp(s->path, want) == 0) {
          src = s->source;
          len = s->len;
          break;
        }
    if (!src) {
      char names[512];
      bundled_names(dir, names, sizeof names);
      return s3sink_seterr(err, S3SINK_EINVAL,
                           "unknown %s '%s': use one of %s, or the path of a Lua script "
                           "(ending in .lua)",
                           what, name, names);
    }
    snprintf(chunk, sizeof chunk, "=[bundled %s]", want);
  }

  int handler = luahost_push_handler(h);
  /* text chunks only: a binary chunk could crash the VM */
  int rc = luaL_loadbufferx(L, src, len, chunk, "t");
  free(owned);
  if (rc != LUA_OK) {
    s3sink_seterr(err, S3SINK_ESCRIPT, "cannot load %s script: %s", what,
                  lua_tostring(L, -1));
    lua_settop(L, top);
    return S3SINK_ESCRIPT;
  }
  push_script_env(h);
  lua_setupvalue(L, -2, 1); /* _ENV */
  char ctx[640];
  snprintf(ctx, sizeof ctx, "%s script %s failed", what, chunk + 1);
  rc = luahost_pcall(h, 0, 1, handler, ctx, err);
  if (rc != S3SINK_OK) {
    lua_settop(L, top);
    return rc;
  }
  if (!lua_istable(L, -1)) {
    s3sink_seterr(err, S3SINK_ESCRIPT, "%s script %s must return a table, not a %s", what,
                  chunk + 1, luaL_typename(L, -1));
    lua_settop(L, top);
    return S3SINK_ESCRIPT;
  }
  /* keep the script's name for messages, in the script table itself */
  lua_pushstring(L, chunk + 1);
  lua_setfield(L, -2, "__script_name");
  lua_getfield(L, -1, "__script_name");
  *label = lua_tostring(L, -1); /* anchored by the script table, itself anchored by ref */
  lua_pop(L, 1);
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, top);
  return S3SINK_OK;
}
