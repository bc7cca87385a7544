-- Early uploads, against the real MinIO: an open object that reaches
-- multipart_threshold_bytes goes up in parts while rows are still written, and is
-- completed only once sealed, so objects still hold complete minibatches only. MinIO takes
-- parts of 5 MiB or more but the last: the objects here are 11 to 16 MiB in 5 MiB parts.
local s3sink = require "s3sink"
local h = require "helpers"
local system = require "system"

local MiB = 1024 * 1024
local HEADER = '"id","name","time","diff"\n'

local function open(bucket, overrides)
  local cfg = h.config(bucket, {
    background_uploads = true, write_interval_ms = 3600000,
    multipart_threshold_bytes = 5 * MiB, multipart_part_bytes = 5 * MiB,
  })
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  return assert(s3sink.sink(cfg))
end

-- Writes rows first..last (about 1 KB each) at engine time `time`, without ending the
-- minibatch; returns their CSV.
local function write(sink, first, last, time)
  local text = {}
  for i = first, last do
    local name = string.format("%07d", i) .. string.rep(string.char(97 + i % 26), 1000)
    assert(sink:write({ i, name }, time, 1))
    text[#text + 1] = string.format('"%d","%s","%d","1"\n', i, name, time)
  end
  return table.concat(text)
end

-- The live multipart uploads of the bucket, once at least `n` exist (or after a while).
local function uploads_once(client, n)
  local found = h.eventually(20, function()
    local l = assert(client:list_uploads(""))
    return #l >= n and l
  end)
  return found or assert(client:list_uploads(""))
end

local function objects_and_etags(client)
  local out = {}
  for _, o in ipairs(h.objects(client, "out/")) do
    o.etag = assert(client:head(o.key))
    out[#out + 1] = o
  end
  return out
end

describe("early uploads", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("send the parts of one large minibatch while it is written, complete it at its end", function()
    local sink = open(bucket)
    local csv = write(sink, 1, 6000, 2) -- about 6 MiB: one part can go
    local live = uploads_once(client, 1)
    assert.equal(1, #live) -- started before the minibatch ended: nothing visible yet
    assert.same({}, client:list("out/"))
    csv = csv .. write(sink, 6001, 13000, 2)
    assert.truthy(h.eventually(20, function() return sink:stats().early_bytes == 10 * MiB end))
    assert(sink:time_end(2))
    assert(sink:close())
    local objs = objects_and_etags(client)
    assert.equal(1, #objs)
    assert.equal(live[1].key, objs[1].key) -- named when its upload started
    assert.equal(HEADER .. csv, objs[1].body)
    assert.matches('%-3"?$', objs[1].etag) -- three parts: two early, the last at the seal
    assert.same({}, client:list_uploads(""))
  end)

  it("wait for the minibatch's end before an interval seals what its parts went past", function()
    local sink = open(bucket, { clock = "manual", write_interval_ms = 1000 })
    local csv = write(sink, 1, 100, 2)
    assert(sink:time_end(2)) -- a small complete minibatch...
    csv = csv .. write(sink, 101, 7000, 4) -- ...then a large one still open, going up early
    uploads_once(client, 1)
    sink:set_clock(10000)
    -- the interval has passed: the sink's thread must not seal the first minibatch alone,
    -- since the parts already sent hold rows of the open one
    system.sleep(1)
    assert.same({}, client:list("out/"))
    assert(sink:time_end(4))
    assert(sink:close())
    local objs = objects_and_etags(client)
    assert.equal(1, #objs)
    assert.equal(HEADER .. csv, objs[1].body)
    assert.same({}, client:list_uploads(""))
  end)

  it("upload anew, under the same key, what a forced flush seals shorter than the parts sent", function()
    local sink = open(bucket)
    local first = write(sink, 1, 100, 2)
    assert(sink:time_end(2))
    local second = write(sink, 101, 7000, 4)
    local live = uploads_once(client, 1)
    assert.is_true(sink:flush(true)) -- seals the first minibatch only
    assert(sink:time_end(4))
    assert(sink:close())
    local objs = objects_and_etags(client)
    assert.equal(2, #objs)
    assert.equal(live[1].key, objs[1].key)
    assert.equal(HEADER .. first, objs[1].body)
    assert.equal(HEADER .. second, objs[2].body)
    assert.same({}, client:list_uploads(""))
  end)

  it("abort the upload when the sink is discarded", function()
    local sink = open(bucket)
    write(sink, 1, 7000, 2)
    uploads_once(client, 1)
    sink:discard()
    assert.same({}, client:list("out/"))
    assert.same({}, client:list_uploads(""))
  end)

  it("leave a key taken by someone else to the seal, which renames the object", function()
    local sink = open(bucket, { clock = "manual" })
    sink:set_clock(1764030000000)
    assert(client:put("out/20251125T002000.000Z-0000000000.csv", "someone else's", "text/plain", true))
    local csv = write(sink, 1, 7000, 2)
    system.sleep(1) -- the sink's thread finds the key taken
    assert(sink:time_end(2))
    assert(sink:close())
    assert.equal("someone else's", client:get("out/20251125T002000.000Z-0000000000.csv"))
    assert.equal(HEADER .. csv, client:get("out/20251125T002000.000Z-0000000001.csv"))
    assert.same({}, client:list_uploads(""))
  end)

  it("take the next key, whole, when someone else's object appears under theirs meanwhile", function()
    local sink = open(bucket, { max_retry_ms = 3000 })
    local csv = write(sink, 1, 7000, 2)
    local live = uploads_once(client, 1)
    assert.truthy(h.eventually(20, function() return sink:stats().early_bytes == 5 * MiB end))
    -- the Complete (If-None-Match) is refused: the upload is aborted and the object, whose
    -- first part went early and was never hashed, goes up whole under the next key
    assert(client:put(live[1].key, "someone else's", "text/plain", true))
    assert(sink:time_end(2))
    assert(sink:close())
    assert.equal("someone else's", client:get(live[1].key))
    local objs = h.objects(client, "out/")
    assert.equal(2, #objs)
    assert.equal(HEADER .. csv, objs[2].body)
    assert.same({}, client:list_uploads(""))
  end)

  it("are not used where a name may depend on the rows, or bytes may change", function()
    for _, overrides in ipairs {
      { naming = "time_range" }, { compression = "gzip" }, { background_uploads = false },
    } do
      local sink = open(bucket, overrides)
      write(sink, 1, 7000, 2)
      system.sleep(1)
      assert.same({}, client:list_uploads(""))
      sink:discard()
    end
  end)
end)
