/* module.c - the Lua module `s3sink`: sinks and formatters as userdata with metatables,
 * plus the signer. Misuse (wrong argument types, unknown options)
 * raises; runtime failures return nil, message, code. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_signer.h"
#include "lua_util.h"
#include "s3sink.h"

#define SINK_MT "s3sink.Sink"
#define FORMATTER_MT "s3sink.Formatter"

/* Kind marker of "any" columns, whose values convert by their Lua type. */
#define KIND_ANY ((int)S3SINK_V_JSON + 1)

/* Value kind expected for each column type, so Lua values convert without guessing. */
static int kind_of_type(const char *type) {
  int t = s3sink_column_type_find(type);
  if (t == S3SINK_T_ANY) return KIND_ANY;
  return t < 0 ? S3SINK_V_NULL /* unknown: the core reports it */
               : (int)s3sink_column_type_info((s3sink_type)t)->kind;
}

/* Columns parsed from a Lua array; names and types point into Lua strings anchored in
 * the `columns` table, so they are valid while it is on the stack. */
typedef struct columns {
  s3sink_column *cols;
  int *kinds; /* s3sink_kind, or KIND_ANY */
  size_t n;
} columns;

static void columns_free(columns *c) {
  free(c->cols);
  free(c->kinds);
  c->cols = NULL;
  c->kinds = NULL;
}

static void check_columns_arg(lua_State *L, int cfg, columns *out) {
  lua_getfield(L, cfg, "columns");
  if (!lua_istable(L, -1)) luaL_error(L, "config.columns must be an array of {name=, type=, optional=}");
  int t = lua_gettop(L);
  size_t n = (size_t)lua_rawlen(L, t);
  if (n == 0) luaL_error(L, "config.columns is empty: give at least one column");
  out->cols = calloc(n, sizeof *out->cols);
  out->kinds = calloc(n, sizeof *out->kinds);
  out->n = n;
  if (!out->cols || !out->kinds) {
    columns_free(out);
    luaL_error(L, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, t, (lua_Integer)i + 1);
    if (!lua_istable(L, -1)) {
      columns_free(out);
      luaL_error(L, "config.columns[%d] must be a table {name=, type=, optional=}", (int)i + 1);
    }
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "type");
    lua_getfield(L, -3, "optional");
    if (lua_type(L, -3) != LUA_TSTRING || lua_type(L, -2) != LUA_TSTRING) {
      columns_free(out);
      luaL_error(L, "config.columns[%d] needs string fields 'name' and 'type'", (int)i + 1);
    }
    out->cols[i].name = lua_tostring(L, -3);
    out->cols[i].type = lua_tostring(L, -2);
    out->cols[i].optional = lua_toboolean(L, -1);
    out->kinds[i] = kind_of_type(out->cols[i].type);
    lua_pop(L, 4); /* strings stay anchored by the column tables */
  }
  /* the columns table stays at index t */
}

