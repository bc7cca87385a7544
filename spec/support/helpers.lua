-- Shared by the specs: the MinIO started by tools/run-tests (or tools/with-minio), fresh
-- buckets, and readers for what the sink wrote.
-- the specs' S3 client, a test-only module built beside s3sink.so (make / make asan)
local testclient = require "s3sink_testclient"
local system = require "system" -- luasystem, shipped with busted: sleep without a subprocess
local lfs = require "lfs"

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

-- With a manual clock at `now`: writes the row {id, "x"}, ends its minibatch and uploads
-- it as one object; returns its key.
function M.upload_at(sink, now, id)
  assert(sink:write({ id, "x" }, now, 1))
  assert(sink:time_end(now))
  sink:set_clock(now)
  local flushed, err = sink:flush(true)
  assert(flushed == true, "flush uploaded nothing: " .. tostring(err))
  return sink:last_key()
end

-- Removes a folder of plain files (a spool) and the folder.
function M.rmtree(dir)
  if not lfs.attributes(dir) then return end
  for f in lfs.dir(dir) do
    if f ~= "." and f ~= ".." then os.remove(dir .. "/" .. f) end
  end
  lfs.rmdir(dir)
end

-- The names in dir matching pattern (default: a spool's numbered files), sorted.
function M.files(dir, pattern)
  local out = {}
  for f in lfs.dir(dir) do
    if f:match(pattern or "^%d+%.") then out[#out + 1] = f end
  end
  table.sort(out)
  return out
end

function M.tmpname(suffix)
  local p = os.tmpname()
  os.remove(p)
  return p .. (suffix or "")
end

-- Quotes s for /bin/sh.
function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs `command` (a shell command line) and returns its output and whether it succeeded.
function M.run(command)
  local p = assert(io.popen(command .. " 2>&1", "r"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

local function form_encode(s)
  return (s:gsub("[^A-Za-z0-9%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- Temporary credentials from the test MinIO's STS (AssumeRole, signed with the module's
-- own signer, sent with curl) that really stop working `seconds` from now: a session
-- policy allows every S3 action only until then (MinIO's shortest STS lifetime is 15
-- minutes). Returns {access_key=, secret_key=, session_token=, expires_at=}.
function M.assume_role(seconds)
  M.require_minio()
  local s3sink = require "s3sink"
  local expires_at = os.time() + seconds
  local policy = ([[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],]]
    .. [["Resource":["arn:aws:s3:::*"],"Condition":{"DateLessThan":{"aws:CurrentTime":"%s"}}}]}]])
    :format(os.date("!%Y-%m-%dT%H:%M:%SZ", expires_at))
  local body = "Action=AssumeRole&DurationSeconds=900&Version=2011-06-15&Policy=" .. form_encode(policy)
  local host = M.endpoint:match("^https?://([^/]+)")
  local ctype = "application/x-www-form-urlencoded; charset=utf-8"
  local sig = assert(s3sink.sign {
    method = "POST", path = "/", body = body, region = "us-east-1", service = "sts",
    access_key = M.access_key, secret_key = M.secret_key,
    headers = { { "Host", host }, { "Content-Type", ctype } },
  })
  local file = M.write_file(M.tmpname(".form"), body)
  -- (curl does not run with the sanitizer preloaded, as the ASan specs run)
  local out, ok = M.run(("env -u LD_PRELOAD curl -sS -X POST %s -H %s -H %s -H %s --data-binary @%s"):format(
    M.shell_quote(M.endpoint .. "/"), M.shell_quote("Content-Type: " .. ctype),
    M.shell_quote("X-Amz-Date: " .. sig.amz_date), M.shell_quote("Authorization: " .. sig.authorization),
    M.shell_quote(file)))
  os.remove(file)
  local function field(name) return out:match("<" .. name .. ">([^<]*)</" .. name .. ">") end
  assert(ok and field("AccessKeyId"), "AssumeRole failed: " .. out)
  return { access_key = field("AccessKeyId"), secret_key = field("SecretAccessKey"),
           session_token = field("SessionToken"), expires_at = expires_at }
end

return M
