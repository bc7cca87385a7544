-- Partitioned keys (docs/partitions.md): key templates, routing by event time and by
-- column values, their budgets, the spool, and naming scripts that get the partition,
-- against a real MinIO.
local s3sink = require "s3sink"
local lfs = require "lfs"
local h = require "helpers"

local NS = 1000000              -- nanoseconds per millisecond
local HOUR = 3600 * 1000         -- milliseconds
local T0 = 1764030000000         -- 2025-11-25T00:20:00.000Z

local COLUMNS = {
  { name = "id", type = "int" },
  { name = "country", type = "str", optional = true },
  { name = "ts", type = "datetime_utc", optional = true },
}

local function config(bucket, overrides)
  local cfg = h.config(bucket, { columns = COLUMNS })
  cfg.clock, cfg.no_timer = "manual", true
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  return cfg
end

local function open(bucket, overrides)
  return assert(s3sink.sink(config(bucket, overrides)))
end

-- Writes rows {id, country, ts_ms} (ts_ms nil: null), ends the minibatch at `time` and
-- uploads everything at clock `now`.
local function upload(sink, rows, time, now)
  for _, r in ipairs(rows) do
    assert(sink:write({ r[1], r[2] or s3sink.null, r[3] and r[3] * NS or s3sink.null }, time, 1))
  end
  assert(sink:time_end(time))
  sink:set_clock(now)
  assert(sink:flush(true))
end