/* Converts values[1..n] to s3sink_value by column kind; raises on a mismatch. */
static void to_values(lua_State *L, int idx, const int *kinds, const s3sink_column *cols,
                      size_t n, s3sink_value *out) {
  luaL_checktype(L, idx, LUA_TTABLE);
  for (size_t i = 0; i < n; i++) {
    int t = lua_rawgeti(L, idx, (lua_Integer)i + 1);
    s3sink_value *v = &out[i];
    if (t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL)) {
      v->kind = S3SINK_V_NULL;
      lua_pop(L, 1);
      continue;
    }
    int kind = kinds[i];
    if (kind == KIND_ANY) /* by the value's own Lua type */
      kind = t == LUA_TNUMBER  ? (lua_isinteger(L, -1) ? S3SINK_V_INT : S3SINK_V_FLOAT)
             : t == LUA_TBOOLEAN ? S3SINK_V_BOOL
                                 : S3SINK_V_STR;
    v->kind = (s3sink_kind)kind;
    bool ok = false;
    switch ((s3sink_kind)kind) {
    case S3SINK_V_INT:
    case S3SINK_V_DATETIME_NAIVE:
    case S3SINK_V_DATETIME_UTC:
    case S3SINK_V_DURATION:
      if ((ok = lua_isinteger(L, -1))) v->u.i = lua_tointeger(L, -1);
      break;
    case S3SINK_V_FLOAT:
      if ((ok = t == LUA_TNUMBER)) v->u.f = lua_tonumber(L, -1);
      break;
    case S3SINK_V_BOOL:
      if ((ok = t == LUA_TBOOLEAN)) v->u.b = lua_toboolean(L, -1);
      break;
    default:
      /* strings stay anchored by the values table during the call */
      if ((ok = t == LUA_TSTRING)) v->u.s.ptr = lua_tolstring(L, -1, &v->u.s.len);
      break;
    }
    if (!ok)
      luaL_error(L, "value %d (column '%s', type %s) cannot be a %s", (int)i + 1, cols[i].name,
                 cols[i].type, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
}

/* ------------------------------------------------------------------------------------ */
/* Sink                                                                                 */

/* A credentials function (config.credentials) lives in the sink's Lua state, which one
 * thread at a time may run: the thread that made the sink, during its own calls. So the
 * sink's provider (lua_credentials) calls it only on that thread while one of the sink's
 * methods runs (call_L is that call's state, with the sink at call_idx: the function is
 * the sink's first user value); on the sink's own thread it fails as transient, and the
 * methods refresh ahead instead
 * (s3sink_refresh_credentials at time_end, flush, close and a write that waits for room),
 * which the runtime's margin (half the credentials' life, at most 5 minutes) leaves time
 * for. The runtime never calls a provider twice at once, so the fields used by it are
 * only ever touched by one thread at a time. */
typedef struct lcreds {
  bool has_fn;             /* the function is the sink userdata's user value: a function
                              that refers to its sink makes no uncollectable cycle */
  char *strings[4];        /* copies of its last answer: access, secret, token, source */
  char last_failure[400];  /* its last failure, for the sink's thread's message */
} lcreds;

typedef struct lsink {
  s3sink *sink;
  columns cols;            /* names/types copied, see below */
  char **owned;            /* copies of the column names and types */
  s3sink_value *values;    /* reused for every row */
  atomic_llong manual_now; /* the manual clock, when config.clock == "manual" */
  pthread_t owner;         /* the thread that made the sink */
  lua_State *call_L;       /* set by the owner during the sink's calls ... */
  int call_idx;            /* ... with the sink userdata at this index of call_L */
  enum { RUNNING_NONE, RUNNING_CREDENTIALS, RUNNING_ON_EVENT } running; /* a function of
                              the sink runs: its methods are refused (on_event may read) */
  lcreds creds;             /* on_event, if any, is the userdata's second user value */
} lsink;

/* Runs `call` with the sink's Lua functions (credentials, on_event) callable on this
 * thread, the sink being at index idx of L. */
#define IN_CALL(ls, L, idx, call) \
  ((ls)->call_L = (L), (ls)->call_idx = (idx), (call), (ls)->call_L = NULL)

static int64_t manual_clock(void *ud) { return atomic_load(&((lsink *)ud)->manual_now); }

/* The sink at 1, for a method that writes, uploads or closes when `changes` (refused
 * from on_event), else one that only reads (stats, last_key, ...). */
static lsink *check_open_sink_for(lua_State *L, bool changes) {
  lsink *s = luaL_checkudata(L, 1, SINK_MT);
  if (s->running == RUNNING_CREDENTIALS)
    luaL_error(L, "the sink's methods cannot be called from its credentials function");
  if (s->running == RUNNING_ON_EVENT && changes)
    luaL_error(L, "on_event may read the sink (stats, last_key, last_error, failure), not "
               "write, flush or close it: it runs inside those calls");
  return s;
}

static lsink *check_sink_for(lua_State *L, bool changes) {
  lsink *s = check_open_sink_for(L, changes);
  if (!s->sink) luaL_error(L, "the sink is closed");
  return s;
}

#define check_open_sink(L) check_open_sink_for(L, true)
#define check_sink(L) check_sink_for(L, true)
#define check_sink_to_read(L) check_sink_for(L, false)

/* Fills err as the runtime's errors are. */
static int creds_fail(s3sink_err *err, int code, bool transient, const char *fmt, const char *a,
                      const char *b) {
  memset(err, 0, sizeof *err);
  err->code = code;
  err->transient = transient;
  snprintf(err->msg, sizeof err->msg, fmt, a, b);
  return code;
}

/* Message handler of the function's call: the error with a traceback. */
static int creds_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : luaL_tolstring(L, 1, NULL), 1);
  return 1;
}

