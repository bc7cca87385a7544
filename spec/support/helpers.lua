-- Shared by the specs: the MinIO started by tools/run-tests (or tools/with-minio), fresh
-- buckets, and readers for what the sink wrote.
-- the specs' S3 client, a test-only module built beside s3sink.so (make / make asan)
local testclient = require "s3sink_testclient"
local system = require "system" -- luasystem, shipped with busted: sleep without a subprocess

local M = {}

M.endpoint = os.getenv("S3SINK_TEST_ENDPOINT")
M.access_key = os.getenv("S3SINK_TEST_ACCESS_KEY")
M.secret_key = os.getenv("S3SINK_TEST_SECRET_KEY")
M.repo = os.getenv("PWD")

function M.require_minio()
  assert(M.endpoint, "no MinIO: run the specs through `make test` or `tools/with-minio busted`")
end

local counter = 0
-- A new bucket name for each call, unique across runs of the suite on one server.
function M.fresh_bucket()
  counter = counter + 1
  return string.format("spec-%d-%d-%d", os.time(), math.random(1, 1e6), counter)
end

function M.client(bucket)
  M.require_minio()
  return assert(testclient.client {
    endpoint = M.endpoint, region = "us-east-1", bucket = bucket,
    access_key = M.access_key, secret_key = M.secret_key,
  })
end

function M.new_bucket()
  local bucket = M.fresh_bucket()
  local c = M.client(bucket)
  assert(c:create_bucket())
  return bucket, c
end

-- Sink config against the test MinIO with the given overrides.
function M.config(bucket, overrides)
  local cfg = {
    endpoint = M.endpoint, region = "us-east-1", bucket = bucket,
    access_key = M.access_key, secret_key = M.secret_key,
    prefix = "out/", format = "csv", write_interval_ms = 1000,
    columns = { { name = "id", type = "int" }, { name = "name", type = "str" } },
  }
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  return cfg
end

-- Objects under prefix, in listing order: { {key=, body=}, ... }
function M.objects(client, prefix)
  local list = assert(client:list(prefix or ""))
  local out = {}
  for _, o in ipairs(list) do
    out[#out + 1] = { key = o.key, body = assert(client:get(o.key)) }
  end
  return out
end

-- Parses CSV where every field is quoted (Pathway's layout) or not; returns rows of fields.
function M.parse_csv(text)
  local rows, row, field, i, n = {}, {}, {}, 1, #text
  local quoted = false
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then field[#field + 1] = '"'; i = i + 1
        else quoted = false end
      else field[#field + 1] = c end
    elseif c == '"' then quoted = true
    elseif c == "," then row[#row + 1] = table.concat(field); field = {}
    elseif c == "\n" then
      row[#row + 1] = table.concat(field); field = {}
      rows[#rows + 1] = row; row = {}
    else field[#field + 1] = c end
    i = i + 1
  end
  assert(not quoted, "unterminated quoted field")
  assert(#field == 0 and #row == 0, "last line has no LF")
  return rows
end

-- Polls fn() every 50 ms until it returns a truthy value or `seconds` pass.
function M.eventually(seconds, fn)
  local deadline = system.gettime() + seconds
  repeat
    local v = fn()
    if v then return v end
    system.sleep(0.05)
  until system.gettime() > deadline
  return fn()
end

function M.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

function M.tmpname(suffix)
  local p = os.tmpname()
  os.remove(p)
  return p .. (suffix or "")
end

return M
