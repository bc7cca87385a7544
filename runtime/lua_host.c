/* lua_host.c - the sandboxed Lua state of a sink: allocation cap, restricted globals,
 * script loading (bundled or by path), protected calls with a traceback and a work budget
 * that scripts cannot catch, counted pattern matching (lua_patterns.c), and string methods
 * that resolve to the running script's own string table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "bundled.h"
#include "error.h"
#include "lua_host.h"
#include "lua_patterns.h"
#include "numfmt.h"

#define LUAHOST_MEM_LIMIT ((size_t)512 << 20)        /* per sink */
#define LUAHOST_HOOK_EVERY 100000                    /* instructions between hook calls */
#define LUAHOST_CALL_BUDGET ((size_t)200 * 1000000)  /* instructions or pattern steps per call */
#define BUDGET_MESSAGE "script exceeded its instruction budget (200 million instructions " \
                       "or pattern-matching steps per call: a loop that does not end, or a " \
                       "pattern that backtracks too much)"

struct luahost {
  lua_State *L;
  size_t mem_used;
  size_t work;         /* instructions and pattern steps since the current call began */
  bool aborting;       /* the budget is spent: everything raises until the call returns */
  int handler_ref;     /* traceback message handler */
  int safe_env_ref;    /* table of allowed globals, copied into each script's env */
  int string_mt_ref;   /* the metatable of all strings */
  int active_strings;  /* strings_ref the metatable's __index is set to */
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

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Raises the budget error, and arms the hook to raise it again at every instruction, so
 * that no handler, finalizer or pcall loop of the script runs on. */
static void abort_call(lua_State *L, luahost *h) {
  if (!h->aborting) {
    h->aborting = true;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
  }
  lua_pushliteral(L, BUDGET_MESSAGE);
  lua_error(L);
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  luahost *h = host_of(L);
  if (h->aborting) abort_call(L, h);
  h->work += LUAHOST_HOOK_EVERY;
  if (h->work > LUAHOST_CALL_BUDGET) abort_call(L, h);
}

/* Pattern matching runs in C, where the hook never fires: it charges its steps here. */
static void charge_steps(lua_State *L, size_t steps) {
  luahost *h = host_of(L);
  h->work += steps;
  if (h->aborting || h->work > LUAHOST_CALL_BUDGET) abort_call(L, h);
}

/* pcall and xpcall for scripts: as Lua's, except that the budget error is passed on. */
static int sandbox_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  if (host_of(L)->aborting) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  lua_insert(L, 1);
  return status == LUA_OK ? lua_gettop(L) : 2;
}

/* The message handler xpcall really installs: Lua calls it where the error was raised,
 * and a budget error is raised from the count hook, where hooks are off; the script's
 * handler would run without a budget. So once the budget is spent it is skipped. */
static int guarded_handler(lua_State *L) {
  if (host_of(L)->aborting) return 1; /* the error as it is */
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int sandbox_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, guarded_handler, 1);
  lua_replace(L, 2);
  lua_pushvalue(L, 1); /* f, handler, args... -> f, handler, f, args... */
  lua_insert(L, 3);
  int status = lua_pcall(L, n - 2, LUA_MULTRET, 2);
  if (host_of(L)->aborting) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  lua_insert(L, 3);
  return status == LUA_OK ? lua_gettop(L) - 2 : 2;
}

/* setmetatable for scripts: Lua runs __gc finalizers with hooks off, so a finalizer
 * could loop without a budget; metatables with __gc are refused (the field is read when
 * setmetatable is called, so adding it later has no effect either). */
static int sandbox_setmetatable(lua_State *L) {
  if (lua_istable(L, 2) && (lua_pushliteral(L, "__gc"), lua_rawget(L, 2)) != LUA_TNIL)
    return luaL_error(L, "setmetatable: __gc metamethods are not allowed in scripts");
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1)); /* Lua's own setmetatable */
  lua_insert(L, 1);
  lua_call(L, 2, 1);
  return 1;
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
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "rawequal", "rawget",
    "rawlen", "rawset", "select", "tonumber", "tostring", "type", "_VERSION", NULL};

static int build_safe_env(lua_State *L) {
  lua_newtable(L);
  int env = lua_gettop(L);
  lua_pushglobaltable(L);
  for (const char *const *n = safe_base; *n; n++) {
    lua_getfield(L, -1, *n);
    lua_setfield(L, env, *n);
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, sandbox_pcall);
  lua_setfield(L, env, "pcall");
  lua_pushcfunction(L, sandbox_xpcall);
  lua_setfield(L, env, "xpcall");
  lua_getglobal(L, "setmetatable");
  lua_pushcclosure(L, sandbox_setmetatable, 1);
  lua_setfield(L, env, "setmetatable");
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
  luapat_install(L, -1, charge_steps);
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
  numfmt_push_lib(L);
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
  /* Scripts cannot reach the string metatable (getmetatable("") gives false), so one
   * script cannot change how another's strings behave; its __index is set to the running
   * script's own string table by luahost_pcall. */
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  h->string_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  h->active_strings = LUA_NOREF;
  return 0;
}