/* Reads field `name` of the table on top: a string (or nil if optional) copied to *slot. */
static const char *creds_string(lua_State *L, const char *name, bool optional, char **slot) {
  int t = lua_getfield(L, -1, name);
  free(*slot);
  *slot = NULL;
  const char *bad = NULL;
  if (t == LUA_TSTRING) {
    size_t n;
    const char *v = lua_tolstring(L, -1, &n);
    if (strlen(v) != n) bad = "holds a NUL byte";
    else if (!(*slot = strdup(v))) bad = "could not be copied (out of memory)";
  } else if (t != LUA_TNIL || !optional) {
    bad = t == LUA_TNIL ? "is missing" : "is not a string";
  }
  lua_pop(L, 1);
  return bad;
}

static int lua_credentials(void *ud, s3sink_credentials *out, s3sink_err *err) {
  lsink *s = ud;
  lcreds *c = &s->creds;
  if (!pthread_equal(pthread_self(), s->owner) || !s->call_L)
    return creds_fail(err, S3SINK_ESTATE, true,
                      "the Lua credentials function runs on the thread that made the sink, "
                      "during its calls (time_end, flush, close, a write that waits), not on "
                      "the sink's own thread: the credentials are refreshed at the sink's "
                      "next call%s%s",
                      c->last_failure[0] ? "; its last call failed: " : "", c->last_failure);
  lua_State *L = s->call_L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 4))
    return creds_fail(err, S3SINK_ENOMEM, true, "no Lua stack left to call the credentials function%s%s", "", "");
  lua_pushcfunction(L, creds_traceback);
  lua_getiuservalue(L, s->call_idx, 1);
  s->running = RUNNING_CREDENTIALS;
  int st = lua_pcall(L, 0, 2, top + 1);
  s->running = RUNNING_NONE;
  int rc = S3SINK_OK;
  if (st != LUA_OK) {
    rc = creds_fail(err, S3SINK_ESCRIPT, false, "the credentials function raised an error: %s%s",
                    lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)", "");
  } else if (!lua_toboolean(L, -2)) {
    /* nil, message: a failure that may pass (a service that did not answer) */
    const char *why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "no reason given";
    rc = creds_fail(err, S3SINK_ESCRIPT, true, "the credentials function returned nil: %s%s", why, "");
  } else if (!lua_istable(L, -2)) {
    rc = creds_fail(err, S3SINK_EINVAL, false,
                    "the credentials function returned a %s: return a table {access_key=, "
                    "secret_key=, session_token=, expires_at=, source=}, or nil, message%s",
                    luaL_typename(L, -2), "");
  } else {
    lua_pop(L, 1); /* the table on top */
    static const char *const names[] = {"access_key", "secret_key", "session_token", "source"};
    for (int i = 0; i < 4 && rc == S3SINK_OK; i++) {
      const char *bad = creds_string(L, names[i], i >= 2, &c->strings[i]);
      if (bad) rc = creds_fail(err, S3SINK_EINVAL, false, "the credentials function's %s %s", names[i], bad);
    }
    int t = lua_getfield(L, -1, "expires_at");
    lua_Integer expires = 0;
    if (rc == S3SINK_OK && t != LUA_TNIL) {
      int isint = 0;
      expires = lua_tointegerx(L, -1, &isint);
      if (!isint && t == LUA_TNUMBER) expires = (lua_Integer)lua_tonumber(L, -1);
      else if (!isint)
        rc = creds_fail(err, S3SINK_EINVAL, false,
                        "the credentials function's expires_at is a %s: give seconds since the "
                        "Unix epoch (os.time() + lifetime), or nil%s", luaL_typename(L, -1), "");
    }
    *out = (s3sink_credentials){c->strings[0], c->strings[1], c->strings[2], (int64_t)expires,
                                c->strings[3]};
  }
  snprintf(c->last_failure, sizeof c->last_failure, "%.399s", rc ? err->msg : "");
  lua_settop(L, top);
  return rc;
}