-- {key = {ids...}} of every object under prefix, and the keys in listing order.
local function ids_by_key(client, prefix)
  local out, keys = {}, {}
  for _, o in ipairs(h.objects(client, prefix or "out/")) do
    local rows = h.parse_csv(o.body)
    assert.same("id", rows[1][1]) -- self-contained: each starts with the header
    local ids = {}
    for i = 2, #rows do ids[#ids + 1] = tonumber(rows[i][1]) end
    out[o.key] = ids
    keys[#keys + 1] = o.key
  end
  return out, keys
end

-- JSON objects: {key -> ids}, keys in order
local function ids_by_key_json(client)
  local out, keys = {}, {}
  for _, o in ipairs(h.objects(client, "out/")) do
    local ids = {}
    for id in o.body:gmatch('"id":(%d+)') do ids[#ids + 1] = tonumber(id) end
    out[o.key] = ids
    keys[#keys + 1] = o.key
  end
  return out, keys
end

-- The message of a sink that cannot be made: raised (a rule of an option) or returned.
local function open_error(bucket, overrides)
  local ok, sink, err = pcall(s3sink.sink, config(bucket, overrides))
  if not ok then return sink end
  assert.is_nil(sink, "the sink was made")
  return err
end

-- The folder of a key (everything before its last '/').
local function folder(key) return key:match("^(.*)/[^/]*$") end

local function tmpdir() return h.tmpname("-spool") end

local function rmtree(dir)
  if not lfs.attributes(dir) then return end
  for f in lfs.dir(dir) do
    if f ~= "." and f ~= ".." then
      local p = dir .. "/" .. f
      if lfs.attributes(p, "mode") == "directory" then rmtree(p) else os.remove(p) end
    end
  end
  lfs.rmdir(dir)
end

describe("key_template", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  local HOURLY = "{prefix}dt={date}/hour={hour}/{stamp}-{seq}.{ext}"

  it("lays keys out as the template says, from the flush time", function()
    local sink = open(bucket, { key_template = HOURLY })
    upload(sink, { { 1 }, { 2 } }, 2, T0)
    upload(sink, { { 3 } }, 4, T0 + 1000)
    upload(sink, { { 4 } }, 6, T0 + HOUR)
    local last = sink:last_key()
    assert(sink:close())
    local ids, keys = ids_by_key(client)
    assert.same({
      "out/dt=2025-11-25/hour=00/20251125T002000.000Z-0000000000.csv",
      "out/dt=2025-11-25/hour=00/20251125T002001.000Z-0000000001.csv",
      "out/dt=2025-11-25/hour=01/20251125T012000.000Z-0000000002.csv",
    }, keys)
    assert.same({ 1, 2 }, ids[keys[1]])
    assert.same({ 4 }, ids[keys[3]])
    assert.equal(keys[3], last)
  end)

  it("takes every placeholder", function()
    local sink = open(bucket, {
      key_template = "{prefix}{year}/{month}/{day}/{hour}{minute}/x-{stamp}_{seq}-{writer_id}.{ext}.part",
      writer_id = "w1", format = "json" })
    upload(sink, { { 1 } }, 2, T0 + 59 * 60 * 1000 + 7)
    assert(sink:close())
    assert.same({ "out/2025/11/25/0119/x-20251125T011900.007Z_0000000000-w1.json.part" },
      (select(2, ids_by_key_json(client))))
  end)

  it("keeps keys increasing when the clock goes back: the flush time never does in a run", function()
    local sink = open(bucket, { key_template = HOURLY })
    upload(sink, { { 1 } }, 2, T0 + HOUR)
    upload(sink, { { 2 } }, 4, T0) -- an hour back
    assert(sink:close())
    local _, keys = ids_by_key(client)
    assert.same({
      "out/dt=2025-11-25/hour=01/20251125T012000.000Z-0000000000.csv",
      "out/dt=2025-11-25/hour=01/20251125T012000.000Z-0000000001.csv",
    }, keys)
  end)

  it("gives a restarted writer later keys in the same folder", function()
    local first = open(bucket, { key_template = HOURLY })
    upload(first, { { 1 } }, 2, T0)
    upload(first, { { 2 } }, 4, T0 + 1)
    assert(first:close())
    local second = open(bucket, { key_template = HOURLY })
    upload(second, { { 3 } }, 6, T0 + 2)
    assert(second:close())
    local ids, keys = ids_by_key(client)
    assert.equal(3, #keys)
    assert.same({ 3 }, ids[keys[3]]) -- the last in the folder's listing
    assert.equal("out/dt=2025-11-25/hour=00/20251125T002000.002Z-0000000000.csv", keys[3])
  end)

  it("refuses bad templates when the sink is made, naming the placeholder and the fix", function()
    local cases = {
      { "{prefix}{dte}/{stamp}-{seq}.{ext}", "unknown placeholder {dte} (did you mean {date}?)" },
      { "{prefix}{country}/{stamp}-{seq}.{ext}", "add the column to partition_by" },
      { "out/{stamp}-{seq}.{ext}", "must start with {prefix}" },
      { "{prefix}{date}/{seq}.{ext}", "must hold {stamp} then {seq}" },
      { "{prefix}{seq}-{stamp}.{ext}", "must hold {stamp} then {seq}" },
      { "{prefix}{stamp}/{seq}.{ext}", "in the object's name, after the last '/'" },
      { "{prefix}{stamp}-{date}-{seq}.{ext}", "only text may stand between {stamp} and {seq}" },
      { "{prefix}{stamp}-{seq}-{date}.{ext}", "only text, {writer_id} and {ext} may follow {seq}" },
      { "{prefix}{stamp}-{seq}-{writer_id}.{ext}", "uses {writer_id} but no writer_id is set" },
      { "{prefix}{partition}/{stamp}-{seq}.{ext}", "partition_by is not set" },
      { "{prefix}{date/{stamp}-{seq}", "is not closed" },
      { "{prefix}date}/{stamp}-{seq}", "closes no placeholder" },
    }
    for _, c in ipairs(cases) do
      local msg = open_error(bucket, { key_template = c[1] })
      assert.truthy(msg:find(c[2], 1, true), c[1] .. " -> " .. msg)
    end
    assert.matches("writer_id is set but key_template .* has no {writer_id}",
      open_error(bucket, { key_template = HOURLY, writer_id = "w" }))
    assert(assert(s3sink.sink(config(bucket, { key_template = HOURLY, naming = "default" }))):close())
    local path = h.write_file(h.tmpname(".lua"), "return { name = function(ctx) return ctx.prefix .. 'x' end }")
    assert.matches("key_template and naming .* both name objects",
      open_error(bucket, { key_template = HOURLY, naming = path }))
  end)
end)

describe("time_column", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  local HOURLY = "{prefix}dt={date}/hour={hour}/{stamp}-{seq}.{ext}"

  it("routes rows by event time: one object per hour per flush, null times in Hive's null folder", function()
    local sink = open(bucket, { key_template = HOURLY, time_column = "ts" })
    local day = 1764028800000 -- 2025-11-25T00:00:00Z
    upload(sink, { { 1, nil, day + 5 }, { 2, nil, day + 2 * HOUR }, { 3, nil, day + HOUR - 1 },
                   { 4 }, { 5, nil, day - 1 } }, 2, T0)
    assert(sink:close())
    local folders = {}
    for key, ids in pairs(ids_by_key(client)) do
      assert.matches("/20251125T002000%.000Z%-000000000[0-3]%.csv$", key)
      folders[folder(key)] = ids
    end
    assert.same({
      ["out/dt=2025-11-24/hour=23"] = { 5 },
      ["out/dt=2025-11-25/hour=00"] = { 1, 3 },
      ["out/dt=2025-11-25/hour=02"] = { 2 },
      ["out/dt=__HIVE_DEFAULT_PARTITION__/hour=__HIVE_DEFAULT_PARTITION__"] = { 4 },
    }, folders)
  end)

  it("gives a late row of an earlier hour a later key in that hour's folder", function()
    local sink = open(bucket, { key_template = HOURLY, time_column = "ts" })
    local day = 1764028800000
    upload(sink, { { 1, nil, day + 10 } }, 2, T0)
    upload(sink, { { 2, nil, day + 2 * HOUR } }, 4, T0 + 1000)
    upload(sink, { { 3, nil, day + 20 } }, 6, T0 + 2000) -- late
    assert(sink:close())
    local ids, keys = ids_by_key(client, "out/dt=2025-11-25/hour=00/")
    assert.equal(2, #keys)
    assert.same({ 1 }, ids[keys[1]])
    assert.same({ 3 }, ids[keys[2]])
  end)

  it("reads a naive datetime as UTC, and routes by the finest field of the template", function()
    local cols = { { name = "id", type = "int" }, { name = "country", type = "str", optional = true },
                   { name = "ts", type = "datetime_naive" } }
    local sink = open(bucket, { key_template = "{prefix}{year}-{month}/{stamp}-{seq}.{ext}",
                                time_column = "ts", columns = cols })
    upload(sink, { { 1, nil, T0 }, { 2, nil, T0 + 40 * 24 * HOUR }, { 3, nil, T0 + 24 * HOUR } }, 2, T0)
    assert(sink:close())
    local folders = {}
    for key, ids in pairs(ids_by_key(client)) do folders[folder(key)] = ids end
    assert.same({ ["out/2025-11"] = { 1, 3 }, ["out/2026-01"] = { 2 } }, folders)
  end)

  it("refuses a time_column it cannot read, naming it", function()
    local _, err = s3sink.sink(config(bucket, { key_template = HOURLY, time_column = "id" }))
    assert.matches("time_column: column 'id' has type int; the event time must be a datetime", err)
    _, err = s3sink.sink(config(bucket, { key_template = HOURLY, time_column = "tz" }))
    assert.matches("time_column: 'tz' is not a column of the table; its columns are 'id', 'country', 'ts'", err)
    _, err = s3sink.sink(config(bucket, { time_column = "ts" }))
    assert.matches("time_column 'ts' gives the event time to key_template's", err)
    _, err = s3sink.sink(config(bucket, { time_column = "ts", partition_by = "country" }))
    assert.matches("set key_template too", err)
    _, err = s3sink.sink(config(bucket, { time_column = "ts",
      key_template = "{prefix}x/{stamp}-{seq}.{ext}" }))
    assert.matches("uses no calendar field", err)
  end)
end)

describe("partition_by", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("routes rows by value: one object per partition per flush, every row once, keys increasing in each", function()
    local sink = open(bucket, { partition_by = "country" })
    local countries = { "FR", "DE", "PL", "IT", "ES" }
    local written, id = {}, 0
    math.randomseed(7)
    for flush = 1, 6 do
      local rows = {}
      for _ = 1, math.random(5, 40) do
        id = id + 1
        local c = countries[math.random(#countries)]
        rows[#rows + 1] = { id, c }
        written[id] = c
      end
      upload(sink, rows, flush * 2, T0 + flush * 1000)
    end
    assert(sink:close())
    local ids, keys = ids_by_key(client)
    local seen, by_folder = {}, {}
    for _, key in ipairs(keys) do
      local c = key:match("^out/country=(%u%u)/%d+T%d+%.%d+Z%-%d+%.csv$")
      assert.truthy(c, key)
      for _, i in ipairs(ids[key]) do
        assert.equal(written[i], c)
        assert.is_nil(seen[i], "row " .. i .. " twice")
        seen[i] = true
      end
      by_folder[c] = by_folder[c] or {}
      table.insert(by_folder[c], key)
    end
    for i = 1, id do assert.truthy(seen[i], "row " .. i .. " lost") end
    -- reading one partition's folder in listing order gives its rows in the order written
    for c, folder_keys in pairs(by_folder) do
      local last = 0
      local fids, fkeys = ids_by_key(client, "out/country=" .. c .. "/")
      assert.same(folder_keys, fkeys)
      for _, key in ipairs(fkeys) do
        for _, i in ipairs(fids[key]) do
          assert.is_true(i > last)
          last = i
        end
      end
    end
  end)

  it("writes values as path-safe text: %XX, Hive's null, no leading dot", function()
    local sink = open(bucket, { partition_by = { "country" } })
    upload(sink, { { 1, "a/b c" }, { 2, "" }, { 3 }, { 4, "é=x" }, { 5, ".hid" }, { 6, "A-z_0.9~" } }, 2, T0)
    assert(sink:close())
    local folders = {}
    for key, ids in pairs(ids_by_key(client)) do folders[folder(key)] = ids end
    assert.same({
      ["out/country=a%2Fb%20c"] = { 1 },
      ["out/country=__HIVE_DEFAULT_PARTITION__"] = { 2, 3 },
      ["out/country=%C3%A9%3Dx"] = { 4 },
      ["out/country=%2Ehid"] = { 5 },
      ["out/country=A-z_0.9~"] = { 6 },
    }, folders)
  end)

  it("partitions by several columns of any scalar type, placed by name or all at once", function()
    local sink = open(bucket, { partition_by = "country,id,ts",
      key_template = "{prefix}c={country}/{partition}/{stamp}-{seq}.{ext}" })
    upload(sink, { { 1, "FR", T0 }, { 1, "FR", T0 }, { 2, "FR" } }, 2, T0)
    assert(sink:close())
    local folders = {}
    for key, ids in pairs(ids_by_key(client)) do folders[folder(key)] = ids end
    assert.same({
      ["out/c=FR/country=FR/id=1/ts=2025-11-25T00%3A20%3A00.000000000%2B0000"] = { 1, 1 },
      ["out/c=FR/country=FR/id=2/ts=__HIVE_DEFAULT_PARTITION__"] = { 2 },
    }, folders)
  end)

  it("puts the writer id in the default layout's keys", function()
    local sink = open(bucket, { partition_by = "country", writer_id = "w-1" })
    upload(sink, { { 1, "FR" } }, 2, T0)
    assert.equal("out/country=FR/20251125T002000.000Z-0000000000-w-1.csv", sink:last_key())
    assert(sink:close())
  end)

  it("refuses columns it cannot partition by, naming them and the table's columns", function()
    local _, err = s3sink.sink(config(bucket, { partition_by = "contry" }))
    assert.matches("partition_by: 'contry' is not a column of the table; its columns are 'id', 'country', 'ts'", err)
    _, err = s3sink.sink(config(bucket, { partition_by = "country,country" }))
    assert.matches("names column 'country' twice", err)
    _, err = s3sink.sink(config(bucket, { partition_by = "j",
      columns = { { name = "j", type = "json" } } }))
    assert.matches("column 'j' has type json, whose values cannot name a partition", err)
    assert.has_error(function() s3sink.sink(config(bucket, { partition_by = "id,,country" })) end,
      "sink: partition_by 'id,,country' has an empty column name: give the names separated by single commas (\"country,city\"), or a list of them")
    assert.has_error(function() s3sink.sink(config(bucket, { partition_by = { "id", 3 } })) end,
      "sink: option 'partition_by' must be a string or a list of strings")
  end)

  it("stops uploads, rows kept, on a key longer than S3 takes", function()
    local sink = open(bucket, { partition_by = "country" })
    upload(sink, { { 2, "FR" } }, 2, T0)
    assert(sink:write({ 3, string.rep("x", 1100) }, 4, 1))
    assert(sink:time_end(4))
    local ok, err = sink:flush(true)
    assert.is_nil(ok)
    assert.matches("key_template gives a key of %d+ bytes, over S3's 1024", err)
    assert.matches("Every row is kept in memory", err)
    sink:discard()
  end)

  it("rolls objects at max_object_rows per partition", function()
    local sink = open(bucket, { partition_by = "country", max_object_rows = 3 })
    for i = 1, 4 do assert(sink:write({ i, "FR" }, 2, 1)) end
    for i = 5, 6 do assert(sink:write({ i, "DE" }, 2, 1)) end
    assert(sink:time_end(2))
    -- FR reached 3 rows: sealed at the minibatch end; DE waits for the interval
    assert.equal(1, sink:stats().pending_objects)
    assert(sink:close())
    local ids = ids_by_key(client)
    local n = 0
    for _ in pairs(ids) do n = n + 1 end
    assert.equal(2, n)
  end)

  it("keeps at most max_open_partitions open, sealing early, losing nothing", function()
    local sink = open(bucket, { partition_by = "country", max_open_partitions = 2 })
    local countries = { "A", "B", "C", "D", "E" }
    local id = 0
    for batch = 1, 3 do
      for _, c in ipairs(countries) do
        id = id + 1
        assert(sink:write({ id, c }, batch, 1))
      end
      assert(sink:time_end(batch))
    end
    sink:set_clock(T0)
    assert(sink:close())
    local seen = {}
    for key, ids in pairs(ids_by_key(client)) do
      local c = key:match("country=(%u)/")
      for _, i in ipairs(ids) do
        assert.equal(countries[(i - 1) % 5 + 1], c)
        assert.is_nil(seen[i])
        seen[i] = true
      end
    end
    for i = 1, id do assert.truthy(seen[i], "row " .. i .. " lost") end
  end)

  it("keeps every partition within max_buffer_bytes, waiting for uploads, losing nothing", function()
    local cfg = config(bucket, { partition_by = "country", max_buffer_bytes = 16 * 1024,
                                 write_interval_ms = 50 })
    cfg.clock, cfg.no_timer = nil, nil
    local sink = assert(s3sink.sink(cfg))
    local n = 3000
    for i = 1, n do
      assert(sink:write({ i, "c" .. (i % 7) }, i // 10, 1))
      if i % 10 == 9 then assert(sink:time_end(i // 10)) end
    end
    assert(sink:close())
    local seen, count = {}, 0
    for key, ids in pairs(ids_by_key(client)) do
      local c = key:match("country=(c%d)/")
      for _, i in ipairs(ids) do
        assert.equal("c" .. (i % 7), c)
        assert.is_nil(seen[i])
        seen[i] = true
        count = count + 1
      end
    end
    assert.equal(n, count)
  end)

  it("keeps a failed upload's rows and key, and retries it on a forced flush", function()
    local sink = open(bucket, { partition_by = "country" })
    assert(client:delete_bucket())
    for i = 1, 3 do assert(sink:write({ i, i == 2 and "DE" or "FR" }, 2, 1)) end
    assert(sink:time_end(2))
    sink:set_clock(T0)
    local ok, err, code = sink:flush()
    assert.is_nil(ok)
    assert.equal("NoSuchBucket", code)
    local first = err:match("upload of '([^']+)'")
    assert.matches("^out/country=%u%u/", first)
    assert.equal(3, sink:stats().buffered_rows)
    assert(client:create_bucket())
    assert.is_true(sink:flush(true))
    assert(sink:close())
    local ids = ids_by_key(client)
    assert.truthy(ids[first], "the failed object keeps its key")
    local folders = {}
    for key, list in pairs(ids) do folders[folder(key)] = list end
    assert.same({ ["out/country=FR"] = { 1, 3 }, ["out/country=DE"] = { 2 } }, folders)
  end)
end)

describe("partitions and the spool", function()
  local bucket, client, dir
  before_each(function()
    bucket, client = h.new_bucket()
    dir = tmpdir()
  end)
  after_each(function() rmtree(dir) end)

  local TEMPLATE = "{prefix}dt={date}/{partition}/{stamp}-{seq}.{ext}"

  it("uploads every partition's rows after a crash, named or not, each under its partition's key", function()
    local opts = { spool_dir = dir, partition_by = "country", time_column = "ts",
                   key_template = TEMPLATE, max_object_rows = 2 }
    local first = open(bucket, opts)
    local day = 1764028800000
    -- FR reaches max_object_rows: sealed (named) at the minibatch end, not uploaded
    assert(first:write({ 1, "FR", day * NS }, 2, 1))
    assert(first:write({ 2, "FR", day * NS }, 2, 1))
    assert(first:write({ 3, "DE", day * NS }, 2, 1))
    assert(first:write({ 4, "DE", (day + 24 * HOUR) * NS }, 2, 1))
    assert(first:write({ 5, s3sink.null, s3sink.null }, 2, 1))
    assert(first:time_end(2))
    assert(first:write({ 6, "PL", day * NS }, 3, 1)) -- never acknowledged
    assert.equal(1, first:stats().pending_objects)
    first:discard() -- a crash: the spool keeps what was acknowledged
    assert.equal(0, #client:list("out/"))
    local second = open(bucket, opts)
    second:set_clock(T0 + HOUR)
    assert(second:close())
    local ids = ids_by_key(client)
    local folders = {}
    for key, list in pairs(ids) do folders[folder(key)] = list end
    assert.same({
      ["out/dt=2025-11-25/country=FR"] = { 1, 2 },
      ["out/dt=2025-11-25/country=DE"] = { 3 },
      ["out/dt=2025-11-26/country=DE"] = { 4 },
      ["out/dt=__HIVE_DEFAULT_PARTITION__/country=__HIVE_DEFAULT_PARTITION__"] = { 5 },
    }, folders)
  end)

  it("recovers gzip segments of every partition after a crash, packed or not, each row once", function()
    local opts = { spool_dir = dir, partition_by = "country", time_column = "ts",
                   key_template = TEMPLATE, compression = "gzip", max_object_rows = 2 }
    local first = open(bucket, opts)
    local day = 1764028800000
    -- FR reaches max_object_rows: named at the minibatch end; the others stay unnamed
    assert(first:write({ 1, "FR", day * NS }, 2, 1))
    assert(first:write({ 2, "FR", day * NS }, 2, 1))
    assert(first:write({ 3, "DE", day * NS }, 2, 1))
    assert(first:time_end(2))
    assert(first:write({ 4, "DE", (day + 24 * HOUR) * NS }, 3, 1))
    assert(first:write({ 5, s3sink.null, s3sink.null }, 3, 1))
    assert(first:write({ 6, "FR", day * NS }, 3, 1))
    assert(first:time_end(3))
    assert(first:write({ 7, "PL", day * NS }, 4, 1)) -- never acknowledged
    -- the named FR object is compressed before its upload, which fails
    assert(client:delete_bucket())
    assert.is_nil(first:flush(false))
    first:discard() -- the crash
    assert(client:create_bucket())
    -- the journals record both the codec and the partition; one segment is packed
    local packed, partitioned = 0, 0
    for f in lfs.dir(dir) do
      if f:match("journal$") then
        local journal = h.read_file(dir .. "/" .. f)
        local head = journal:match("^[^\n]*")
        assert.matches(" =gzip %d+ =country=", head)
        partitioned = partitioned + 1
        if journal:match("\npacked %d+\n") then packed = packed + 1 end
      end
    end
    assert.equal(1, packed)
    assert.equal(5, partitioned)
    local second = open(bucket, opts)
    second:set_clock(T0 + HOUR)
    assert(second:close())
    local folders, count = {}, 0
    for _, o in ipairs(h.objects(client, "out/")) do
      assert.matches("%.csv%.gz$", o.key)
      local f = h.write_file(h.tmpname(".gz"), o.body)
      local p = assert(io.popen("env -u LD_PRELOAD gzip -dc " .. f))
      local rows = h.parse_csv(p:read("a"))
      assert(p:close())
      os.remove(f)
      assert.same("id", rows[1][1])
      local list = folders[folder(o.key)] or {}
      for i = 2, #rows do
        list[#list + 1] = tonumber(rows[i][1])
        count = count + 1
      end
      table.sort(list)
      folders[folder(o.key)] = list
    end
    assert.equal(6, count)
    assert.same({
      ["out/dt=2025-11-25/country=FR"] = { 1, 2, 6 },
      ["out/dt=2025-11-25/country=DE"] = { 3 },
      ["out/dt=2025-11-26/country=DE"] = { 4 },
      ["out/dt=__HIVE_DEFAULT_PARTITION__/country=__HIVE_DEFAULT_PARTITION__"] = { 5 },
    }, folders)
    local left = 0
    for f in lfs.dir(dir) do left = left + (f:match("^%d+%.") and 1 or 0) end
    assert.equal(0, left)
  end)

  it("refuses unnamed rows spooled by a sink partitioned otherwise, until one like it opens", function()
    local first = open(bucket, { spool_dir = dir, partition_by = "country" })
    assert(first:write({ 1, "FR" }, 2, 1))
    assert(first:time_end(2))
    first:discard()
    local _, err = s3sink.sink(config(bucket, { spool_dir = dir, partition_by = "id" }))
    assert.matches("holds rows not named yet %(segment %d+%): its rows were partitioned as 'country=FR'", err)
    _, err = s3sink.sink(config(bucket, { spool_dir = dir }))
    assert.matches("partitioned as 'country=FR'", err)
    local again = open(bucket, { spool_dir = dir, partition_by = "country" })
    assert(again:close())
    assert.same({ { 1 } }, (function()
      local out = {}
      for _, list in pairs(ids_by_key(client)) do out[#out + 1] = list end
      return out
    end)())
  end)

  it("spools each partition's rows in segments of its own, losing nothing", function()
    local sink = open(bucket, { spool_dir = dir, partition_by = "country",
      columns = { { name = "id", type = "int" }, { name = "country", type = "str" },
                  { name = "pad", type = "str" } } })
    local pad = string.rep("x", 1000)
    for i = 1, 3000 do assert(sink:write({ i, "c" .. (i % 50), pad }, 2, 1)) end
    assert(sink:time_end(2))
    assert.is_true(sink:stats().spool_bytes > 3000 * 1000)
    local segments = 0
    for f in lfs.dir(dir) do segments = segments + (f:match("^%d+%.seg$") and 1 or 0) end
    assert.equal(50, segments)
    sink:set_clock(T0)
    assert(sink:close())
    local count = 0
    for _, ids in pairs(ids_by_key(client)) do count = count + #ids end
    assert.equal(3000, count)
  end)
end)

describe("naming scripts with partitions", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("get the partition's values and path, the rows' event-time range and the partition's last key", function()
    local path = h.write_file(h.tmpname(".lua"), [[
      return { name = function(ctx)
        return string.format("%s%s/%s-%s-%s-%s-%04d.%s", ctx.prefix, ctx.partition_path,
          ctx.partition.country, tostring(ctx.min_event_time_ns), tostring(ctx.max_event_time_ns),
          ctx.last_key and "after" or "first", ctx.sequence, ctx.extension)
      end }
    ]])
    local sink = open(bucket, { naming = path, partition_by = "country", time_column = "ts" })
    upload(sink, { { 1, "FR", 5 }, { 2, "FR", 3 }, { 3, "DE" } }, 2, T0)
    upload(sink, { { 4, "FR", 9 } }, 4, T0 + 1)
    assert(sink:close())
    local ids = ids_by_key(client)
    assert.same({
      ["out/country=FR/FR-" .. 3 * NS .. "-" .. 5 * NS .. "-first-0000.csv"] = { 1, 2 },
      ["out/country=DE/DE-nil-nil-first-0001.csv"] = { 3 },
      ["out/country=FR/FR-" .. 9 * NS .. "-" .. 9 * NS .. "-after-0002.csv"] = { 4 },
    }, ids)
  end)

  it("stop uploads when a key does not sort after its partition's last one", function()
    local path = h.write_file(h.tmpname(".lua"), [[
      return { name = function(ctx) return ctx.prefix .. ctx.partition_path .. "/same.csv" end }
    ]])
    local sink = open(bucket, { naming = path, partition_by = "country" })
    upload(sink, { { 1, "FR" } }, 2, T0)
    assert(sink:write({ 2, "FR" }, 4, 1))
    assert(sink:time_end(4))
    local ok, err = sink:flush(true)
    assert.is_nil(ok)
    assert.matches("does not sort after the previous key 'out/country=FR/same.csv'", err)
    sink:discard()
  end)

  it("bundled time_range: the partition's folder, the flush stamp and sequence, the rows' time range", function()
    local sink = open(bucket, { naming = "time_range", partition_by = "country", time_column = "ts" })
    upload(sink, { { 1, "FR", T0 - HOUR }, { 2, "FR", T0 + 5 } }, 2, T0)
    upload(sink, { { 3, "FR" } }, 4, T0 + 1000)
    assert(sink:close())
    local _, keys = ids_by_key(client)
    assert.same({
      "out/country=FR/20251125T002000.000Z-0000000000_20251124T232000.000Z_20251125T002000.005Z.csv",
      "out/country=FR/20251125T002001.000Z-0000000001_t4_t4.csv",
    }, keys)
  end)

  it("bundled time_range without partitions continues its sequence after a restart", function()
    local first = open(bucket, { naming = "time_range" })
    upload(first, { { 1 } }, 2, T0)
    assert(first:close())
    local second = open(bucket, { naming = "time_range" })
    upload(second, { { 2 } }, 4, T0)
    assert(second:close())
    local _, keys = ids_by_key(client)
    assert.same({
      "out/20251125T002000.000Z-0000000000_t2_t2.csv",
      "out/20251125T002000.000Z-0000000001_t4_t4.csv",
    }, keys)
  end)
end)
