-- Path-style and virtual-hosted addressing: an endpoint that is an IP address cannot take
-- virtual-hosted requests (refused when the sink is made, before any request), and a
-- virtual-hosted request that fails the way a path-style server makes it fail names the
-- fix. Against the real MinIO, which serves path-style only (no MINIO_DOMAIN).
local s3sink = require "s3sink"
local system = require "system"
local h = require "helpers"

local FIX = "use path-style addressing: virtual_hosted = false (in Pathway's AwsS3Settings "
  .. "or MinIOSettings: with_path_style=True)"

local function port() return h.endpoint:match(":(%d+)$") end
local function literal(s) return (s:gsub("%p", "%%%0")) end

-- s3sink.sink's nil, message, code, and how long it took.
local function open(bucket, overrides)
  local start = system.gettime()
  local sink, msg, code = s3sink.sink(h.config(bucket, overrides))
  if sink then sink:discard() end
  return sink, msg, code, system.gettime() - start
end

describe("addressing", function()
  local bucket
  before_each(function() bucket = h.new_bucket() end)

  it("refuses virtual-hosted addressing of an IP address at once, naming the fix", function()
    -- port 1: nothing listens there, so any request would fail differently, and slowly
    local cases = { { "http://127.0.0.1:1", "127.0.0.1" }, { "http://[::1]:1", "[::1]" },
      { "https://10.0.0.7", "10.0.0.7" } }
    for _, case in ipairs(cases) do
      local endpoint, host = case[1], case[2]
      local sink, msg, code, took = open(bucket, { endpoint = endpoint, virtual_hosted = true })
      assert.is_nil(sink)
      assert.equal("invalid argument or configuration", code)
      assert.equal(("endpoint '%s' is an IP address, which virtual-hosted addressing cannot "
        .. "use (requests would go to host '%s.%s'): %s"):format(endpoint, bucket, host, FIX), msg)
      assert.is_true(took < 1, "no request was made")
    end
  end)

  it("writes path-style to an IP address and to localhost", function()
    for _, endpoint in ipairs { h.endpoint, "http://localhost:" .. port() } do
      local sink = assert(s3sink.sink(h.config(bucket, { endpoint = endpoint })))
      assert(sink:write({ 1, "a" }, 1, 1))
      assert(sink:time_end(1))
      assert(sink:close())
    end
    assert.equal(2, #h.client(bucket):list("out/"))
  end)

  it("localhost: a server that ignores the bucket in the host name gets the fix named", function()
    local endpoint = "http://localhost:" .. port()
    local sink, msg, code = open(bucket, { endpoint = endpoint, virtual_hosted = true })
    assert.is_nil(sink)
    assert.equal("S3 error response", code)
    assert.matches("^" .. literal("HeadBucket of bucket '" .. bucket .. "' at " .. endpoint
      .. " failed with HTTP ") .. "%d+" .. literal(": the server answered with its list of all "
      .. "buckets, so it ignored the bucket in the host name; virtual-hosted addressing sends "
      .. "requests to host '" .. bucket .. ".localhost:" .. port() .. "'"), msg)
    assert.equal(FIX, msg:sub(-#FIX))
  end)

  it("a bucket host name that does not resolve gets the fix named; path-style does not", function()
    local endpoint = "http://nosuchhost.invalid:" .. port()
    local sink, msg, code = open(bucket, { endpoint = endpoint, virtual_hosted = true,
      max_retry_ms = 300 })
    assert.is_nil(sink)
    assert.equal("HTTP transport error", code)
    assert.matches("cannot resolve the host of " .. endpoint .. ": Could not resolve host: "
      .. bucket .. ".nosuchhost.invalid; check the endpoint; virtual-hosted addressing sends "
      .. "requests to host '" .. bucket .. ".nosuchhost.invalid:" .. port() .. "'", msg, 1, true)
    assert.equal(FIX, msg:sub(-#FIX))

    sink, msg = open(bucket, { endpoint = endpoint, max_retry_ms = 300 })
    assert.is_nil(sink)
    assert.matches("Could not resolve host: nosuchhost.invalid; check the endpoint", msg, 1, true)
    assert.is_nil(msg:find("virtual", 1, true))
  end)
end)
