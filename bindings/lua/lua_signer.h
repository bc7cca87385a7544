/* lua_signer.h - Lua C functions exposing the SigV4 signer (registered by the s3sink Lua
 * module as s3sink.sign and s3sink.presign).
 *
 *   local r, msg = s3sink.sign{ method=, path=, query=, headers={{name, value}, ...},
 *     body= or payload_hash=, access_key=, secret_key=, session_token=, region=, service=,
 *     time= (seconds or "20150830T123600Z" / "2015-08-30T12:36:00Z"), normalize=,
 *     content_sha256=, expires= (presign) }
 *   -- r.canonical_request, r.string_to_sign, r.signature, r.authorization (sign),
 *   -- r.amz_date, r.content_sha256, r.query (presign)
 *
 * Misuse (wrong types, missing fields) raises a Lua error; a signing failure returns
 * nil, message. */
#ifndef S3SINK_LUA_SIGNER_H
#define S3SINK_LUA_SIGNER_H

#include <lua.h>

int s3sink_lua_sign(lua_State *L);
int s3sink_lua_presign(lua_State *L);

#endif