/* The sink's events (config.on_event): the runtime delivers them only inside the sink's
 * calls (events_on_host_calls), on this thread, where on_event runs as
 * on_event({kind=, key=, rows=, bytes=, elapsed_ms=, attempts=, retry_in_ms=, code=,
 * message=}). An error it raises cannot stop the call it runs in (the row or upload is
 * done already): it goes to Lua's warning system, as errors in finalizers do. */
static void lua_on_event(void *ud, const s3sink_event *ev) {
  lsink *s = ud;
  if (!pthread_equal(pthread_self(), s->owner) || !s->call_L) return; /* cannot happen */
  lua_State *L = s->call_L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 6)) return;
  lua_pushcfunction(L, creds_traceback);
  lua_getiuservalue(L, s->call_idx, 2);
  lua_createtable(L, 0, 9);
  lua_pushstring(L, s3sink_event_kind_name(ev->kind));
  lua_setfield(L, -2, "kind");
  if (ev->key) {
    lua_pushstring(L, ev->key);
    lua_setfield(L, -2, "key");
  }
  const struct { const char *name; int64_t value; } numbers[] = {
      {"rows", (int64_t)ev->rows}, {"bytes", (int64_t)ev->bytes}, {"elapsed_ms", ev->elapsed_ms},
      {"attempts", ev->attempts},  {"retry_in_ms", ev->retry_in_ms}};
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
    lua_pushinteger(L, (lua_Integer)numbers[i].value);
    lua_setfield(L, -2, numbers[i].name);
  }
  if (ev->message) {
    lua_pushstring(L, ev->message);
    lua_setfield(L, -2, "message");
    lua_pushstring(L, ev->s3_code ? ev->s3_code : s3sink_strerror(ev->code));
    lua_setfield(L, -2, "code");
  }
  s->running = RUNNING_ON_EVENT;
  int st = lua_pcall(L, 1, 0, top + 1);
  s->running = RUNNING_NONE;
  if (st != LUA_OK) {
    lua_warning(L, "s3sink: on_event raised an error: ", 1);
    lua_warning(L, lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)", 0);
  }
  lua_settop(L, top);
}

static void lsink_release(lsink *s) {
  for (int i = 0; i < 4; i++) {
    free(s->creds.strings[i]);
    s->creds.strings[i] = NULL;
  }
  if (s->owned) {
    for (size_t i = 0; i < 2 * s->cols.n; i++) free(s->owned[i]);
    free(s->owned);
    s->owned = NULL;
  }
  columns_free(&s->cols);
  free(s->values);
  s->values = NULL;
}

