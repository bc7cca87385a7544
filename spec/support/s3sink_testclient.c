/* s3sink_testclient.c - the specs' S3 client: a Lua module on the runtime's s3client,
 * built only for the tests (build/s3sink_testclient.so), never shipped: the specs use it
 * to create buckets, read back what a sink uploaded, and plant or delete objects.
 *
 *   local testclient = require "s3sink_testclient"
 *   local c, msg = testclient.client{ endpoint=, region=, bucket=, virtual_hosted=,
 *     access_key=, secret_key=, session_token=, connect_timeout_ms=,
 *     request_timeout_ms=, insecure_tls=, ca_file= }
 *   c:list(prefix)            --> { {key=, size=}, ... }
 *   c:get(key)                --> string
 *   c:head(key)               --> etag, identity (the s3sink-sha256 metadata, "" if none)
 *   c:create_upload(key [, content_type [, identity]]) --> upload id
 *   c:upload_part(key, upload_id, number, body) --> etag
 *   c:complete_upload(key, upload_id, { etag1, etag2, ... } [, if_none_match]) --> true
 *   c:abort_upload(key, upload_id) --> true
 *   c:list_uploads([prefix [, page]]) --> { {key=, upload_id=}, ... } (every page)
 *   c:put(key, body, content_type, if_none_match) --> true
 *   c:delete(key), c:head_bucket(), c:create_bucket(), c:delete_bucket() --> true
 *   c:close()                 -- also __close and __gc
 *
 * Failures return nil, message, s3_code (or nil), http_status (0 if none). Misuse (wrong
 * argument types, unknown config keys, a closed client) raises a Lua error.
 *
 * Lua errors longjmp, so C memory that must live across a Lua API call (a downloaded
 * body, a listing) is owned by a userdata with __gc, and freed explicitly once it has
 * been turned into Lua values. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_util.h"
#include "s3client.h"

#define CLIENT_MT "s3sink_testclient.client"
#define KEYLIST_MT "s3sink_testclient.keylist"
#define BOX_MT "s3sink_testclient.box"

typedef struct lclient {
  s3client *c;
} lclient;

/* ---------------------------------------------------------------------------------------
 * Helper userdata: a malloc'ed block, and a growing list of keys.
 * ------------------------------------------------------------------------------------- */

typedef struct box {
  char *p;
} box;

static int box_gc(lua_State *L) {
  box *b = luaL_checkudata(L, 1, BOX_MT);
  free(b->p);
  b->p = NULL;
  return 0;
}

