-- The crash-safe spool, against a real MinIO. A crash is played by sink:discard(), which
-- frees the sink without uploading (as a killed process would leave the folder); the
-- Python fault tests kill real processes.
local s3sink = require "s3sink"
local lfs = require "lfs"
local h = require "helpers"

local function tmpdir()
  local d = h.tmpname("-spool")
  return d
end



local function rows_of(objects)
  local all = {}
  for _, o in ipairs(objects) do
    local rows = h.parse_csv(o.body)
    for i = 2, #rows do all[#all + 1] = rows[i][1] end
  end
  return all
end

describe("spool", function()
  local bucket, client, dir
  before_each(function()
    bucket, client = h.new_bucket()
    dir = tmpdir()
  end)
  after_each(function() h.rmtree(dir) end)

  local function open(overrides)
    local cfg = h.config(bucket, overrides)
    cfg.spool_dir = dir
    if cfg.no_timer == nil then cfg.no_timer = true end
    return assert(s3sink.sink(cfg))
  end

  it("keeps every complete minibatch on disk and uploads it after a crash, exactly once", function()
    local first = open()
    for i = 1, 3 do
      assert(first:write({ i, "r" }, 2 * i, 1))
      assert(first:time_end(2 * i))
    end
    assert(first:write({ 99, "unfinished" }, 8, 1)) -- never acknowledged
    assert.is_true(first:stats().spool_bytes > 0)
    first:discard() -- the crash
    assert.same({}, client:list("out/"))
    local second = open()
    assert.equal(1, second:stats().pending_objects)
    assert(second:close())
    assert.same({ "1", "2", "3" }, rows_of(h.objects(client, "out/")))
    assert.same({}, h.files(dir))
  end)

  -- A run that named a segment, failed to upload it and crashed: returns the segment's
  -- key and body.
  local function leave_named_segment()
    local first = open()
    assert(first:write({ 1, "a" }, 2, 1))
    assert(first:time_end(2))
    assert(client:delete_bucket())
    local ok, err = first:flush(true) -- named, then the upload fails: it stays in the spool
    assert.is_nil(ok)
    assert.matches("kept in spool_dir", err)
    first:discard()
    assert(client:create_bucket())
    local key, body
    for _, f in ipairs(h.files(dir)) do
      if f:match("journal$") then key = h.read_file(dir .. "/" .. f):match("\nkey =([^\n]+)\n") end
      if f:match("seg$") then body = h.read_file(dir .. "/" .. f) end
    end
    return assert(key), assert(body)
  end

  it("uploads a named segment under the key it was given, once, even if it was stored already", function()
    local key, body = leave_named_segment()
    -- play "the upload had succeeded before the crash": the object is there already
    assert(client:put(key, body, "text/csv", true))
    local second = open()
    assert(second:close())
    local objects = h.objects(client, "out/")
    assert.equal(1, #objects)
    assert.equal(key, objects[1].key)
    assert.same({}, h.files(dir))
  end)

  it("gives a named segment a new key if its key holds someone else's object", function()
    local key = leave_named_segment()
    assert(client:put(key, "someone else's", "text/plain", true))
    local second = open()
    assert(second:close())
    local objects = h.objects(client, "out/")
    assert.equal(2, #objects)
    assert.equal("someone else's", objects[1].body)
    assert.same({ "1" }, rows_of({ objects[2] }))
  end)

  it("keeps the rows when uploads stop, and a later sink with good settings uploads them", function()
    local first = open({ no_timer = false, background_uploads = true, write_interval_ms = 1 })
    assert(client:delete_bucket())
    -- one minibatch: the sink's thread cannot fail an upload (and refuse the next call)
    -- before the minibatch is complete
    for i = 1, 5 do assert(first:write({ i, "r" }, 10, 1)) end
    assert(first:time_end(10))
    first:flush()
    assert.truthy(h.eventually(10, function() return first:failure() end))
    local refused, err = first:write({ 6, "r" }, 12, 1)
    assert.is_nil(refused)
    assert.matches("uploads stopped.*NoSuchBucket", err)
    first:discard()
    assert(client:create_bucket())
    local second = open()
    assert(second:close())
    assert.same({ "1", "2", "3", "4", "5" }, rows_of(h.objects(client, "out/")))
  end)

  it("waits for uploads when spool_max_bytes is reached, losing nothing", function()
    local sink = open({ no_timer = false, spool_max_bytes = 2000, write_interval_ms = 3600000 })
    local want = {}
    for i = 1, 300 do
      assert(sink:write({ i, "row" }, 2 * i, 1))
      assert(sink:time_end(2 * i))
      want[i] = tostring(i)
      assert.is_true(sink:stats().spool_bytes <= 2000 + 100)
    end
    assert(sink:close())
    local objects = h.objects(client, "out/")
    assert.is_true(#objects >= 3) -- 300 rows of ~20 bytes, 2000 bytes of spool
    assert.same(want, rows_of(objects))
  end)

  it("creates its folder and the missing folders above it", function()
    local nested = dir .. "/a/b/spool"
    local sink = assert(s3sink.sink(h.config(bucket, { spool_dir = nested, no_timer = true })))
    assert(sink:write({ 1, "a" }, 2, 1))
    assert(sink:time_end(2))
    assert.equal("directory", lfs.attributes(nested, "mode"))
    assert(sink:close())
    assert.same({ "1" }, rows_of(h.objects(client, "out/")))
  end)

  it("names a spooled object at a quarter of spool_max_bytes, even while others wait", function()
    local sink = open({ spool_max_bytes = 4000 }) -- no timer: nothing is uploaded meanwhile
    local want = {}
    for i = 1, 150 do -- about 3 KB
      assert(sink:write({ i, "row" }, 2 * i, 1))
      assert(sink:time_end(2 * i))
      want[i] = tostring(i)
    end
    assert.is_true(sink:stats().pending_objects >= 2)
    assert(sink:close())
    local objects = h.objects(client, "out/")
    assert.is_true(#objects >= 3)
    for _, o in ipairs(objects) do assert.is_true(#o.body <= 1000 + 40) end
    assert.same(want, rows_of(objects))
  end)

  it("serves one sink at a time", function()
    local first = open()
    local second, err = s3sink.sink(h.config(bucket, { spool_dir = dir, no_timer = true }))
    assert.is_nil(second)
    assert.matches("in use by another sink", err)
    assert(first:close())
  end)

  it("refuses to take over rows meant for another bucket or prefix", function()
    local first = open()
    assert(first:write({ 1, "a" }, 2, 1))
    assert(first:time_end(2))
    first:discard()
    local sink, err = s3sink.sink(h.config(bucket, { spool_dir = dir, no_timer = true, prefix = "other/" }))
    assert.is_nil(sink)
    assert.truthy(err:find("holds rows not uploaded yet for bucket '" .. bucket .. "', prefix 'out/'", 1, true), err)
    assert(open():close()) -- the right sink takes them
    assert.same({ "1" }, rows_of(h.objects(client, "out/")))
  end)

  it("cuts what a crash left after the last commit", function()
    local first = open()
    assert(first:write({ 1, "a" }, 2, 1))
    assert(first:time_end(2))
    first:discard()
    -- half a row written after the commit, as a crash in the middle of a write leaves it
    local seg
    for _, f in ipairs(h.files(dir)) do if f:match("seg$") then seg = dir .. "/" .. f end end
    local fh = assert(io.open(seg, "ab"))
    fh:write('"2","torn')
    fh:close()
    assert(open():close())
    local objects = h.objects(client, "out/")
    assert.equal('"id","name","time","diff"\n"1","a","2","1"\n', objects[1].body)
  end)

  it("at close, leaves the rows in the spool when asked (garbage collection does so)", function()
    local sink = open()
    assert(sink:write({ 1, "a" }, 2, 1))
    sink = nil
    collectgarbage()
    collectgarbage()
    assert.same({}, client:list("out/"))
    assert(open():close()) -- the unfinished minibatch was committed by the collection
    assert.same({ "1" }, rows_of(h.objects(client, "out/")))
  end)
end)

describe("failures", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("a naming script that raises stops uploads at once, without spinning", function()
    local path = h.write_file(h.tmpname(".lua"), [[
      return { name = function(ctx) error("no name today") end }]])
    local sink = assert(s3sink.sink(h.config(bucket, { naming = path, write_interval_ms = 50 })))
    assert(sink:write({ 1, "a" }, 2, 1))
    assert(sink:time_end(2))
    local msg = h.eventually(5, function() return sink:failure() end)
    assert.matches("no name today", msg)
    -- the sink's thread sleeps now: the process does not burn a core
    local cpu = os.clock()
    require("system").sleep(1)
    local spent = os.clock() - cpu
    assert.is_true(spent < 0.3, "the sink's thread spins: " .. spent .. " s of CPU in 1 s")
    local ok, err = sink:write({ 2, "b" }, 4, 1)
    assert.is_nil(ok)
    assert.matches("uploads stopped.*no name today", err)
    sink:discard()
    os.remove(path)
  end)

  it("foreign objects under the prefix do not stop the default naming", function()
    for _, k in ipairs({ "out/_SUCCESS", "out/manifest.json", "out/sub/part-0.csv", "out/zzz" }) do
      assert(client:put(k, "x", "text/plain", true))
    end
    local sink = assert(s3sink.sink(h.config(bucket, { no_timer = true })))
    assert(sink:write({ 1, "a" }, 2, 1))
    assert(sink:close())
    local keys = {}
    for _, o in ipairs(client:list("out/")) do keys[#keys + 1] = o.key end
    assert.equal(5, #keys)
    assert.matches("^out/%d+T%d+%.%d+Z%-0000000000%.csv$", keys[1])
  end)
end)
