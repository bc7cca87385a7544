-- Object naming: the bundled policy's format, order and uniqueness, across restarts.
local s3sink = require "s3sink"
local h = require "helpers"

local KEY = "^out/%d%d%d%d%d%d%d%dT%d%d%d%d%d%d%.%d%d%dZ%-%d%d%d%d%d%d%d%d%d%d%.csv$"

local function open(bucket, overrides)
  local cfg = h.config(bucket, overrides)
  cfg.clock, cfg.no_timer = "manual", true
  return assert(s3sink.sink(cfg))
end

local upload = h.upload_at

describe("default naming", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("gives keys of a fixed format that increase with each object", function()
    local sink = open(bucket)
    local keys = {}
    for i = 1, 5 do keys[i] = upload(sink, 1764030000000 + i * 1000, i) end
    -- two flushes in the same millisecond still get increasing keys
    keys[6] = upload(sink, 1764030005000, 6)
    assert(sink:close())
    for i, k in ipairs(keys) do
      assert.matches(KEY, k)
      if i > 1 then assert.is_true(k > keys[i - 1]) end
    end
    assert.equal("out/20251125T002001.000Z-0000000000.csv", keys[1])
    local listed = {}
    for _, o in ipairs(client:list("out/")) do listed[#listed + 1] = o.key end
    assert.same(keys, listed)
  end)

  it("continues after a restart without reusing or preceding a key, even if the clock went back", function()
    local first = open(bucket)
    local a = upload(first, 1764030000000, 1)
    local b = upload(first, 1764030001000, 2)
    assert(first:close())
    local second = open(bucket) -- a new writer on the same prefix, with a clock an hour behind
    local c = upload(second, 1764026400000, 3)
    assert(second:close())
    assert.is_true(a < b and b < c)
    assert.equal("out/20251125T002001.000Z-0000000002.csv", c)
    assert.equal(3, #client:list("out/"))
  end)

  it("puts the writer id in the key", function()
    local sink = open(bucket, { writer_id = "w-1" })
    assert.matches("%-0000000000%-w%-1%.csv$", upload(sink, 1764030000000, 1))
    assert(sink:close())
  end)

  it("uses the format's extension", function()
    local sink = open(bucket, { format = "json" })
    assert.matches("%.json$", upload(sink, 1764030000000, 1))
    assert(sink:close())
  end)
end)

describe("naming scripts", function()
  local bucket
  before_each(function() bucket = h.new_bucket() end)

  it("accepts a user policy by path and gives it the context", function()
    local path = h.write_file(h.tmpname(".lua"), [[
      return { name = function(ctx)
        return string.format("%sseq-%04d-rows-%d-t%d-%d.%s", ctx.prefix, ctx.sequence, ctx.rows,
          ctx.first_time, ctx.last_time, ctx.extension)
      end }
    ]])
    local sink = open(bucket, { naming = path })
    assert(sink:write({ 1, "a" }, 10, 1))
    assert(sink:write({ 2, "b" }, 10, 1))
    assert(sink:time_end(10))
    assert(sink:write({ 3, "c" }, 12, 1))
    assert(sink:time_end(12))
    assert.is_true(sink:flush(true))
    assert.equal("out/seq-0000-rows-3-t10-12.csv", sink:last_key())
    assert(sink:close())
    os.remove(path)
  end)

  it("rejects a key that does not sort after the previous one, keeping the rows", function()
    local path = h.write_file(h.tmpname(".lua"), [[
      return { name = function(ctx) return ctx.prefix .. "same.csv" end }
    ]])
    local sink = open(bucket, { naming = path })
    upload(sink, 1000, 1)
    assert(sink:write({ 2, "b" }, 4, 1))
    assert(sink:time_end(4))
    local ok, err = sink:flush(true)
    assert.is_nil(ok)
    assert.matches("does not sort after the previous key 'out/same.csv'", err)
    assert.equal(1, sink:stats().buffered_rows)
    sink:discard()
    os.remove(path)
  end)

  it("rejects a key outside the prefix", function()
    local path = h.write_file(h.tmpname(".lua"), [[
      return { name = function(ctx) return "elsewhere/x.csv" end }
    ]])
    local sink = open(bucket, { naming = path })
    assert(sink:write({ 1, "a" }, 2, 1))
    assert(sink:time_end(2))
    local ok, err = sink:flush(true)
    assert.is_nil(ok)
    assert.matches("not under the prefix 'out/'", err)
    sink:discard()
    os.remove(path)
  end)

  it("names an unknown bundled policy and lists the bundled ones", function()
    local ok, err = pcall(s3sink.sink, h.config(bucket, { naming = "nope" }))
    assert.is_false(ok)
    assert.matches("unknown naming 'nope': use one of 'default'", err)
  end)
end)