static box *push_box(lua_State *L) {
  box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  if (luaL_newmetatable(L, BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

typedef struct keyent {
  char *key;
  int64_t size;
} keyent;

typedef struct keylist {
  keyent *v;
  size_t n, cap;
  bool oom;
} keylist;

static void keylist_clear(keylist *k) {
  for (size_t i = 0; i < k->n; i++) free(k->v[i].key);
  free(k->v);
  k->v = NULL;
  k->n = k->cap = 0;
}

static int keylist_gc(lua_State *L) {
  keylist_clear(luaL_checkudata(L, 1, KEYLIST_MT));
  return 0;
}

/* s3client_list callback: no Lua calls here (they could raise through the client). */
static int collect_key(void *ud, const char *key, int64_t size) {
  keylist *k = ud;
  if (k->n == k->cap) {
    size_t ncap = k->cap ? k->cap * 2 : 256;
    keyent *nv = realloc(k->v, ncap * sizeof *nv);
    if (!nv) goto oom;
    k->v = nv;
    k->cap = ncap;
  }
  size_t len = strlen(key) + 1;
  char *copy = malloc(len);
  if (!copy) goto oom;
  memcpy(copy, key, len);
  k->v[k->n].key = copy;
  k->v[k->n].size = size;
  k->n++;
  return 0;
oom:
  k->oom = true;
  return S3SINK_ENOMEM;
}

/* ---------------------------------------------------------------------------------------
 * Client methods
 * ------------------------------------------------------------------------------------- */

static s3client *check_open(lua_State *L) {
  lclient *u = luaL_checkudata(L, 1, CLIENT_MT);
  if (!u->c) luaL_error(L, "the test client is closed");
  return u->c;
}

/* nil, message, s3_code (or nil), http_status */
static int push_failure(lua_State *L, const s3sink_err *err) {
  lua_pushnil(L);
  lua_pushstring(L, err->msg[0] ? err->msg : s3sink_strerror(err->code));
  if (err->s3_code[0])
    lua_pushstring(L, err->s3_code);
  else
    lua_pushnil(L);
  lua_pushinteger(L, (lua_Integer)err->http_status);
  return 4;
}

static const char *check_key_arg(lua_State *L, int idx) {
  size_t len;
  const char *key = luaL_checklstring(L, idx, &len);
  if (strlen(key) != len) luaL_argerror(L, idx, "key holds a NUL byte");
  return key;
}

static int l_list(lua_State *L) {
  s3client *c = check_open(L);
  size_t plen = 0;
  const char *prefix = luaL_optlstring(L, 2, "", &plen);
  if (strlen(prefix) != plen) luaL_argerror(L, 2, "prefix holds a NUL byte");
  lua_settop(L, 2);
  keylist *k = lutil_push_owned(L, sizeof *k, KEYLIST_MT, keylist_gc); /* index 3 */
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = s3client_list(c, prefix, NULL, collect_key, k, &err);
  if (rc != S3SINK_OK) {
    keylist_clear(k);
    if (k->oom) {
      lua_pushnil(L);
      lua_pushliteral(L, "out of memory while listing");
      lua_pushnil(L);
      lua_pushinteger(L, 0);
      return 4;
    }
    return push_failure(L, &err);
  }
  lua_createtable(L, k->n > INT32_MAX ? INT32_MAX : (int)k->n, 0);
  for (size_t i = 0; i < k->n; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, k->v[i].key);
    lua_setfield(L, -2, "key");
    lua_pushinteger(L, (lua_Integer)k->v[i].size);
    lua_setfield(L, -2, "size");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  keylist_clear(k);
  return 1;
}

static int l_get(lua_State *L) {
  s3client *c = check_open(L);
  const char *key = check_key_arg(L, 2);
  lua_settop(L, 2);
  box *b = push_box(L);
  size_t len = 0;
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = s3client_get_object(c, key, &b->p, &len, &err);
  if (rc != S3SINK_OK) return push_failure(L, &err);
  lua_pushlstring(L, b->p, len);
  free(b->p);
  b->p = NULL;
  return 1;
}

static int l_put(lua_State *L) {
  s3client *c = check_open(L);
  const char *key = check_key_arg(L, 2);
  size_t len;
  const char *body = luaL_checklstring(L, 3, &len);
  const char *ctype = luaL_optstring(L, 4, NULL);
  bool inm = false;
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TBOOLEAN);
    inm = lua_toboolean(L, 5);
  }
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = s3client_put_object(c, key, body, len, ctype, inm, &err);
  if (rc != S3SINK_OK) return push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_delete(lua_State *L) {
  s3client *c = check_open(L);
  const char *key = check_key_arg(L, 2);
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = s3client_delete_object(c, key, &err);
  if (rc != S3SINK_OK) return push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* Runs a bucket-level operation: true | nil, message, code, status. */
static int bucket_op(lua_State *L, int (*op)(s3client *, s3sink_err *)) {
  s3client *c = check_open(L);
  s3sink_err err;
  memset(&err, 0, sizeof err);
  if (op(c, &err) != S3SINK_OK) return push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_head_bucket(lua_State *L) { return bucket_op(L, s3client_head_bucket); }
static int l_create_bucket(lua_State *L) { return bucket_op(L, s3client_create_bucket); }
static int l_delete_bucket(lua_State *L) { return bucket_op(L, s3client_delete_bucket); }

/* c:head(key) -> etag, identity | nil, message, code, status */
static int l_head(lua_State *L) {
  s3client *c = check_open(L);
  const char *key = luaL_checkstring(L, 2);
  char etag[128], identity[72];
  s3sink_err err;
  memset(&err, 0, sizeof err);
  if (s3client_head_object(c, key, etag, sizeof etag, identity, sizeof identity, &err) != S3SINK_OK)
    return push_failure(L, &err);
  lua_pushstring(L, etag);
  lua_pushstring(L, identity);
  return 2;
}

/* c:create_upload(key [, content_type [, identity]]) -> upload id */
static int l_create_upload(lua_State *L) {
  s3client *c = check_open(L);
  const char *key = check_key_arg(L, 2);
  const char *ctype = luaL_optstring(L, 3, NULL);
  const char *identity = luaL_optstring(L, 4, NULL);
  lua_settop(L, 4);
  box *b = push_box(L);
  s3sink_err err;
  memset(&err, 0, sizeof err);
  if (s3client_create_multipart(c, key, ctype, identity, &b->p, &err) != S3SINK_OK)
    return push_failure(L, &err);
  lua_pushstring(L, b->p);
  free(b->p);
  b->p = NULL;
  return 1;
}

/* c:upload_part(key, upload_id, number, body) -> etag */
static int l_upload_part(lua_State *L) {
  s3client *c = check_open(L);
  const char *key = check_key_arg(L, 2);
  const char *id = luaL_checkstring(L, 3);
  lua_Integer number = luaL_checkinteger(L, 4);
  size_t len;
  const char *body = luaL_checklstring(L, 5, &len);
  luaL_argcheck(L, number >= 1 && number <= S3CLIENT_MAX_PARTS, 4, "part number out of range");
  s3body b = {.data = body, .fd = -1, .len = len};
  char etag[128];
  s3sink_err err;
  memset(&err, 0, sizeof err);
  if (s3client_upload_part(c, key, id, (int)number, &b, NULL, etag, sizeof etag, &err) != S3SINK_OK)
    return push_failure(L, &err);
  lua_pushstring(L, etag);
  return 1;
}

/* c:complete_upload(key, upload_id, etags [, if_none_match]) -> true */
static int l_complete_upload(lua_State *L) {
  s3client *c = check_open(L);
  const char *key = check_key_arg(L, 2);
  const char *id = luaL_checkstring(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  bool inm = lua_toboolean(L, 5);
  lua_Integer n = luaL_len(L, 4);
  luaL_argcheck(L, n >= 1 && n <= S3CLIENT_MAX_PARTS, 4, "1 to 10000 ETags");
  lua_settop(L, 5);
  box *b = push_box(L); /* the parts array: freed by __gc if a Lua call raises */
  b->p = calloc((size_t)n, sizeof(s3client_part));
  if (!b->p) return luaL_error(L, "out of memory");
  s3client_part *parts = (s3client_part *)(void *)b->p;
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 4, i) != LUA_TSTRING) luaL_argerror(L, 4, "ETags must be strings");
    parts[i - 1].number = (int)i;
    parts[i - 1].etag = lua_tostring(L, -1); /* the table keeps the string alive */
    lua_pop(L, 1);
  }
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = s3client_complete_multipart(c, key, id, parts, (size_t)n, inm, &err);
  free(b->p);
  b->p = NULL;
  if (rc != S3SINK_OK) return push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* c:abort_upload(key, upload_id) -> true */
static int l_abort_upload(lua_State *L) {
  s3client *c = check_open(L);
  const char *key = check_key_arg(L, 2);
  const char *id = luaL_checkstring(L, 3);
  s3sink_err err;
  memset(&err, 0, sizeof err);
  if (s3client_abort_multipart(c, key, id, &err) != S3SINK_OK) return push_failure(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* s3client_list_multipart callback: keys and upload ids as pairs of a keylist. */
static int collect_upload(void *ud, const char *key, const char *upload_id) {
  int rc = collect_key(ud, key, 0);
  return rc ? rc : collect_key(ud, upload_id, 0);
}

/* c:list_uploads([prefix [, page]]) -> { {key=, upload_id=}, ... } */
static int l_list_uploads(lua_State *L) {
  s3client *c = check_open(L);
  const char *prefix = luaL_optstring(L, 2, "");
  lua_Integer page = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, page >= 0 && page <= 1000, 3, "page of 0 to 1000 uploads");
  lua_settop(L, 3);
  keylist *k = lutil_push_owned(L, sizeof *k, KEYLIST_MT, keylist_gc);
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = s3client_list_multipart(c, prefix, (int)page, collect_upload, k, &err);
  if (rc != S3SINK_OK) {
    keylist_clear(k);
    return push_failure(L, &err);
  }
  lua_createtable(L, (int)(k->n / 2), 0);
  for (size_t i = 0; i + 1 < k->n; i += 2) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, k->v[i].key);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, k->v[i + 1].key);
    lua_setfield(L, -2, "upload_id");
    lua_rawseti(L, -2, (lua_Integer)(i / 2) + 1);
  }
  keylist_clear(k);
  return 1;
}

/* close(), __close and __gc: idempotent. */
static int l_close(lua_State *L) {
  lclient *u = luaL_checkudata(L, 1, CLIENT_MT);
  s3client_free(u->c);
  u->c = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  lclient *u = luaL_checkudata(L, 1, CLIENT_MT);
  if (u->c)
    lua_pushfstring(L, "s3sink_testclient.client (%p)", (void *)u);
  else
    lua_pushliteral(L, "s3sink_testclient.client (closed)");
  return 1;
}

static const luaL_Reg methods[] = {
    {"list", l_list},
    {"get", l_get},
    {"put", l_put},
    {"delete", l_delete},
    {"head", l_head},
    {"create_upload", l_create_upload},
    {"upload_part", l_upload_part},
    {"complete_upload", l_complete_upload},
    {"abort_upload", l_abort_upload},
    {"list_uploads", l_list_uploads},
    {"head_bucket", l_head_bucket},
    {"delete_bucket", l_delete_bucket},
    {"create_bucket", l_create_bucket},
    {"close", l_close},
    {NULL, NULL},
};

static void push_client_metatable(lua_State *L) {
  bool made = !luaL_getmetatable(L, CLIENT_MT);
  lua_pop(L, 1);
  lutil_metatable(L, CLIENT_MT, methods, l_close, true);
  if (made) {
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

/* ---------------------------------------------------------------------------------------
 * Constructor
 * ------------------------------------------------------------------------------------- */

static const char *const config_keys[] = {
    "endpoint", "region", "bucket", "virtual_hosted", "access_key", "secret_key",
    "session_token", "connect_timeout_ms", "request_timeout_ms", "insecure_tls", "ca_file",
    NULL};

static long timeout_ms(lua_State *L, const char *name) {
  lua_Integer v = lopt_int(L, 1, "client", name, 0);
  if (v < 0 || v > (lua_Integer)INT32_MAX)
    luaL_error(L, "client: option '%s' must be a non-negative integer (milliseconds)", name);
  return (long)v;
}

static int l_client_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lopt_check_known(L, 1, "client", config_keys);
  /* strings are borrowed: the config table keeps them alive during s3client_new */
  s3client_config cfg = {
      .endpoint = lopt_string(L, 1, "client", "endpoint", false, NULL),
      .region = lopt_string(L, 1, "client", "region", false, NULL),
      .bucket = lopt_string(L, 1, "client", "bucket", false, NULL),
      .virtual_hosted = lopt_bool(L, 1, "client", "virtual_hosted", false),
      .access_key = lopt_string(L, 1, "client", "access_key", false, NULL),
      .secret_key = lopt_string(L, 1, "client", "secret_key", false, NULL),
      .session_token = lopt_string(L, 1, "client", "session_token", false, NULL),
      .connect_timeout_ms = timeout_ms(L, "connect_timeout_ms"),
      .request_timeout_ms = timeout_ms(L, "request_timeout_ms"),
      .insecure_tls = lopt_bool(L, 1, "client", "insecure_tls", false),
      .ca_file = lopt_string(L, 1, "client", "ca_file", false, NULL),
  };

  lclient *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->c = NULL;
  push_client_metatable(L);
  lua_setmetatable(L, -2);
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = s3client_new(&cfg, &u->c, &err);
  if (rc != S3SINK_OK) return push_failure(L, &err);
  return 1;
}

__attribute__((visibility("default"))) int luaopen_s3sink_testclient(lua_State *L);

int luaopen_s3sink_testclient(lua_State *L) {
  static const luaL_Reg functions[] = {{"client", l_client_new}, {NULL, NULL}};
  luaL_newlib(L, functions);
  return 1;
}
