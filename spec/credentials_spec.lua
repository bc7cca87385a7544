-- Credentials against the real MinIO: the environment and the AWS shared files (in a
-- child process whose environment the spec sets), the endpoint and region they give, a
-- credentials function (temporary credentials from MinIO's STS that really stop working,
-- refreshed while the sink runs), its failures, and anonymous requests.
local s3sink = require "s3sink"
local h = require "helpers"
local system = require "system"

-- Every variable that could leak a developer's AWS setup into a child.
local AWS_VARS = {
  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
  "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
  "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
}
local CPATH = os.getenv("S3SINK_CPATH") or "build"
local LUA = os.getenv("LUA") or "lua5.4"

-- A new, empty home folder (with .aws/ when files are given: {credentials=, config=}).
local function home(files)
  local dir = h.tmpname("-home")
  assert(os.execute("mkdir -p " .. h.shell_quote(dir .. "/.aws")))
  for name, text in pairs(files or {}) do h.write_file(dir .. "/.aws/" .. name, text) end
  return dir
end

-- Runs credentials_child.lua with the environment `env` (HOME: an empty one unless
-- given) and sink options `opts` (endpoint and region: the test MinIO's unless given,
-- false for none). Returns ok, the source or the message, the code.
local function child(env, bucket, prefix, opts)
  local cmd = { "env" }
  for _, v in ipairs(AWS_VARS) do cmd[#cmd + 1] = "-u " .. v end
  env = env or {}
  env.HOME = env.HOME or home()
  env.LUA_CPATH = (CPATH:sub(1, 1) == "/" and "" or "./") .. CPATH .. "/?.so;;"
  for k, v in pairs(env) do cmd[#cmd + 1] = k .. "=" .. h.shell_quote(v) end
  cmd[#cmd + 1] = LUA .. " spec/support/credentials_child.lua " .. h.shell_quote(bucket) .. " "
    .. h.shell_quote(prefix)
  opts = opts or {}
  if opts.endpoint == nil then opts.endpoint = h.endpoint end
  if opts.region == nil then opts.region = "us-east-1" end
  for k, v in pairs(opts) do
    if v then cmd[#cmd + 1] = h.shell_quote(k .. "=" .. tostring(v)) end
  end
  local out = h.run(table.concat(cmd, " "))
  local status, text, code = out:match("^(%a+)\t([^\t\n]*)\t?([^\n]*)")
  assert(status, "the child printed: " .. out)
  return status == "ok", text, code
end

local function keys_file(section, ak, sk, extra)
  return ("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n%s\n"):format(section, ak, sk, extra or "")
end

local function uploaded(client, prefix) return #client:list(prefix) end

describe("credentials from the environment and the AWS shared files", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", function()
    local ok, source = child({ AWS_ACCESS_KEY_ID = h.access_key, AWS_SECRET_ACCESS_KEY = h.secret_key }, bucket, "env/")
    assert.is_true(ok, source)
    assert.equal("the environment (AWS_ACCESS_KEY_ID)", source)
    assert.equal(1, uploaded(client, "env/"))
  end)

  it("AWS_SESSION_TOKEN with temporary credentials", function()
    local t = h.assume_role(60)
    local ok, source = child({ AWS_ACCESS_KEY_ID = t.access_key, AWS_SECRET_ACCESS_KEY = t.secret_key,
                               AWS_SESSION_TOKEN = t.session_token }, bucket, "sts/")
    assert.is_true(ok, source)
    assert.equal(1, uploaded(client, "sts/"))
    -- the same keys without their token are refused: the token was sent
    local ok2, msg = child({ AWS_ACCESS_KEY_ID = t.access_key, AWS_SECRET_ACCESS_KEY = t.secret_key }, bucket, "sts/")
    assert.is_false(ok2)
    assert.matches("[credentials from the environment (AWS_ACCESS_KEY_ID)]", msg, 1, true)
  end)

  it("the default profile of ~/.aws/credentials", function()
    -- comments, upper-case keys and ':' are read as the AWS tools read them
    local dir = home { credentials = "# keys\n; more\n[other]\naws_access_key_id = x\n\n[default]\n"
      .. "AWS_ACCESS_KEY_ID = " .. h.access_key .. "\naws_secret_access_key: " .. h.secret_key .. "\n" }
    local ok, source = child({ HOME = dir }, bucket, "default/")
    assert.is_true(ok, source)
    assert.equal("profile 'default' in " .. dir .. "/.aws/credentials", source)
    assert.equal(1, uploaded(client, "default/"))
  end)

  it("AWS_PROFILE picks a profile of AWS_SHARED_CREDENTIALS_FILE", function()
    local file = h.write_file(h.tmpname(), keys_file("default", "wrongkey", "wrongsecret")
      .. keys_file("work", h.access_key, h.secret_key))
    local ok, source = child({ AWS_SHARED_CREDENTIALS_FILE = file, AWS_PROFILE = "work" }, bucket, "work/")
    assert.is_true(ok, source)
    assert.equal("profile 'work' in " .. file, source)
    local ok2, msg, code = child({ AWS_SHARED_CREDENTIALS_FILE = file }, bucket, "work/")
    assert.is_false(ok2)
    assert.equal("InvalidAccessKeyId", code)
    assert.matches("[credentials from profile 'default' in " .. file .. "]", msg, 1, true)
    assert.equal(1, uploaded(client, "work/"))
  end)

  it("a [profile name] of AWS_CONFIG_FILE, and the credentials file first", function()
    local config = h.write_file(h.tmpname(), keys_file("profile  cfg ", h.access_key, h.secret_key, "region = us-east-1")
      .. keys_file("profile both", h.access_key, h.secret_key))
    local creds = h.write_file(h.tmpname(), keys_file("both", "wrongkey", "wrongsecret"))
    local env = { AWS_CONFIG_FILE = config, AWS_SHARED_CREDENTIALS_FILE = creds, AWS_PROFILE = "cfg" }
    local ok, source = child(env, bucket, "cfg/")
    assert.is_true(ok, source)
    assert.equal("profile 'cfg' in " .. config, source)
    env.AWS_PROFILE = "both" -- in both files: the credentials file's keys (wrong here) win
    local ok2, msg = child(env, bucket, "cfg/")
    assert.is_false(ok2)
    assert.matches("[credentials from profile 'both' in " .. creds .. "]", msg, 1, true)
  end)

  it("the environment wins over AWS_PROFILE, the profile option over the environment", function()
    local file = h.write_file(h.tmpname(), keys_file("work", h.access_key, h.secret_key))
    local env = { AWS_SHARED_CREDENTIALS_FILE = file, AWS_PROFILE = "work",
                  AWS_ACCESS_KEY_ID = "wrongkey", AWS_SECRET_ACCESS_KEY = "wrongsecret" }
    local ok, msg = child(env, bucket, "p/")
    assert.is_false(ok)
    assert.matches("[credentials from the environment (AWS_ACCESS_KEY_ID)]", msg, 1, true)
    env.AWS_PROFILE = nil
    local ok2, source = child(env, bucket, "p/", { profile = "work" })
    assert.is_true(ok2, source)
    assert.equal("profile 'work' in " .. file, source)
  end)

  it("refuses what it cannot use, naming it", function()
    local ok, msg = child({ AWS_ACCESS_KEY_ID = h.access_key }, bucket, "x/")
    assert.is_false(ok)
    assert.matches("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not", msg, 1, true)

    local file = h.write_file(h.tmpname(), keys_file("work", h.access_key, h.secret_key))
    ok, msg = child({ AWS_SHARED_CREDENTIALS_FILE = file, AWS_PROFILE = "nosuch" }, bucket, "x/")
    assert.is_false(ok)
    assert.matches("profile 'nosuch' (from AWS_PROFILE) is in neither " .. file, msg, 1, true)

    local config = h.write_file(h.tmpname(), "[profile proc]\ncredential_process = /bin/false\n")
    ok, msg = child({ AWS_CONFIG_FILE = config, AWS_PROFILE = "proc" }, bucket, "x/")
    assert.is_false(ok)
    assert.matches("profile 'proc' in " .. config .. " gets its credentials with credential_process", msg, 1, true)

    ok, msg = child({ AWS_SHARED_CREDENTIALS_FILE = h.write_file(h.tmpname(), "[half]\naws_access_key_id = k\n"),
                      AWS_PROFILE = "half" }, bucket, "x/")
    assert.is_false(ok)
    assert.matches("has aws_access_key_id but no aws_secret_access_key", msg, 1, true)
    assert.equal(0, uploaded(client, "x/"))
  end)

  it("no credentials at all is an error naming what was searched", function()
    local dir = home()
    local ok, msg, code = child({ HOME = dir, AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1:1/" }, bucket, "x/")
    assert.is_false(ok)
    assert.equal("invalid argument or configuration", code)
    assert.matches("no credentials found: none in the options (access_key, secret_key), the "
      .. "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), nor for profile 'default' in "
      .. dir .. "/.aws/credentials or " .. dir .. "/.aws/config", msg, 1, true)
    assert.matches("AWS_CONTAINER_CREDENTIALS_FULL_URI is set", msg, 1, true)
    assert.matches("set anonymous = true to send unsigned requests", msg, 1, true)
  end)

  it("anonymous = true sends unsigned requests, and a denial says they were anonymous", function()
    local ok, msg, code = child({}, bucket, "anon/", { anonymous = true })
    assert.is_false(ok)
    assert.equal("AccessDenied", code)
    assert.matches("the request was anonymous (the anonymous option): nothing was signed", msg, 1, true)
    local sink, err = s3sink.sink(h.config(bucket, { anonymous = true }))
    assert.is_nil(sink)
    assert.matches("anonymous is set, and access_key/secret_key too", err, 1, true)
  end)

  it("the endpoint from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or the profile when none is given", function()
    local env = { AWS_ACCESS_KEY_ID = h.access_key, AWS_SECRET_ACCESS_KEY = h.secret_key,
                  AWS_ENDPOINT_URL = h.endpoint }
    assert.is_true((child(env, bucket, "e1/", { endpoint = false })))
    env.AWS_ENDPOINT_URL = "http://127.0.0.1:1" -- the S3 one wins
    env.AWS_ENDPOINT_URL_S3 = h.endpoint
    assert.is_true((child(env, bucket, "e2/", { endpoint = false })))
    env.AWS_ENDPOINT_URL, env.AWS_ENDPOINT_URL_S3 = nil, nil
    env.AWS_CONFIG_FILE = h.write_file(h.tmpname(), "[profile ep]\nendpoint_url = " .. h.endpoint .. "\n")
    env.AWS_PROFILE = "ep"
    assert.is_true((child(env, bucket, "e3/", { endpoint = false })))
    env.AWS_CONFIG_FILE = h.write_file(h.tmpname(), "[profile ep]\nservices = local\n\n[services local]\ns3 =\n"
      .. "  endpoint_url = " .. h.endpoint .. "\n")
    assert.is_true((child(env, bucket, "e4/", { endpoint = false })))
    for i = 1, 4 do assert.equal(1, uploaded(client, "e" .. i .. "/")) end
    -- a given endpoint wins over them all
    env.AWS_CONFIG_FILE, env.AWS_PROFILE, env.AWS_ENDPOINT_URL = nil, nil, "http://127.0.0.1:1"
    assert.is_true((child(env, bucket, "e5/")))
  end)

  it("the region from AWS_REGION when none is given, named when it is wrong", function()
    local env = { AWS_ACCESS_KEY_ID = h.access_key, AWS_SECRET_ACCESS_KEY = h.secret_key,
                  AWS_REGION = "not a region" }
    local ok, msg = child(env, bucket, "r/", { region = false })
    assert.is_false(ok)
    assert.matches("region from AWS_REGION", msg, 1, true)
    assert.matches("not a region", msg, 1, true)
  end)
end)

describe("a credentials function", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  local function config(credentials, overrides)
    local cfg = h.config(bucket, overrides)
    cfg.access_key, cfg.secret_key, cfg.credentials = nil, nil, credentials
    return cfg
  end

  it("is asked once for credentials that do not expire", function()
    local calls = 0
    local sink = assert(s3sink.sink(config(function()
      calls = calls + 1
      return { access_key = h.access_key, secret_key = h.secret_key, source = "a test" }
    end, { no_timer = true })))
    for i = 1, 3 do
      assert(sink:write({ i, "x" }, i, 1))
      assert(sink:time_end(i))
      assert.is_true(sink:flush(true))
    end
    assert.equal("the credentials provider (a test)", sink:credentials_source())
    assert(sink:close())
    assert.equal(1, calls)
    assert.equal(3, uploaded(client, "out/"))
  end)

  -- Temporary credentials that stop working 4 s after they are made: the sink must ask
  -- for new ones before, and never sign with expired ones (MinIO would deny the upload,
  -- which stops uploads).
  local function sts_function(log)
    return function()
      local t = h.assume_role(4)
      log[#log + 1] = { key = t.access_key, at = os.time() }
      t.source = "MinIO STS"
      return t
    end
  end

  it("is asked again as temporary credentials near their expiry (host's uploads)", function()
    local log = {}
    local sink = assert(s3sink.sink(config(sts_function(log), { no_timer = true })))
    local deadline = system.gettime() + 8
    local i = 0
    while system.gettime() < deadline do
      i = i + 1
      assert(sink:write({ i, "x" }, i, 1))
      assert(sink:time_end(i))
      assert(sink:flush(true))
      system.sleep(0.25)
    end
    assert(sink:close())
    assert.is_true(#log >= 3, "asked " .. #log .. " times")
    local distinct = {}
    for _, e in ipairs(log) do
      assert.is_nil(distinct[e.key])
      distinct[e.key] = true
    end
    assert.equal(i, uploaded(client, "out/")) -- every upload signed with valid credentials
  end)

  it("refreshes on the host's thread what the sink's own thread uploads", function()
    local log = {}
    local sink = assert(s3sink.sink(config(sts_function(log), { write_interval_ms = 300 })))
    local deadline = system.gettime() + 8
    local i = 0
    while system.gettime() < deadline do -- the host never flushes: the sink's thread uploads
      i = i + 1
      assert(sink:write({ i, "x" }, i, 1))
      assert(sink:time_end(i))
      system.sleep(0.1)
    end
    assert.truthy(h.eventually(5, function() return sink:stats().buffered_rows == 0 end))
    local stats = sink:stats()
    assert.is_nil(sink:failure())
    assert.equal(0, stats.failed_uploads)
    assert.equal(i, stats.rows)
    assert.is_true(stats.objects >= 10, stats.objects .. " objects")
    assert(sink:close())
    assert.is_true(#log >= 3, "asked " .. #log .. " times")
  end)

  it("is asked again at once when the server refuses its keys", function()
    local answers = {
      { access_key = "nobody", secret_key = "nothing" },
      { access_key = h.access_key, secret_key = h.secret_key },
    }
    local calls = 0
    local sink = assert(s3sink.sink(config(function()
      calls = calls + 1
      return answers[math.min(calls, 2)]
    end, { no_timer = true })))
    assert.equal(2, calls)
    assert(sink:write({ 1, "x" }, 1, 1))
    assert(sink:close())
    assert.equal(2, calls)
    -- and the same refused keys again are a permanent error, at once
    local started = system.gettime()
    local bad, err, code = s3sink.sink(config(function() return answers[1] end))
    assert.is_nil(bad)
    assert.equal("InvalidAccessKeyId", code)
    assert.matches("asked again, the provider gave the same credentials", err, 1, true)
    assert.is_true(system.gettime() - started < 5)
  end)

  it("nil, message is a failure retried within max_retry_ms; an error is not retried", function()
    local calls = 0
    local sink, err = s3sink.sink(config(function()
      calls = calls + 1
      return nil, "the vault did not answer"
    end, { max_retry_ms = 1500 }))
    assert.is_nil(sink)
    assert.matches("cannot get credentials from the credentials provider: the credentials "
      .. "function returned nil: the vault did not answer", err, 1, true)
    assert.is_true(calls >= 2, calls .. " calls")

    calls = 0
    sink, err = s3sink.sink(config(function()
      calls = calls + 1
      error("no vault configured")
    end))
    assert.is_nil(sink)
    assert.matches("the credentials function raised an error: .*no vault configured.*stack traceback", err)
    assert.equal(1, calls)
  end)

  it("answers that are not credentials are refused, naming the field", function()
    local cases = {
      { function() return { access_key = h.access_key } end, "secret_key is missing" },
      { function() return { access_key = 5, secret_key = "s" } end, "access_key is not a string" },
      { function() return "keys" end, "returned a string: return a table" },
      { function() return { access_key = "a b", secret_key = "s" } end, "its access_key holds blanks" },
      { function() return { access_key = "a", secret_key = "s", expires_at = "soon" } end,
        "expires_at is a string" },
    }
    for _, c in ipairs(cases) do
      local sink, err = s3sink.sink(config(c[1]))
      assert.is_nil(sink)
      assert.matches(c[2], err, 1, true)
    end
    assert.has_error(function() s3sink.sink(config("minioadmin")) end,
      "sink: option 'credentials' must be a function, not a string")
    local sink, err = s3sink.sink(config(function() end, { anonymous = true }))
    assert.is_nil(sink)
    assert.matches("a credentials provider is given, and anonymous too", err, 1, true)
  end)

  it("may refer to its sink: an unclosed sink is still collected (its last upload too)", function()
    local function make() -- the function keeps its sink in an upvalue of its own
      local own
      own = assert(s3sink.sink(config(function()
        assert(own == nil or getmetatable(own))
        return { access_key = h.access_key, secret_key = h.secret_key }
      end, { no_timer = true })))
      return own
    end
    local sink = make()
    assert(sink:write({ 1, "x" }, 1, 1))
    local weak = setmetatable({ sink }, { __mode = "v" })
    sink = nil
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
    assert.equal(1, uploaded(client, "out/")) -- uploaded by the collector
  end)

  it("cannot call the sink's methods, and keeps valid credentials when it fails", function()
    local sink, t0
    local calls = 0
    sink = assert(s3sink.sink(config(function()
      calls = calls + 1
      if calls > 1 then sink:stats() end -- raises
      t0 = os.time()
      return { access_key = h.access_key, secret_key = h.secret_key, expires_at = t0 + 4 }
    end, { no_timer = true })))
    local function wait_until(t) while os.time() < t do system.sleep(0.05) end end
    wait_until(t0 + 2) -- half their life has passed: due, but still valid
    assert(sink:write({ 1, "x" }, 1, 1))
    assert(sink:time_end(1))
    local uploaded_, err = sink:flush(true)
    assert.is_true(uploaded_, err)
    assert.is_true(calls >= 2) -- asked while due; its errors left the valid ones in use
    wait_until(t0 + 4) -- expired now: the function's error is the upload's
    assert(sink:write({ 2, "x" }, 2, 1))
    assert(sink:time_end(2))
    local ok, err = sink:flush(true)
    assert.is_nil(ok)
    assert.matches("cannot be called from its credentials function", err, 1, true)
    sink:discard()
  end)
end)