int luahost_new(luahost **out, s3sink_err *err) {
  luahost *h = calloc(1, sizeof *h);
  if (!h) return err_set(err, S3SINK_ENOMEM, "out of memory creating the Lua state");
  h->L = lua_newstate(host_alloc, h);
  if (!h->L) {
    free(h);
    return err_set(err, S3SINK_ENOMEM, "out of memory creating the Lua state");
  }
  lua_pushcfunction(h->L, host_init);
  lua_pushlightuserdata(h->L, h);
  if (lua_pcall(h->L, 1, 0, 0) != LUA_OK) {
    err_set(err, S3SINK_ENOMEM, "cannot initialize the Lua state: %s",
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

static void activate(luahost *h, const luahost_script *script) {
  if (!script || script->strings_ref == h->active_strings) return;
  lua_State *L = h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->string_mt_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, script->strings_ref);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  h->active_strings = script->strings_ref;
}

int luahost_pcall(luahost *h, const luahost_script *script, int nargs, int nresults,
                  int handler_idx, const char *context, s3sink_err *err) {
  activate(h, script);
  h->work = 0;
  if (h->aborting) { /* the last call spent its budget: back to the normal hook */
    h->aborting = false;
    lua_sethook(h->L, budget_hook, LUA_MASKCOUNT, LUAHOST_HOOK_EVERY);
  }
  int rc = lua_pcall(h->L, nargs, nresults, handler_idx);
  if (rc == LUA_OK) return S3SINK_OK;
  const char *msg = lua_tostring(h->L, -1);
  if (rc == LUA_ERRMEM) msg = "not enough memory (the script's state is limited to 512 MiB)";
  err_set(err, S3SINK_ESCRIPT, "%s: %s", context, msg ? msg : "(no message)");
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

/* The bundled script dir/name.lua, or NULL. */
static const bundled_script *find_bundled(const char *dir, const char *name) {
  if (!valid_bundled_name(name)) return NULL;
  size_t dl = strlen(dir);
  for (const bundled_script *s = bundled_scripts; s->path; s++)
    if (strncmp(s->path, dir, dl) == 0 && s->path[dl] == '/' && strcmp(s->name, name) == 0)
      return s;
  return NULL;
}

const char *luahost_bundled_name(const char *dir, size_t i) {
  size_t dl = strlen(dir);
  for (const bundled_script *s = bundled_scripts; s->path; s++)
    if (strncmp(s->path, dir, dl) == 0 && s->path[dl] == '/' && i-- == 0) return s->name;
  return NULL;
}

static const char *bundled_name_at(size_t i, void *dir) {
  return luahost_bundled_name(dir, i);
}

int luahost_check_script_name(const char *dir, const char *name, const char *what,
                              s3sink_err *err) {
  if (is_path(name) || find_bundled(dir, name)) return S3SINK_OK;
  char names[512];
  err_join_names(names, sizeof names, "'", bundled_name_at, (void *)dir);
  return err_set(err, S3SINK_EINVAL,
                 "unknown %s '%s': use one of %s, or the path of a Lua script "
                 "(ending in .lua)", what, name, names);
}

static char *read_file(const char *path, size_t *len, s3sink_err *err, const char *what) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    err_set(err, S3SINK_EINVAL, "cannot open %s script '%s': %s", what, path,
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
    err_set(err, bad ? S3SINK_EINVAL : S3SINK_ENOMEM, "cannot read %s script '%s'", what,
            path);
    return NULL;
  }
  *len = n;
  return buf;
}

/* Copies the safe globals into a new table, and each library table into a new one too: a
 * script's assignments (even to string.format or fmt.csv_row) stay in its own globals.
 * Returns a registry reference to the script's string table. */
static int push_script_env(luahost *h) {
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
  lua_getfield(L, env, "string");
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

void luahost_unref_script(luahost *h, luahost_script *s) {
  if (h) {
    luaL_unref(h->L, LUA_REGISTRYINDEX, s->ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, s->strings_ref);
    if (h->active_strings == s->strings_ref) h->active_strings = LUA_NOREF;
  }
  free(s->label);
  *s = (luahost_script)LUAHOST_NO_SCRIPT;
}

int luahost_load_script(luahost *h, const char *dir, const char *name, const char *what,
                        luahost_script *out, s3sink_err *err) {
  lua_State *L = h->L;
  *out = (luahost_script)LUAHOST_NO_SCRIPT;
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
    int rc = luahost_check_script_name(dir, name, what, err);
    if (rc) return rc;
    const bundled_script *b = find_bundled(dir, name);
    src = b->source;
    len = b->len;
    snprintf(chunk, sizeof chunk, "=[bundled %s]", b->path);
  }

  int handler = luahost_push_handler(h);
  /* text chunks only: a binary chunk could crash the VM */
  int rc = luaL_loadbufferx(L, src, len, chunk, "t");
  free(owned);
  if (rc != LUA_OK) {
    err_set(err, S3SINK_ESCRIPT, "cannot load %s script: %s", what,
            lua_tostring(L, -1));
    lua_settop(L, top);
    return S3SINK_ESCRIPT;
  }
  out->strings_ref = push_script_env(h);
  lua_setupvalue(L, -2, 1); /* _ENV */
  out->label = strdup(chunk + 1);
  if (!out->label) {
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
    goto fail;
  }
  char ctx[640];
  snprintf(ctx, sizeof ctx, "%s script %s failed", what, out->label);
  rc = luahost_pcall(h, out, 0, 1, handler, ctx, err);
  if (rc != S3SINK_OK) goto fail;
  if (!lua_istable(L, -1)) {
    rc = err_set(err, S3SINK_ESCRIPT, "%s script %s must return a table, not a %s", what,
                 out->label, luaL_typename(L, -1));
    goto fail;
  }
  out->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, top);
  return S3SINK_OK;
fail:
  lua_settop(L, top);
  luahost_unref_script(h, out);
  return rc;
}
