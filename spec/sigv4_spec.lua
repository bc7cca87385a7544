-- spec/sigv4_spec.lua - the SigV4 signer (s3sink.sign / s3sink.presign).
--
-- 1. Every case of the AWS signing test suite (awslabs/aws-c-auth, vendored in
--    spec/fixtures/sigv4, or the copy named by $S3SINK_VECTORS), signed in the
--    Authorization header and as a presigned URL. docs/sigv4.md, "The test vectors".
-- 2. S3-specific cases (service "s3", normalize=false), cross-checked against botocore.
local s3sink = require "s3sink"
local cjson = require "cjson"

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The repository root: the parent of the folder holding this spec.
local function repo_root()
  local src = debug.getinfo(1, "S").source
  local path = src:sub(1, 1) == "@" and src:sub(2) or "spec/sigv4_spec.lua"
  return path:match("^(.*)/spec/[^/]+$") or (path:match("^spec/[^/]+$") and ".") or "."
end

local function vectors_dir()
  local env = os.getenv("S3SINK_VECTORS")
  if env and env ~= "" then return env end
  return repo_root() .. "/spec/fixtures/sigv4"
end

local function list_cases(dir)
  local names = {}
  local ok, lfs = pcall(require, "lfs")
  if ok then
    local iter_ok, iter, state = pcall(lfs.dir, dir)
    if not iter_ok then return names end
    for name in iter, state do
      if name:sub(1, 1) ~= "." and lfs.attributes(dir .. "/" .. name, "mode") == "directory" then
        names[#names + 1] = name
      end
    end
  else
    local p = io.popen('ls -1 "' .. dir .. '" 2>/dev/null')
    for name in p:lines() do
      if read_file(dir .. "/" .. name .. "/request.txt") then names[#names + 1] = name end
    end
    p:close()
  end
  table.sort(names)
  return names
end

-- request.txt: request line, headers in order (duplicates kept), blank line, body.
local function parse_request(text)
  local head, body = text:match("^(.-)\r?\n\r?\n(.*)$")
  if not head then head, body = text, "" end
  local lines = {}
  for line in (head .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  local method, target = lines[1]:match("^(%S+) (.*) HTTP/%d%.%d$")
  assert(method, "bad request line: " .. lines[1])
  local path, query = target:match("^([^?]*)%?(.*)$")
  if not path then path = target end
  local headers = {}
  for i = 2, #lines do
    if lines[i] ~= "" then
      local name, value = lines[i]:match("^([^:]+):(.*)$")
      assert(name, "bad header line: " .. lines[i])
      headers[#headers + 1] = { name, value }
    end
  end
  return { method = method, path = path, query = query, headers = headers, body = body }
end

-- Query parameters as a sorted list, so orders can be compared.
local function sorted_params(query)
  local t = {}
  for pair in (query or ""):gmatch("[^&]+") do t[#t + 1] = pair end
  table.sort(t)
  return t
end

local function signed_target(file)
  local first = (read_file(file) or ""):match("^[^\r\n]*")
  return first:match("^%S+ (.*) HTTP/%d%.%d$")
end

local VECTORS = vectors_dir()
local CASES = list_cases(VECTORS)

describe("SigV4 test suite", function()
  it("finds the vectors in " .. VECTORS, function()
    assert.is_true(#CASES > 0, "no vectors found: set S3SINK_VECTORS")
  end)

  for _, name in ipairs(CASES) do
    local dir = VECTORS .. "/" .. name
    local function args()
      local ctx_text = assert(read_file(dir .. "/context.json"), "no context.json")
      local req_text = assert(read_file(dir .. "/request.txt"), "no request.txt")
      local ctx = cjson.decode(ctx_text)
      local req = parse_request(req_text)
      return {
        method = req.method, path = req.path, query = req.query, headers = req.headers,
        -- sign_body=false: the payload hash is that of the empty body
        body = ctx.sign_body and req.body or nil,
        access_key = ctx.credentials.access_key_id,
        secret_key = ctx.credentials.secret_access_key,
        session_token = ctx.credentials.token,
        region = ctx.region, service = ctx.service,
        time = ctx.timestamp, normalize = ctx.normalize, content_sha256 = ctx.sign_body,
        expires = ctx.expiration_in_seconds,
      }
    end
    local function expect(file)
      local text = read_file(dir .. "/" .. file)
      assert(text, "missing " .. file)
      return text
    end

    it(name .. " (header)", function()
      local r, err = s3sink.sign(args())
      assert.is_nil(err)
      assert.are.equal(expect("header-canonical-request.txt"), r.canonical_request)
      assert.are.equal(expect("header-string-to-sign.txt"), r.string_to_sign)
      assert.are.equal(expect("header-signature.txt"), r.signature)
      local auth = expect("header-signed-request.txt"):match("\nAuthorization:([^\r\n]*)")
      assert.are.equal(auth, r.authorization)
      assert.are.equal("20150830T123600Z", r.amz_date)
      assert.is_nil(r.query)
    end)

    it(name .. " (query)", function()
      local r, err = s3sink.presign(args())
      assert.is_nil(err)
      assert.are.equal(expect("query-canonical-request.txt"), r.canonical_request)
      assert.are.equal(expect("query-string-to-sign.txt"), r.string_to_sign)
      assert.are.equal(expect("query-signature.txt"), r.signature)
      -- the same parameters as the suite's signed request (which orders them differently)
      local target = signed_target(dir .. "/query-signed-request.txt")
      local query = target:match("%?(.*)$")
      assert.are.same(sorted_params(query), sorted_params(r.query))
      assert.is_nil(r.authorization)
    end)
  end
end)

-- Expected values computed once with botocore 1.44.8 (`botocore.auth.S3SigV4Auth` and
-- `S3SigV4QueryAuth`, region us-east-1, service s3, get_current_datetime patched to
-- 2024-05-01T10:20:30Z, an http:// URL so the payload is hashed), by a throwaway script:
--   req = AWSRequest(method=..., url="http://127.0.0.1:9000" .. path, headers=..., data=...)
--   S3SigV4Auth(Credentials(AK, SK, token), "s3", "us-east-1").add_auth(req)
-- recording the canonical request, the string to sign and the Authorization header.
-- The key "dir/my key+é~.csv" is what botocore's serializer encodes to the path below.
describe("SigV4 for S3 (botocore cross-check)", function()
  local AK, SK = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
  local TOKEN = "FwoGZXIvYXdzEXAMPLE/token+with=chars"
  local EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
  local HOST = { "Host", "127.0.0.1:9000" }
  local T = 1714558830 -- 2024-05-01T10:20:30Z

  local function s3(t)
    t.access_key, t.secret_key, t.region, t.service = AK, SK, "us-east-1", "s3"
    t.time, t.normalize = t.time or T, false
    if t.content_sha256 == nil then t.content_sha256 = true end
    return t
  end

  local function auth(signed_headers, sig)
    return "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240501/us-east-1/s3/aws4_request, "
      .. "SignedHeaders=" .. signed_headers .. ", Signature=" .. sig
  end

  local put_body = "a,b\n1,2\n"
  local put_headers = {
    HOST, { "Content-Type", "text/csv" }, { "Content-MD5", "5evUwCzvvnlVl3xnraJCtw==" },
    { "If-None-Match", "*" }, { "Expect", "" }, { "User-Agent", "s3sink" },
  }
  local put_canonical = table.concat({
    "PUT",
    "/examplebucket/dir/my%20key%2B%C3%A9~.csv",
    "",
    "content-md5:5evUwCzvvnlVl3xnraJCtw==",
    "content-type:text/csv",
    "host:127.0.0.1:9000",
    "if-none-match:*",
    "x-amz-content-sha256:492d5ea496056f1a6a6592241032fab764c321596317930b4fa0e1e8bc3b7470",
    "x-amz-date:20240501T102030Z",
    "",
    "content-md5;content-type;host;if-none-match;x-amz-content-sha256;x-amz-date",
    "492d5ea496056f1a6a6592241032fab764c321596317930b4fa0e1e8bc3b7470",
  }, "\n")
  local put_auth = auth("content-md5;content-type;host;if-none-match;x-amz-content-sha256;x-amz-date",
    "d586088df050e3252fc30438d907a1c4d43a04111465eb75ac5ee546c8083649")

  it("PUT of a key with spaces, unicode and '+': encoded once, uppercase hex", function()
    local r = assert(s3sink.sign(s3 { method = "PUT", path = "/examplebucket/dir/my%20key%2B%C3%A9~.csv",
      headers = put_headers, body = put_body }))
    assert.are.equal(put_canonical, r.canonical_request)
    assert.are.equal("AWS4-HMAC-SHA256\n20240501T102030Z\n20240501/us-east-1/s3/aws4_request\n"
      .. "5d50df1b57debb8a6df28b7e90b3c9e4290b08116967abe77415552e83d09717", r.string_to_sign)
    assert.are.equal(put_auth, r.authorization)
    assert.are.equal("492d5ea496056f1a6a6592241032fab764c321596317930b4fa0e1e8bc3b7470", r.content_sha256)
  end)

  it("a raw path is encoded once, the same as its encoded form", function()
    local r = assert(s3sink.sign(s3 { method = "PUT", path = "/examplebucket/dir/my key+é~.csv",
      headers = put_headers, body = put_body }))
    assert.are.equal(put_canonical, r.canonical_request)
    assert.are.equal(put_auth, r.authorization)
  end)

  it("an encoded path is not encoded again", function()
    local r = assert(s3sink.sign(s3 { method = "GET", path = "/b/a%2Fb%25c", headers = { HOST } }))
    assert.are.equal("/b/a%2Fb%25c", r.canonical_request:match("^GET\n([^\n]*)"))
  end)

  it("payload_hash is signed as given", function()
    local r = assert(s3sink.sign(s3 { method = "PUT", path = "/examplebucket/dir/my%20key%2B%C3%A9~.csv",
      headers = put_headers, payload_hash = "492d5ea496056f1a6a6592241032fab764c321596317930b4fa0e1e8bc3b7470" }))
    assert.are.equal(put_auth, r.authorization)
  end)

  it("keeps '//', '.' and '..' in the path (no normalization)", function()
    local r = assert(s3sink.sign(s3 { method = "GET", path = "/examplebucket//a/./b/../c", headers = { HOST } }))
    assert.are.equal(table.concat({
      "GET", "/examplebucket//a/./b/../c", "", "host:127.0.0.1:9000", "x-amz-content-sha256:" .. EMPTY,
      "x-amz-date:20240501T102030Z", "", "host;x-amz-content-sha256;x-amz-date", EMPTY }, "\n"),
      r.canonical_request)
    assert.are.equal(auth("host;x-amz-content-sha256;x-amz-date",
      "da6fba10640f42b6e624527b759fd121c4b8e6a8343d34db567b2409f271d074"), r.authorization)
  end)

  it("sorts and strictly encodes a ListObjectsV2 query", function()
    local r = assert(s3sink.sign(s3 { method = "GET", path = "/examplebucket",
      query = "list-type=2&prefix=out%2Frun%201%2F&continuation-token=1%2Fabc%2B%3D", headers = { HOST } }))
    assert.are.equal("continuation-token=1%2Fabc%2B%3D&list-type=2&prefix=out%2Frun%201%2F",
      r.canonical_request:match("^GET\n[^\n]*\n([^\n]*)"))
    assert.are.equal(auth("host;x-amz-content-sha256;x-amz-date",
      "c1e410bf410b90e78a977d1275e375230eced484860a5cf2c55d40cce778bf31"), r.authorization)
  end)

  it("re-encodes query bytes and gives valueless keys an '='", function()
    local r = assert(s3sink.sign(s3 { method = "POST", path = "/b/k",
      query = "uploads&b=x%2fy&a=%7e+~&a=%41", headers = { HOST } }))
    assert.are.equal("a=A&a=~%20~&b=x%2Fy&uploads=", r.canonical_request:match("^POST\n[^\n]*\n([^\n]*)"))
  end)

  it("signs the session token as a header", function()
    local r = assert(s3sink.sign(s3 { method = "GET", path = "/examplebucket/k", headers = { HOST },
      session_token = TOKEN }))
    assert.truthy(r.canonical_request:find("\nx-amz-security-token:" .. TOKEN .. "\n", 1, true))
    assert.are.equal(auth("host;x-amz-content-sha256;x-amz-date;x-amz-security-token",
      "8bdd283a7e542abf0e11e706986287ae2f611a0fa17bfa9a75ee2e5c78f673c1"), r.authorization)
  end)

  it("presigns with UNSIGNED-PAYLOAD and the token in the query", function()
    local r = assert(s3sink.presign(s3 { method = "GET", path = "/examplebucket/my%20key.csv",
      headers = { HOST }, session_token = TOKEN, expires = 900 }))
    assert.are.equal(table.concat({
      "GET", "/examplebucket/my%20key.csv",
      "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240501%2Fus-east-1%2Fs3%2Faws4_request"
        .. "&X-Amz-Date=20240501T102030Z&X-Amz-Expires=900"
        .. "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE%2Ftoken%2Bwith%3Dchars&X-Amz-SignedHeaders=host",
      "host:127.0.0.1:9000", "", "host", "UNSIGNED-PAYLOAD" }, "\n"), r.canonical_request)
    assert.are.equal("08fe1466ef3946277788f3487f389e1fcd66d75fffd0db04879f8a4c63b67202", r.signature)
    assert.are.equal("UNSIGNED-PAYLOAD", r.content_sha256)
    assert.truthy(r.query:find("&X-Amz-Signature=" .. r.signature, 1, true))
  end)

  it("accepts the time as seconds or as an ISO 8601 / amz date string", function()
    local a = assert(s3sink.sign(s3 { method = "GET", path = "/b", headers = { HOST }, time = T }))
    local b = assert(s3sink.sign(s3 { method = "GET", path = "/b", headers = { HOST }, time = "2024-05-01T10:20:30Z" }))
    local c = assert(s3sink.sign(s3 { method = "GET", path = "/b", headers = { HOST }, time = "20240501T102030Z" }))
    assert.are.equal(a.signature, b.signature)
    assert.are.equal(a.signature, c.signature)
    assert.are.equal("20240501T102030Z", a.amz_date)
  end)
end)

describe("SigV4 argument checks", function()
  local base = function()
    return { method = "GET", path = "/", headers = { { "Host", "h" } }, access_key = "AK",
      secret_key = "SECRETKEY", region = "us-east-1", service = "s3", time = 0 }
  end

  it("raises on misuse", function()
    assert.has_error(function() s3sink.sign("GET /") end)
    local t = base(); t.method = nil
    assert.has_error(function() s3sink.sign(t) end)
    t = base(); t.headers = { "Host: h" }
    assert.has_error(function() s3sink.sign(t) end)
    t = base(); t.normalize = "yes"
    assert.has_error(function() s3sink.sign(t) end)
    t = base(); t.time = "yesterday"
    assert.has_error(function() s3sink.presign(t) end)
    t = base(); t.expires = 1.5
    assert.has_error(function() s3sink.presign(t) end)
  end)

  it("returns nil and a message when the request cannot be signed", function()
    local t = base(); t.headers = {}
    local r, err = s3sink.sign(t)
    assert.is_nil(r)
    assert.truthy(err:find("Host", 1, true))
    t = base(); t.expires = 0
    r, err = s3sink.presign(t)
    assert.is_nil(r)
    assert.truthy(err:find("expires", 1, true))
    t = base(); t.headers = { { "Host", "h\r\nX-Injected: 1" } }
    r, err = s3sink.sign(t)
    assert.is_nil(r)
    assert.is_falsy(err:find("SECRETKEY", 1, true))
  end)
end)
