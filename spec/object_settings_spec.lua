-- The object settings (storage_class, sse, sse_kms_key_id, tags, metadata): the rules
-- checked when a sink is made, and uploads that carry them to a real MinIO (the Python
-- tests read them back with boto3).
local s3sink = require "s3sink"
local h = require "helpers"

-- The message of a sink that cannot be made: raised for a value its option refuses,
-- returned (nil, message) for options that do not go together.
local function refusal(bucket, overrides)
  local ok, sink, msg = pcall(s3sink.sink, h.config(bucket, overrides))
  if not ok then return sink end
  assert.is_nil(sink, "the sink was made with " .. next(overrides))
  return msg
end

local function tags(n)
  local t = {}
  for i = 1, n do t["k" .. i] = "v" end
  return t
end

describe("object settings", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("refuse bad values at creation, naming the option and the fix", function()
    local kms = os.getenv("S3SINK_TEST_KMS_KEY") or "key"
    local cases = {
      { { storage_class = "standard_ia" }, "storage_class 'standard_ia' is not spelt as S3 spells it: write 'STANDARD_IA'" },
      { { storage_class = "COLD" }, "storage_class 'COLD' is not one of S3's: give one of STANDARD, REDUCED_REDUNDANCY, " },
      { { sse = "aes256" }, "sse 'aes256' is not spelt as S3 spells it: write 'AES256'" },
      { { sse = "kms" }, "sse 'kms' is not one of S3's: give one of AES256, aws:kms" },
      { { sse_kms_key_id = kms }, "sse_kms_key_id is set but sse is not set: set sse to \"aws:kms\"" },
      { { sse = "AES256", sse_kms_key_id = kms }, "sse_kms_key_id is set but sse is 'AES256'" },
      { { sse = "aws:kms", sse_kms_key_id = "a key" }, "sse_kms_key_id 'a key' holds blanks" },
      { { tags = tags(11) }, "tags: 11 tags, S3 keeps at most 10 per object: give fewer" },
      { { tags = { [string.rep("k", 129)] = "v" } }, "S3 takes 1 to 128 characters of UTF-8 text" },
      { { tags = { [""] = "v" } }, "tags: key '' is not valid" },
      { { tags = { k = string.rep("é", 257) } }, "tags: the value of 'k' is not valid: S3 takes 0 to 256" },
      { { tags = { k = "a\xff" } }, "tags: the value of 'k' is not valid" },
      { { tags = { k = "a;b" } }, "holds a character S3 refuses in tags: use letters, digits, spaces and + - = . _ : / @" },
      { { tags = { ["aws:owner"] = "x" } }, "starts with 'aws:', which S3 keeps for its own tags" },
      { { tags = { k = 1 } }, "option 'tags' must map strings to strings, not hold a number" },
      { { tags = "k=v" }, "option 'tags' must be a table, not a string" },
      { { metadata = { Team = "x" } }, "metadata: name 'Team' has upper-case letters" },
      { { metadata = { ["a b"] = "x" } }, "metadata: name 'a b' is not valid: use a-z 0-9 - _ ." },
      { { metadata = { ["s3sink-sha256"] = "x" } }, "starts with 's3sink-', which the sink keeps for its own metadata" },
      { { metadata = { k = "caf\xc3\xa9" } }, "metadata: the value of 'k' holds control or non-ASCII characters" },
      { { metadata = { k = "a\nb" } }, "metadata: the value of 'k' holds control or non-ASCII characters" },
      { { metadata = { k = " padded" } }, "starts or ends with a space, which HTTP drops: trim it" },
      { { metadata = { big = string.rep("x", 1969) } }, "metadata: 1972 bytes of names and values, S3 keeps at most 2048" },
      { { metadata = { [1] = "x" } }, "option 'metadata' must map strings to strings, not hold a number" },
    }
    for _, case in ipairs(cases) do
      assert.matches(case[2], refusal(bucket, case[1]), 1, true, case[2])
    end
    -- at the limits
    local most = { [string.rep("k", 128)] = string.rep("v", 256), ["a b+c-d=e.f_g:h/i@j"] = "", ["é"] = "ü" }
    for i = 1, 7 do most["t" .. i] = "x" end
    local sink = assert(s3sink.sink(h.config(bucket, {
      tags = most, metadata = { big = string.rep("x", 1968) }, no_timer = true })))
    sink:discard()
  end)

  it("are sent with every object and accepted by the server", function()
    local sink = assert(s3sink.sink(h.config(bucket, {
      storage_class = "REDUCED_REDUNDANCY", sse = "AES256",
      tags = { team = "data", ["with space"] = "a/b:c" },
      metadata = { source = "spec", empty = "" }, no_timer = true,
    })))
    for batch = 1, 2 do
      assert(sink:write({ batch, "x" }, batch, 1))
      assert(sink:time_end(batch))
      assert(sink:flush(true))
    end
    assert(sink:close())
    assert.equal(2, #client:list("out/"))
  end)

  it("that the server refuses stop uploads with its error", function()
    -- MinIO has no STANDARD_IA tier: S3 would take it, MinIO answers InvalidStorageClass
    local sink = assert(s3sink.sink(h.config(bucket, { storage_class = "STANDARD_IA", no_timer = true })))
    assert(sink:write({ 1, "x" }, 1, 1))
    assert(sink:time_end(1))
    local ok, msg, code = sink:flush(true)
    assert.is_nil(ok)
    assert.equal("InvalidStorageClass", code)
    assert.matches("kept in memory", msg, 1, true)
    sink:discard()
    -- a KMS key the server does not have
    sink = assert(s3sink.sink(h.config(bucket, { sse = "aws:kms", sse_kms_key_id = "no-such-key", no_timer = true })))
    assert(sink:write({ 1, "x" }, 1, 1))
    assert(sink:time_end(1))
    ok, msg = sink:flush(true)
    assert.is_nil(ok)
    assert.matches("kms:KeyNotFound", msg, 1, true)
    sink:discard()
    -- S3 takes tags in any script; MinIO only ASCII
    sink = assert(s3sink.sink(h.config(bucket, { tags = { ["é"] = "x" }, no_timer = true })))
    assert(sink:write({ 1, "x" }, 1, 1))
    assert(sink:time_end(1))
    ok, msg, code = sink:flush(true)
    assert.is_nil(ok)
    assert.equal("InvalidTag", code)
    sink:discard()
    assert.same({}, client:list("out/"))
  end)
end)
