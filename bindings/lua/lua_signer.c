/* lua_signer.c - s3sink.sign / s3sink.presign: the SigV4 signer for Lua (see lua_signer.h).
 *
 * Every field is read with raw access, so no Lua code runs while C holds borrowed
 * pointers, and the strings stay referenced by the caller's tables for the whole call.
 * C memory that must survive an API call that can raise lives in userdata (the header
 * array, the signing result with a __gc), so a Lua error never leaks. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_signer.h"
#include "lua_util.h"
#include "s3sink.h"
#include "s3sink_text.h"

#define RESULT_MT "s3sink.sigv4_result"
#define DEFAULT_EXPIRES 3600

static int result_gc(lua_State *L) {
  s3sink_sigv4_result *r = luaL_checkudata(L, 1, RESULT_MT);
  s3sink_sigv4_result_free(r);
  return 0;
}

static int64_t time_field(lua_State *L, int t, const char *fn) {
  lua_pushliteral(L, "time");
  int ty = lua_rawget(L, t);
  int64_t now = 0;
  if (ty == LUA_TNIL) {
    now = (int64_t)time(NULL);
  } else if (ty == LUA_TNUMBER) {
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint) luaL_error(L, "%s: field 'time' must be whole seconds", fn);
    now = (int64_t)v;
  } else if (ty == LUA_TSTRING) {
    if (!s3sink_text_parse_utc(lua_tostring(L, -1), &now))
      luaL_error(L, "%s: field 'time' must look like \"20150830T123600Z\" or "
                    "\"2015-08-30T12:36:00Z\"", fn);
  } else {
    luaL_error(L, "%s: field 'time' must be a number or a string, got %s", fn,
               luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return now;
}

/* Reads headers = { {name, value}, ... } into a userdata array left on the stack. */
static s3sink_header *headers_field(lua_State *L, int t, const char *fn, size_t *count) {
  lua_pushliteral(L, "headers");
  if (lua_rawget(L, t) != LUA_TTABLE)
    luaL_error(L, "%s: field 'headers' must be an array of {name, value} pairs, got %s", fn,
               luaL_typename(L, -1));
  int h = lua_gettop(L);
  size_t n = (size_t)lua_rawlen(L, h);
  if (n > 10000) luaL_error(L, "%s: too many headers (%d)", fn, (int)n);
  s3sink_header *hs = lua_newuserdatauv(L, (n ? n : 1) * sizeof *hs, 0);
  for (size_t i = 0; i < n; i++) {
    if (lua_rawgeti(L, h, (lua_Integer)i + 1) != LUA_TTABLE)
      luaL_error(L, "%s: headers[%d] must be a {name, value} pair, got %s", fn, (int)i + 1,
                 luaL_typename(L, -1));
    for (int k = 1; k <= 2; k++) {
      if (lua_rawgeti(L, -1, k) != LUA_TSTRING)
        luaL_error(L, "%s: headers[%d][%d] must be a string, got %s", fn, (int)i + 1, k,
                   luaL_typename(L, -1));
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      if (strlen(s) != len) luaL_error(L, "%s: headers[%d] holds a NUL byte", fn, (int)i + 1);
      if (k == 1)
        hs[i].name = s;
      else
        hs[i].value = s;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_remove(L, h); /* the array stays referenced by the argument table */
  *count = n;
  return hs;
}

static void set_field(lua_State *L, const char *name, const char *value) {
  if (!value) return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, name);
}

static int do_sign(lua_State *L, bool presign) {
  const char *fn = presign ? "presign" : "sign";
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);

  s3sink_sigv4_request req;
  memset(&req, 0, sizeof req);
  s3sink_sigv4_params p;
  memset(&p, 0, sizeof p);

  req.method = lopt_string(L, 1, fn, "method", true, NULL);
  req.path = lopt_string(L, 1, fn, "path", true, NULL);
  req.query = lopt_string(L, 1, fn, "query", false, NULL);
  req.body = lopt_string(L, 1, fn, "body", false, &req.body_len);
  req.payload_hash = lopt_string(L, 1, fn, "payload_hash", false, NULL);
  p.access_key = lopt_string(L, 1, fn, "access_key", true, NULL);
  p.secret_key = lopt_string(L, 1, fn, "secret_key", true, NULL);
  p.session_token = lopt_string(L, 1, fn, "session_token", false, NULL);
  p.region = lopt_string(L, 1, fn, "region", true, NULL);
  p.service = lopt_string(L, 1, fn, "service", true, NULL);
  p.now = time_field(L, 1, fn);
  p.normalize = lopt_bool(L, 1, fn, "normalize", false);
  p.add_content_sha256 = lopt_bool(L, 1, fn, "content_sha256", false);
  p.expires = DEFAULT_EXPIRES;
  lua_pushliteral(L, "expires");
  int ty = lua_rawget(L, 1);
  if (ty != LUA_TNIL) {
    int isint;
    lua_Integer e = lua_tointegerx(L, -1, &isint);
    if (ty != LUA_TNUMBER || !isint)
      luaL_error(L, "%s: field 'expires' must be an integer number of seconds", fn);
    p.expires = (int64_t)e;
  }
  lua_pop(L, 1);
  req.headers = headers_field(L, 1, fn, &req.nheaders); /* userdata at index 2 */

  s3sink_sigv4_result *r = lutil_push_owned(L, sizeof *r, RESULT_MT, result_gc); /* index 3 */
  s3sink_err err;
  int rc = presign ? s3sink_sigv4_presign(&req, &p, r, &err) : s3sink_sigv4_sign(&req, &p, r, &err);
  if (rc != S3SINK_OK) return lutil_push_failure(L, &err);
  lua_createtable(L, 0, 7);
  set_field(L, "canonical_request", r->canonical_request);
  set_field(L, "string_to_sign", r->string_to_sign);
  set_field(L, "signature", r->signature);
  set_field(L, "authorization", r->authorization);
  set_field(L, "amz_date", r->amz_date);
  set_field(L, "content_sha256", r->content_sha256);
  set_field(L, "query", r->query);
  s3sink_sigv4_result_free(r); /* now, rather than at the next collection */
  return 1;
}

int s3sink_lua_sign(lua_State *L) { return do_sign(L, false); }

int s3sink_lua_presign(lua_State *L) { return do_sign(L, true); }