/* s3sink.sink(config) -> sink | nil, message, code */
static int l_sink_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lsink *ls = lua_newuserdatauv(L, sizeof *ls, 2);
  memset(ls, 0, sizeof *ls);
  luaL_setmetatable(L, SINK_MT);
  int ud = lua_gettop(L);

  s3sink_config c = {0};
  static const char *const own[] = {"columns", "clock", "credentials", "on_event", NULL};
  lutil_read_options(L, 1, "sink", own, &c); /* pushes what c's maps borrow, kept till open */
  ls->owner = pthread_self();
  int ct = lua_getfield(L, 1, "credentials");
  if (ct == LUA_TFUNCTION) {
    lua_setiuservalue(L, ud, 1);
    ls->creds.has_fn = true;
    c.credentials = lua_credentials;
    c.credentials_ud = ls;
  } else if (ct != LUA_TNIL) {
    return luaL_error(L, "sink: option 'credentials' must be a function, not a %s", luaL_typename(L, -1));
  } else {
    lua_pop(L, 1);
  }
  int et = lua_getfield(L, 1, "on_event");
  if (et == LUA_TFUNCTION) {
    lua_setiuservalue(L, ud, 2);
    c.on_event = lua_on_event;
    c.on_event_ud = ls;
    c.events_on_host_calls = true;
  } else if (et != LUA_TNIL) {
    return luaL_error(L, "sink: option 'on_event' must be a function, not a %s", luaL_typename(L, -1));
  } else {
    lua_pop(L, 1);
  }
  const char *clock = lopt_string(L, 1, "sink", "clock", false, NULL);
  if (clock) {
    if (strcmp(clock, "manual") != 0) luaL_error(L, "option 'clock' must be \"manual\" or nil");
    c.clock = manual_clock;
    c.clock_ud = ls;
  }
  check_columns_arg(L, 1, &ls->cols);
  c.columns = ls->cols.cols;
  c.ncolumns = ls->cols.n;

  /* keep our own copies of names and types, for messages on the per-row path */
  ls->owned = calloc(2 * ls->cols.n, sizeof *ls->owned);
  ls->values = calloc(ls->cols.n, sizeof *ls->values);
  if (!ls->owned || !ls->values) {
    lsink_release(ls);
    return luaL_error(L, "out of memory");
  }
  for (size_t i = 0; i < ls->cols.n; i++) {
    ls->owned[2 * i] = strdup(ls->cols.cols[i].name);
    ls->owned[2 * i + 1] = strdup(ls->cols.cols[i].type);
    if (!ls->owned[2 * i] || !ls->owned[2 * i + 1]) {
      lsink_release(ls);
      return luaL_error(L, "out of memory");
    }
    ls->cols.cols[i].name = ls->owned[2 * i];
    ls->cols.cols[i].type = ls->owned[2 * i + 1];
  }
  atomic_store(&ls->manual_now, 0);

  s3sink_err e;
  int rc;
  IN_CALL(ls, L, ud, rc = s3sink_open(&c, &ls->sink, &e));
  if (rc != S3SINK_OK) {
    lsink_release(ls);
    return lutil_push_failure(L, &e);
  }
  lua_pushvalue(L, ud);
  return 1;
}

/* Asks a credentials function for new credentials when they are due, on this (the
 * host's) thread; its failures reach the host through the uploads that need them. */
static void refresh_credentials(lua_State *L, lsink *s) {
  if (!s->creds.has_fn) return;
  s3sink_err e;
  IN_CALL(s, L, 1, s3sink_refresh_credentials(s->sink, &e));
}

