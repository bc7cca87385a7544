-- Run by spec/luarocks_spec.lua with a plain Lua whose LUA_PATH and LUA_CPATH name only a
-- LuaRocks tree: the installed s3sink writes two rows to the test MinIO.
-- usage: lua5.4 spec/support/installed_smoke.lua BUCKET PREFIX
-- prints "module <file>", "key <key>" and "formats <names>".
local bucket, prefix = assert(arg[1], "bucket"), assert(arg[2], "prefix")
local s3sink = require "s3sink"
print("module " .. assert(package.searchpath("s3sink", package.cpath)))
print("formats " .. table.concat(s3sink.bundled.format, ","))
local sink = assert(s3sink.sink {
  endpoint = assert(os.getenv("S3SINK_TEST_ENDPOINT"), "S3SINK_TEST_ENDPOINT"),
  region = "us-east-1", bucket = bucket,
  access_key = os.getenv("S3SINK_TEST_ACCESS_KEY"), secret_key = os.getenv("S3SINK_TEST_SECRET_KEY"),
  prefix = prefix, format = "json", write_interval_ms = 600000,
  columns = { { name = "id", type = "int" }, { name = "name", type = "str", optional = true } },
})
assert(sink:write({ 1, "alice" }, 1700000000000, 1))
assert(sink:write({ 2, s3sink.null }, 1700000000000, 1))
assert(sink:time_end(1700000000000))
assert(sink:flush(true))
print("key " .. sink:last_key())
assert(sink:close())
