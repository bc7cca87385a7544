/* lua_client.h - a Lua handle on an s3client (registered by the s3sink Lua module, e.g.
 * as s3sink.client).
 *
 *   local c, msg = s3sink.client{ endpoint=, region=, bucket=, virtual_hosted=,
 *     access_key=, secret_key=, session_token=, connect_timeout_ms=,
 *     request_timeout_ms=, insecure_tls=, ca_file= }
 *   c:list(prefix)            --> { {key=, size=}, ... }
 *   c:get(key)                --> string
 *   c:put(key, body, content_type, if_none_match) --> true
 *   c:delete(key), c:head_bucket(), c:create_bucket() --> true
 *   c:close()                 -- also __close and __gc
 *
 * Failures return nil, message, s3_code (or nil), http_status (0 if none). Misuse (wrong
 * argument types, unknown config keys, a closed client) raises a Lua error. */
#ifndef S3SINK_LUA_CLIENT_H
#define S3SINK_LUA_CLIENT_H

#include <lua.h>

int s3sink_lua_client_new(lua_State *L);

#endif
