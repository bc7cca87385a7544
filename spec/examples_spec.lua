-- The example scripts of docs/scripts.md (examples/formats/changes.lua and
-- examples/naming/hive.lua) do what the guide says, against a real MinIO; and every script
-- the guide shows is the file it names, word for word, so the guide cannot drift from them.
local s3sink = require "s3sink"
local cjson = require "cjson"
local h = require "helpers"

local CHANGES = h.repo .. "/examples/formats/changes.lua"
local HIVE = h.repo .. "/examples/naming/hive.lua"
local null = s3sink.null

describe("examples/formats/changes.lua", function()
  local columns = {
    { name = "id", type = "int" },
    { name = "name", type = "str", optional = true },
    { name = "score", type = "float" },
    { name = "tags", type = "json" },
    { name = "extra", type = "any" },
  }

  it("writes one JSON line per change: op, time, row", function()
    local f = assert(s3sink.formatter { format = CHANGES, columns = columns })
    assert.equal("jsonl", f.extension)
    assert.equal("application/x-ndjson", f.content_type)
    assert.equal("", f:header())
    assert.equal('{"op":"insert","time":1700000000000,"row":{"id":1,"name":"alice \\"A\\"",'
      .. '"score":0.1,"tags":["x"],"extra":7}}\n',
      f:row({ 1, 'alice "A"', 0.1, '["x"]', 7 }, 1700000000000, 1))
    assert.equal('{"op":"delete","time":1700000000002,"row":{"id":2,"name":null,'
      .. '"score":1e+100,"tags":{},"extra":"seven"}}\n',
      f:row({ 2, null, 1e100, "{}", "seven" }, 1700000000002, -1))
  end)

  it("uploads objects whose lines parse back to the changes", function()
    local bucket, client = h.new_bucket()
    local sink = assert(s3sink.sink(h.config(bucket, { format = CHANGES })))
    assert(sink:write({ 1, "alice" }, 10, 1))
    assert(sink:write({ 1, "alice" }, 12, -1))
    assert(sink:write({ 1, "alicia" }, 12, 1))
    assert(sink:time_end(12))
    assert(sink:close())
    local objs = h.objects(client, "out/")
    assert.equal(1, #objs)
    assert.matches("%.jsonl$", objs[1].key)
    local got = {}
    for line in objs[1].body:gmatch("([^\n]*)\n") do got[#got + 1] = cjson.decode(line) end
    assert.same({
      { op = "insert", time = 10, row = { id = 1, name = "alice" } },
      { op = "delete", time = 12, row = { id = 1, name = "alice" } },
      { op = "insert", time = 12, row = { id = 1, name = "alicia" } },
    }, got)
  end)
end)

describe("examples/naming/hive.lua", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  local function open(overrides)
    local cfg = h.config(bucket, overrides)
    cfg.naming, cfg.clock, cfg.no_timer = HIVE, "manual", true
    return assert(s3sink.sink(cfg))
  end

  local function upload(sink, now, id)
    assert(sink:write({ id, "x" }, now, 1))
    assert(sink:time_end(now))
    sink:set_clock(now)
    assert.is_true(sink:flush(true))
    return sink:last_key()
  end

  it("puts each object in the partition of its upload time, keys increasing", function()
    local sink = open()
    local keys = {
      upload(sink, 1767605412345, 1),                -- 2026-01-05 09:30:12.345 UTC
      upload(sink, 1767605412345, 2),                -- the same millisecond
      upload(sink, 1767609000000, 3),                -- the next hour
      upload(sink, 1767657600000, 4),                -- the next day
    }
    assert(sink:close())
    assert.same({
      "out/dt=2026-01-05/hour=09/20260105T093012.345Z-0000000000.csv",
      "out/dt=2026-01-05/hour=09/20260105T093012.345Z-0000000001.csv",
      "out/dt=2026-01-05/hour=10/20260105T103000.000Z-0000000002.csv",
      "out/dt=2026-01-06/hour=00/20260106T000000.000Z-0000000003.csv",
    }, keys)
    local listed = {}
    for _, o in ipairs(client:list("out/")) do listed[#listed + 1] = o.key end
    assert.same(keys, listed)
  end)

  it("continues after a restart whose clock is behind, ignoring foreign objects", function()
    local first = open({ writer_id = "w1" })
    local a = upload(first, 1767609000000, 1)
    assert(first:close())
    assert(client:put("out/_SUCCESS", "", "text/plain", true))
    assert(client:put("out/zz-manifest.json", "{}", "application/json", true))
    local second = open({ writer_id = "w1" }) -- an hour behind the first
    local b = upload(second, 1767605400000, 2)
    assert(second:close())
    assert.equal("out/dt=2026-01-05/hour=10/20260105T103000.000Z-0000000000-w1.csv", a)
    assert.equal("out/dt=2026-01-05/hour=10/20260105T103000.000Z-0000000001-w1.csv", b)
  end)
end)

describe("docs/scripts.md", function()
  it("shows the example scripts as they are", function()
    local guide = h.read_file(h.repo .. "/docs/scripts.md")
    local shown = 0
    for block in guide:gmatch("```lua\n(.-)```") do
      local file = block:match("^%-%- ([%w_/]+%.lua) %-")
      if file then
        shown = shown + 1
        assert.equal(h.read_file(h.repo .. "/" .. file), block, file)
      end
    end
    assert.is_true(shown >= 3, "the guide shows the example scripts")
  end)

  it("renders what its Lua try-out says", function()
    local guide = h.read_file(h.repo .. "/docs/scripts.md")
    local block = guide:match("```lua\n(local f = assert%(s3sink%.formatter.-)```")
    assert.is_string(block)
    local out = {}
    local env = { s3sink = s3sink, assert = assert,
      io = { write = function(...) for _, s in ipairs { ... } do out[#out + 1] = s end end } }
    assert(load(block, "=docs/scripts.md", "t", env))()
    assert.equal('{"op":"insert","time":10,"row":{"id":1,"name":"alice"}}\n'
      .. '{"op":"delete","time":12,"row":{"id":1,"name":null}}\n', table.concat(out))
  end)
end)
