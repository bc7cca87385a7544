-- End to end against a real MinIO: write rows, list the prefix, download every object,
-- parse it and compare with what was written; overwrites and bad settings.
local s3sink = require "s3sink"
local cjson = require "cjson"
local h = require "helpers"

local COLUMNS = {
  { name = "id", type = "int" },
  { name = "name", type = "str" },
  { name = "score", type = "float" },
  { name = "ok", type = "bool" },
  { name = "note", type = "str", optional = true },
}

-- Rows with quoting, separators, newlines, unicode and nulls.
local function make_rows(n)
  local rows = {}
  for i = 1, n do
    rows[i] = {
      values = { i * 1000003, ('name %d, "q"\n\tnext é€😀'):format(i), i / 7, i % 2 == 0,
        (i % 3 == 0) and s3sink.null or ("n" .. i) },
      time = 1700000000000 + (i // 10) * 2,
      diff = (i % 11 == 0) and -1 or 1,
    }
  end
  return rows
end

-- Writes rows in minibatches of equal time, flushing with a manual clock so that several
-- objects are produced; returns the sink's last key.
local function write_all(sink, rows)
  local now = 0
  for i, r in ipairs(rows) do
    assert(sink:write(r.values, r.time, r.diff))
    if not rows[i + 1] or rows[i + 1].time ~= r.time then
      assert(sink:time_end(r.time))
      now = now + 400
      sink:set_clock(now)
      local ok, err = sink:flush()
      assert(ok ~= nil, err)
    end
  end
  assert(sink:close())
end

local function open(bucket, format)
  return assert(s3sink.sink(h.config(bucket, {
    format = format, columns = COLUMNS, clock = "manual", no_timer = true, write_interval_ms = 1000,
  })))
end

describe("objects in MinIO", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("csv: every object parses alone and together they hold exactly the rows", function()
    local rows = make_rows(60)
    write_all(open(bucket, "csv"), rows)
    local objs = h.objects(client, "out/")
    assert.is_true(#objs > 1)
    local got = {}
    for _, o in ipairs(objs) do
      assert.matches("%.csv$", o.key)
      local parsed = h.parse_csv(o.body)
      assert.same({ "id", "name", "score", "ok", "note", "time", "diff" }, parsed[1])
      for i = 2, #parsed do got[#got + 1] = parsed[i] end
    end
    assert.equal(#rows, #got)
    for i, r in ipairs(rows) do
      local v = r.values
      assert.same({ tostring(v[1]), v[2], nil, v[4] and "True" or "False",
        v[5] == s3sink.null and "None" or v[5], tostring(r.time), tostring(r.diff) },
        { got[i][1], got[i][2], nil, got[i][4], got[i][5], got[i][6], got[i][7] })
      assert.equal(v[3], tonumber(got[i][3])) -- shortest round-trip text parses back exactly
    end
  end)

  it("json: every line parses and holds the row, diff and time", function()
    local rows = make_rows(45)
    write_all(open(bucket, "json"), rows)
    local objs = h.objects(client, "out/")
    assert.is_true(#objs > 1)
    local got = {}
    for _, o in ipairs(objs) do
      assert.matches("%.json$", o.key)
      for line in o.body:gmatch("([^\n]*)\n") do got[#got + 1] = cjson.decode(line) end
    end
    assert.equal(#rows, #got)
    for i, r in ipairs(rows) do
      local v, g = r.values, got[i]
      assert.equal(v[1], math.tointeger(g.id))
      assert.equal(v[2], g.name)
      assert.equal(v[3], g.score)
      assert.equal(v[4], g.ok)
      if v[5] == s3sink.null then assert.equal(cjson.null, g.note) else assert.equal(v[5], g.note) end
      assert.equal(r.time, math.tointeger(g.time))
      assert.equal(r.diff, math.tointeger(g.diff))
    end
  end)

  it("a user format given by path: objects hold exactly the formatter's bytes", function()
    local tsv = h.repo .. "/examples/formats/tsv.lua"
    local rows = make_rows(30)
    write_all(open(bucket, tsv), rows)
    local f = assert(s3sink.formatter { format = tsv, columns = COLUMNS })
    local expected = {}
    for _, r in ipairs(rows) do expected[#expected + 1] = f:row(r.values, r.time, r.diff) end
    local got = {}
    local header = f:header()
    for _, o in ipairs(h.objects(client, "out/")) do
      assert.equal(header, o.body:sub(1, #header))
      got[#got + 1] = o.body:sub(#header + 1)
    end
    assert.equal(table.concat(expected), table.concat(got))
  end)

  it("never overwrites an existing key", function()
    local key = "out/taken.csv"
    assert(client:put(key, "original", "text/plain", true))
    local ok, _, code = client:put(key, "replacement", "text/plain", true)
    assert.is_nil(ok)
    assert.equal("PreconditionFailed", code)
    assert.equal("original", client:get(key))
  end)

  it("lists more than one page of keys", function()
    for i = 1, 1005 do assert(client:put(("many/%05d"):format(i), "x", "text/plain", true)) end
    local list = assert(client:list("many/"))
    assert.equal(1005, #list)
    assert.equal("many/01005", list[1005].key)
  end)
end)

describe("bad settings fail at creation with a clear error", function()
  it("wrong secret key", function()
    local bucket = h.new_bucket()
    local sink, err, code = s3sink.sink(h.config(bucket, { secret_key = "wrong-secret" }))
    assert.is_nil(sink)
    assert.matches("credentials", err)
    assert.is_truthy(code == "SignatureDoesNotMatch" or code == "InvalidAccessKeyId" or code == "AccessDenied", code)
    assert.is_nil(err:find("wrong-secret", 1, true)) -- secrets never appear in messages
  end)

  it("unknown access key", function()
    local bucket = h.new_bucket()
    local _, err = s3sink.sink(h.config(bucket, { access_key = "nobody" }))
    assert.matches("credentials", err)
  end)

  it("missing bucket", function()
    local sink, err, code = s3sink.sink(h.config("no-such-bucket-here"))
    assert.is_nil(sink)
    assert.equal("NoSuchBucket", code)
    assert.matches("no%-such%-bucket%-here", err)
  end)

  it("missing bucket with create_bucket creates it", function()
    local bucket = h.fresh_bucket()
    local sink = assert(s3sink.sink(h.config(bucket, { create_bucket = true, no_timer = true })))
    assert(sink:write({ 1, "a" }, 2, 1))
    assert(sink:close())
    assert.equal(1, #h.client(bucket):list("out/"))
  end)

  it("unreachable endpoint", function()
    local sink, err = s3sink.sink(h.config("b", { endpoint = "http://127.0.0.1:1", connect_timeout_ms = 2000 }))
    assert.is_nil(sink)
    assert.matches("127%.0%.0%.1:1", err)
  end)

  it("invalid configuration", function()
    local bucket = h.new_bucket()
    -- option values are checked as they are read: misuse raises, naming the option
    local raised = {
      { { write_interval_ms = -5 }, "write_interval_ms is %-5: it must be 1 or more" },
      { { max_retry_ms = 0 }, "max_retry_ms is 0: it must be 1 or more, or %-1 for no limit" },
      { { prefix = "/abs" }, "starts with '/'" },
      { { bucket = "" }, "no bucket given" },
      { { writer_id = "has space" }, "writer_id 'has space' is not valid" },
      { { format = "parquet" }, "unknown format 'parquet': use one of 'csv', 'json'" },
      { { write_intervall_ms = 1 }, "unknown option 'write_intervall_ms': did you mean 'write_interval_ms'%?" },
      { { no_such_option = 1 }, "sink: unknown option 'no_such_option': the options are endpoint, " },
      { { no_timer = 1 }, "option 'no_timer' must be a boolean, not a number" },
      { { write_interval_ms = 1.5 }, "option 'write_interval_ms' must be an integer, not a float" },
    }
    for _, c in ipairs(raised) do
      local ok, err = pcall(s3sink.sink, h.config(bucket, c[1]))
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
    -- what only the whole configuration shows is a failure of the call
    local sink, err = s3sink.sink(h.config(bucket, { secret_key = "" }))
    assert.is_nil(sink)
    assert.matches("only one of access_key and secret_key", err)
  end)
end)