/* sink:write(values, time, diff) -> true | nil, message, code */
static int l_sink_write(lua_State *L) {
  lsink *s = check_sink(L);
  lua_Integer time = luaL_checkinteger(L, 3);
  lua_Integer diff = luaL_optinteger(L, 4, 1);
  if (diff != 1 && diff != -1) return luaL_argerror(L, 4, "diff must be 1 or -1");
  to_values(L, 2, s->cols.kinds, s->cols.cols, s->cols.n, s->values);
  s3sink_err e;
  int rc;
  IN_CALL(s, L, 1, rc = s3sink_try_write(s->sink, s->values, s->cols.n, time, (int)diff, &e));
  if (rc == S3SINK_EAGAIN) { /* the write waits for uploads: they may need credentials */
    refresh_credentials(L, s);
    IN_CALL(s, L, 1, rc = s3sink_write_held(s->sink, &e));
  }
  if (rc) return lutil_push_failure(L, &e);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_sink_time_end(lua_State *L) {
  lsink *s = check_sink(L);
  s3sink_err e;
  lua_Integer time = luaL_checkinteger(L, 2);
  int rc;
  IN_CALL(s, L, 1, rc = s3sink_time_end(s->sink, time, &e));
  if (rc) return lutil_push_failure(L, &e);
  refresh_credentials(L, s);
  lua_pushboolean(L, 1);
  return 1;
}

/* sink:flush([forced]) -> uploaded (boolean) | nil, message, code */
static int l_sink_flush(lua_State *L) {
  lsink *s = check_sink(L);
  s3sink_err e;
  int rc;
  IN_CALL(s, L, 1, rc = s3sink_flush(s->sink, lua_toboolean(L, 2), &e));
  if (rc < 0) return lutil_push_failure(L, &e);
  lua_pushboolean(L, rc > 0);
  return 1;
}

/* sink:close() -> true | nil, message, code (the sink stays open then: retry close) */
static int l_sink_close(lua_State *L) {
  lsink *s = check_open_sink(L);
  if (!s->sink) {
    lua_pushboolean(L, 1);
    return 1;
  }
  s3sink_err e;
  int rc;
  IN_CALL(s, L, 1, rc = s3sink_close(s->sink, &e));
  if (rc) return lutil_push_failure(L, &e);
  s->sink = NULL;
  lsink_release(s);
  lua_pushboolean(L, 1);
  return 1;
}

/* sink:discard(): frees the sink without uploading what is buffered. */
static int l_sink_discard(lua_State *L) {
  lsink *s = check_open_sink(L);
  if (s->sink) s3sink_free(s->sink);
  s->sink = NULL;
  lsink_release(s);
  return 0;
}

/* Garbage collection closes the sink: with a spool it leaves every row there for the
 * next sink on the folder (no network), else it uploads the rest; if that fails the rows
 * are dropped with a warning, since there is no one left to retry. Call close()
 * explicitly to see errors. */
static int l_sink_gc(lua_State *L) {
  lsink *s = luaL_checkudata(L, 1, SINK_MT);
  if (s->sink) {
    s3sink_err e;
    int rc;
    IN_CALL(s, L, 1, rc = s3sink_finish(s->sink, S3SINK_LEAVE_SPOOLED, &e));
    if (rc) {
      lua_warning(L, "s3sink: a sink was garbage-collected unclosed and its final upload "
                  "failed; its buffered rows are lost: ", 1);
      lua_warning(L, e.msg, 0);
    }
    s3sink_free(s->sink);
    s->sink = NULL;
  }
  lsink_release(s);
  return 0;
}

/* sink:stats() -> {objects=, rows=, ...}: the fields of s3sink_stats, by the runtime's table */
static int l_sink_stats(lua_State *L) {
  lsink *s = check_sink_to_read(L);
  s3sink_stats st;
  s3sink_get_stats(s->sink, &st);
  lua_newtable(L);
  const s3sink_stat_field *f;
  for (size_t i = 0; (f = s3sink_stat_field_info(i)); i++) {
    const char *at = (const char *)&st + f->offset;
    int64_t v;
    if (f->is_signed) {
      memcpy(&v, at, sizeof v);
    } else {
      uint64_t u;
      memcpy(&u, at, sizeof u);
      v = (int64_t)u;
    }
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, f->name);
  }
  return 1;
}

static int l_sink_last_key(lua_State *L) {
  lsink *s = check_sink_to_read(L);
  char key[1100];
  s3sink_last_key(s->sink, key, sizeof key);
  if (key[0]) lua_pushstring(L, key);
  else lua_pushnil(L);
  return 1;
}

/* nothing, or message, code: an error the sink reports through fn */
static int push_sink_error(lua_State *L, int (*fn)(s3sink *, s3sink_err *)) {
  lsink *s = check_sink_to_read(L);
  s3sink_err e;
  if (fn(s->sink, &e) == S3SINK_OK) return 0;
  lua_pushstring(L, e.msg);
  lua_pushstring(L, e.s3_code[0] ? e.s3_code : s3sink_strerror(e.code));
  return 2;
}

