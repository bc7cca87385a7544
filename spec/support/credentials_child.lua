-- Run by spec/credentials_spec.lua in a process of its own, whose environment (AWS_*,
-- HOME) the spec sets: opens a sink without credentials in its options, writes one row
-- and closes it. Arguments: the bucket, the prefix, then options as name=value ("true"
-- and "false" are booleans). Prints "ok<TAB><credentials source>" or
-- "error<TAB><message><TAB><code>".
local s3sink = require "s3sink"

local bucket, prefix = arg[1], arg[2]
local cfg = {
  bucket = bucket, prefix = prefix, write_interval_ms = 1, no_timer = true,
  columns = { { name = "id", type = "int" } },
}
for i = 3, #arg do
  local name, value = arg[i]:match("^([%w_]+)=(.*)$")
  if value == "true" then value = true elseif value == "false" then value = false end
  cfg[name] = value
end

local sink, err, code = s3sink.sink(cfg)
if not sink then
  io.write("error\t", err, "\t", tostring(code), "\n")
  os.exit(1)
end
local source = sink:credentials_source()
local ok
ok, err, code = sink:write({ 1 }, 2, 1)
if ok then ok, err, code = sink:close() else sink:discard() end
if not ok then
  io.write("error\t", err, "\t", tostring(code), "\n")
  os.exit(1)
end
io.write("ok\t", source, "\n")