/* sink:last_error() -> nil | message, code: the last failed upload attempt (retried) */
static int l_sink_last_error(lua_State *L) { return push_sink_error(L, s3sink_last_error); }

/* sink:failure() -> nil | message, code: the error that stopped uploads */
static int l_sink_failure(lua_State *L) { return push_sink_error(L, s3sink_failure); }

/* sink:credentials_source() -> where the credentials come from, anonymous (boolean) */
static int l_sink_credentials_source(lua_State *L) {
  lsink *s = check_sink_to_read(L);
  char buf[700];
  bool anonymous = s3sink_credentials_source(s->sink, buf, sizeof buf);
  lua_pushstring(L, buf);
  lua_pushboolean(L, anonymous);
  return 2;
}

/* sink:set_clock(ms): only for sinks made with clock = "manual" */
static int l_sink_set_clock(lua_State *L) {
  lsink *s = check_sink(L);
  atomic_store(&s->manual_now, (long long)luaL_checkinteger(L, 2));
  return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Formatter                                                                            */

typedef struct lformatter {
  s3sink_formatter *f;
  columns cols;
  s3sink_value *values;
} lformatter;

static lformatter *check_formatter(lua_State *L) {
  lformatter *f = luaL_checkudata(L, 1, FORMATTER_MT);
  if (!f->f) luaL_error(L, "the formatter is closed");
  return f;
}

static int l_formatter_gc(lua_State *L) {
  lformatter *f = luaL_checkudata(L, 1, FORMATTER_MT);
  s3sink_formatter_free(f->f);
  f->f = NULL;
  columns_free(&f->cols);
  free(f->values);
  f->values = NULL;
  return 0;
}

/* s3sink.formatter{format=, columns=} -> formatter | nil, message, code */
static int l_formatter_new(lua_State *L) {
  static const char *const known[] = {"format", "columns", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lopt_check_known(L, 1, "formatter", known);
  const char *format = lopt_string(L, 1, "formatter", "format", false, NULL);
  lformatter *f = lua_newuserdatauv(L, sizeof *f, 1);
  memset(f, 0, sizeof *f);
  luaL_setmetatable(L, FORMATTER_MT);
  check_columns_arg(L, 1, &f->cols); /* pushes the columns table */
  lua_setiuservalue(L, 2, 1);        /* which anchors the names and types */
  f->values = calloc(f->cols.n, sizeof *f->values);
  if (!f->values) return luaL_error(L, "out of memory");
  s3sink_err e;
  if (s3sink_formatter_open(format, f->cols.cols, f->cols.n, &f->f, &e)) return lutil_push_failure(L, &e);
  lua_settop(L, 2);
  return 1;
}

static int l_formatter_header(lua_State *L) {
  lformatter *f = check_formatter(L);
  const char *b;
  size_t n;
  s3sink_formatter_header(f->f, &b, &n, NULL);
  lua_pushlstring(L, b, n);
  return 1;
}

static int l_formatter_row(lua_State *L) {
  lformatter *f = check_formatter(L);
  lua_Integer time = luaL_checkinteger(L, 3);
  lua_Integer diff = luaL_optinteger(L, 4, 1);
  to_values(L, 2, f->cols.kinds, f->cols.cols, f->cols.n, f->values);
  const char *b;
  size_t n;
  s3sink_err e;
  if (s3sink_formatter_row(f->f, f->values, f->cols.n, time, (int)diff, &b, &n, &e))
    return lutil_push_failure(L, &e);
  lua_pushlstring(L, b, n);
  return 1;
}

static int l_formatter_index(lua_State *L) {
  lformatter *f = check_formatter(L);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "extension") == 0) lua_pushstring(L, s3sink_formatter_extension(f->f));
  else if (strcmp(k, "content_type") == 0) lua_pushstring(L, s3sink_formatter_content_type(f->f));
  else {
    luaL_getmetatable(L, FORMATTER_MT);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

/* ------------------------------------------------------------------------------------ */
/* The runtime's vocabulary, as data: for documentation, tools and checks                */

static void set_string(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* s3sink.options: {{name=, type=, group=, min=, max=, unlimited=, default=, doc=,
 * list=}, ...}; list: a string option that takes a list of names too */
static void push_options(lua_State *L) {
  static const char *const type_names[] = {"string", "integer", "boolean", "table"};
  lua_newtable(L);
  const s3sink_option *o;
  for (size_t i = 0; (o = s3sink_option_info(i)); i++) {
    lua_createtable(L, 0, 8);
    set_string(L, "name", o->name);
    set_string(L, "type", type_names[o->type]);
    set_string(L, "group", o->group);
    if (o->type == S3SINK_OPTION_INT) {
      lua_pushinteger(L, (lua_Integer)o->min);
      lua_setfield(L, -2, "min");
      lua_pushinteger(L, (lua_Integer)o->max);
      lua_setfield(L, -2, "max");
      lua_pushboolean(L, o->unlimited);
      lua_setfield(L, -2, "unlimited");
    }
    set_string(L, "default", o->default_text);
    set_string(L, "doc", o->doc);
    if (o->list) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "list");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* s3sink.column_types: {{name=, doc=}, ...}; s3sink.bundled: {format={...}, naming={...}} */
static void push_types_and_scripts(lua_State *L) {
  lua_createtable(L, S3SINK_T_COUNT, 0);
  for (int t = 0; t < S3SINK_T_COUNT; t++) {
    const s3sink_column_type *ct = s3sink_column_type_info((s3sink_type)t);
    lua_createtable(L, 0, 2);
    set_string(L, "name", ct->name);
    set_string(L, "doc", ct->doc);
    lua_rawseti(L, -2, t + 1);
  }
  lua_setfield(L, -2, "column_types");
  lua_newtable(L);
  static const char *const kinds[] = {"format", "naming"};
  for (size_t k = 0; k < 2; k++) {
    lua_newtable(L);
    const char *name;
    for (size_t i = 0; (name = s3sink_bundled_name(kinds[k], i)); i++) {
      lua_pushstring(L, name);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, kinds[k]);
  }
  lua_setfield(L, -2, "bundled");
}

/* ------------------------------------------------------------------------------------ */

static const luaL_Reg sink_methods[] = {
    {"write", l_sink_write},   {"time_end", l_sink_time_end}, {"flush", l_sink_flush},
    {"close", l_sink_close},   {"discard", l_sink_discard},   {"stats", l_sink_stats},
    {"last_key", l_sink_last_key}, {"last_error", l_sink_last_error},
    {"failure", l_sink_failure}, {"credentials_source", l_sink_credentials_source},
    {"set_clock", l_sink_set_clock}, {NULL, NULL}};

static const luaL_Reg formatter_methods[] = {
    {"header", l_formatter_header}, {"row", l_formatter_row}, {NULL, NULL}};

static const luaL_Reg module_functions[] = {
    {"sink", l_sink_new},         {"formatter", l_formatter_new},
    {"sign", s3sink_lua_sign},    {"presign", s3sink_lua_presign},
    {NULL, NULL}};

__attribute__((visibility("default"))) LUAMOD_API int luaopen_s3sink(lua_State *L); /* the build hides the rest */

LUAMOD_API int luaopen_s3sink(lua_State *L) {
  lutil_metatable(L, SINK_MT, sink_methods, l_sink_gc, true);
  lua_pop(L, 1);

  /* formatters answer extension and content_type as fields, so __index is a function */
  lutil_metatable(L, FORMATTER_MT, NULL, l_formatter_gc, false);
  luaL_newlib(L, formatter_methods);
  lua_setfield(L, -2, "methods");
  lua_pushcfunction(L, l_formatter_index);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  luaL_newlib(L, module_functions);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, S3SINK_VERSION);
  lua_setfield(L, -2, "version");
  push_options(L);
  lua_setfield(L, -2, "options");
  push_types_and_scripts(L);
  return 1;
}
