-- The flush policy, against a real MinIO, with a manual clock where timing matters.
local s3sink = require "s3sink"
local h = require "helpers"

local function open_manual(bucket, overrides)
  local cfg = h.config(bucket, overrides)
  cfg.clock = "manual"
  if cfg.no_timer == nil then cfg.no_timer = true end
  local sink, err = s3sink.sink(cfg)
  assert(sink, err)
  return sink
end

local function rows_of(objects)
  local all = {}
  for _, o in ipairs(objects) do
    local rows = h.parse_csv(o.body)
    assert.same({ "id", "name", "time", "diff" }, rows[1])
    for i = 2, #rows do all[#all + 1] = rows[i] end
  end
  return all
end

describe("flush policy", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  it("uploads nothing before write_interval_ms has passed", function()
    local sink = open_manual(bucket)
    assert(sink:write({ 1, "a" }, 2, 1))
    assert(sink:time_end(2))
    sink:set_clock(999)
    assert.is_false(sink:flush())
    assert.same({}, client:list("out/"))
    assert.equal(1, sink:stats().buffered_rows)
    sink:discard()
  end)

  it("uploads one object once the interval has passed", function()
    local sink = open_manual(bucket)
    assert(sink:write({ 1, "a" }, 2, 1))
    assert(sink:time_end(2))
    sink:set_clock(1000)
    assert.is_true(sink:flush())
    local objs = h.objects(client, "out/")
    assert.equal(1, #objs)
    assert.equal('"id","name","time","diff"\n"1","a","2","1"\n', objs[1].body)
    assert.equal(objs[1].key, sink:last_key())
    local st = sink:stats()
    assert.same({ 1, 1, 0, 0 }, { st.objects, st.rows, st.buffered_rows, st.buffered_bytes })
    -- the interval restarts at the successful upload
    assert(sink:write({ 2, "b" }, 4, 1))
    assert(sink:time_end(4))
    sink:set_clock(1999)
    assert.is_false(sink:flush())
    sink:set_clock(2000)
    assert.is_true(sink:flush())
    assert.equal(2, #client:list("out/"))
    sink:discard()
  end)

  it("keeps rows of early flushes and puts them in the next object", function()
    local sink = open_manual(bucket)
    for t = 1, 3 do
      assert(sink:write({ t, "r" .. t }, 2 * t, 1))
      assert(sink:time_end(2 * t))
      sink:set_clock(300 * t)
      assert.is_false(sink:flush()) -- too early: a no-op
    end
    sink:set_clock(1000)
    assert.is_true(sink:flush())
    assert.same({ { "1", "r1", "2", "1" }, { "2", "r2", "4", "1" }, { "3", "r3", "6", "1" } },
      rows_of(h.objects(client, "out/")))
    sink:discard()
  end)

  it("only uploads complete minibatches", function()
    local sink = open_manual(bucket)
    assert(sink:write({ 1, "done" }, 2, 1))
    assert(sink:time_end(2))
    assert(sink:write({ 2, "open" }, 4, 1)) -- its minibatch has not ended
    sink:set_clock(5000)
    assert.is_true(sink:flush(true))
    assert.same({ { "1", "done", "2", "1" } }, rows_of(h.objects(client, "out/")))
    assert.equal(1, sink:stats().buffered_rows)
    assert(sink:time_end(4))
    sink:set_clock(6000)
    assert.is_true(sink:flush())
    assert.same({ { "1", "done", "2", "1" }, { "2", "open", "4", "1" } },
      rows_of(h.objects(client, "out/")))
    sink:discard()
  end)

  it("produces complete readable objects over many cycles, together exactly the rows", function()
    local sink = open_manual(bucket, { write_interval_ms = 100 })
    local expected, id, now = {}, 0, 0
    for cycle = 1, 12 do
      for batch = 1, cycle % 4 + 1 do
        local time = cycle * 100 + batch * 2
        for _ = 1, batch do
          id = id + 1
          local diff = (id % 5 == 0) and -1 or 1
          assert(sink:write({ id, "row," .. id .. '"\n' }, time, diff))
          expected[#expected + 1] = { tostring(id), "row," .. id .. '"\n', tostring(time), tostring(diff) }
        end
        assert(sink:time_end(time))
        now = now + 40
        sink:set_clock(now)
        sink:flush()
      end
    end
    assert(sink:close())
    local objs = h.objects(client, "out/")
    assert.is_true(#objs >= 5)
    for _, o in ipairs(objs) do assert.matches('^"id","name","time","diff"\n', o.body) end
    assert.same(expected, rows_of(objs))
  end)

  it("uploads what is left at close, including an unfinished minibatch", function()
    local sink = open_manual(bucket)
    assert(sink:write({ 1, "a" }, 2, 1))
    assert(sink:time_end(2))
    assert(sink:write({ 2, "b" }, 4, 1))
    assert(sink:close())
    assert.same({ { "1", "a", "2", "1" }, { "2", "b", "4", "1" } }, rows_of(h.objects(client, "out/")))
  end)

  it("uploads nothing for an empty buffer", function()
    local sink = open_manual(bucket)
    sink:set_clock(100000)
    assert.is_false(sink:flush())
    assert.is_false(sink:flush(true))
    assert(sink:close())
    assert.same({}, client:list("out/"))
  end)

  it("flushes an idle stream from its own timer", function()
    local sink = assert(s3sink.sink(h.config(bucket, { write_interval_ms = 200 })))
    assert(sink:write({ 7, "idle" }, 2, 1))
    assert(sink:time_end(2))
    -- no flush() call: the timer must upload within about one interval
    local objs = h.eventually(10, function()
      local l = client:list("out/")
      return #l > 0 and l
    end)
    assert.truthy(objs)
    assert.equal(1, #objs)
    assert.same({ { "7", "idle", "2", "1" } }, rows_of(h.objects(client, "out/")))
    assert.is_nil(sink:last_error())
    assert(sink:close())
  end)

  it("stops uploads on a permanent error, keeps the rows, and tries again on a forced flush", function()
    local sink = open_manual(bucket)
    assert(client:delete_bucket())
    assert(sink:write({ 1, "kept" }, 2, 1))
    assert(sink:time_end(2))
    sink:set_clock(1000)
    local ok, err, code = sink:flush()
    assert.is_nil(ok)
    assert.equal("NoSuchBucket", code)
    assert.matches("uploads stopped", err)
    assert.matches("upload of 'out/[^']+%.csv' %(1 rows%)", err) -- names the object...
    assert.truthy(err:find("bucket '" .. bucket .. "'", 1, true)) -- ...and the bucket
    assert.matches("kept in memory", err)
    assert.equal(1, sink:stats().failed_uploads)
    assert.equal(1, sink:stats().buffered_rows)
    -- from now on every call says so, and nothing more is accepted
    local refused, again = sink:write({ 2, "refused" }, 4, 1)
    assert.is_nil(refused)
    assert.equal(err, again)
    assert.equal("NoSuchBucket", select(2, sink:failure()))
    assert(client:create_bucket())
    -- the host asks again: the failed object goes, under the key it was given
    assert.is_true(sink:flush(true))
    assert.is_nil(sink:failure())
    assert(sink:write({ 2, "later" }, 4, 1))
    assert(sink:time_end(4))
    sink:set_clock(3000)
    assert.is_true(sink:flush(true))
    assert.same({ { "1", "kept", "2", "1" }, { "2", "later", "4", "1" } },
      rows_of(h.objects(client, "out/")))
    assert.equal(2, #client:list("out/"))
    assert(sink:close())
  end)

  it("with background_uploads, flush() hands the object to the timer thread and returns", function()
    local sink = assert(s3sink.sink(h.config(bucket, { background_uploads = true, write_interval_ms = 1 })))
    assert(sink:write({ 1, "bg" }, 2, 1))
    assert(sink:time_end(2))
    -- true when this call sealed the object, false if the timer thread got there first
    assert.is_boolean(sink:flush())
    assert.truthy(h.eventually(10, function() return #client:list("out/") == 1 end))
    assert.same({ { "1", "bg", "2", "1" } }, rows_of(h.objects(client, "out/")))
    assert(sink:close())
  end)

  it("applies backpressure at max_buffer_bytes: writes wait for uploads, nothing is lost", function()
    local sink = assert(s3sink.sink(h.config(bucket, { max_buffer_bytes = 400, write_interval_ms = 3600000 })))
    local expected = {}
    for i = 1, 200 do
      assert(sink:write({ i, "row" }, 2 * i, 1))
      assert(sink:time_end(2 * i))
      expected[i] = { tostring(i), "row", tostring(2 * i), "1" }
      assert.is_true(sink:stats().buffered_bytes <= 400)
    end
    assert(sink:close())
    local objs = h.objects(client, "out/")
    assert.is_true(#objs > 5)
    assert.same(expected, rows_of(objs))
  end)

  it("splits a minibatch larger than max_buffer_bytes across objects, each self-contained", function()
    local sink = assert(s3sink.sink(h.config(bucket, { max_buffer_bytes = 1000, write_interval_ms = 3600000 })))
    local expected = {}
    for i = 1, 500 do -- one minibatch of about 10 KB
      assert(sink:write({ i, "row" }, 2, 1))
      expected[i] = { tostring(i), "row", "2", "1" }
    end
    assert(sink:time_end(2))
    assert(sink:close())
    local objs = h.objects(client, "out/")
    assert.is_true(#objs >= 10)
    for _, o in ipairs(objs) do assert.is_true(#o.body <= 1000) end
    assert.same(expected, rows_of(objs)) -- rows_of checks every object's header
  end)

  it("without a timer, a full buffer fails the write and keeps what was accepted", function()
    local sink = open_manual(bucket, { max_buffer_bytes = 200 })
    local accepted, err = 0, nil
    for i = 1, 100 do
      local ok, e = sink:write({ i, "row" }, 2, 1)
      if not ok then err = e break end
      accepted = i
    end
    assert.matches("the buffer is full", err)
    assert.is_true(accepted > 3)
    assert(sink:close())
    assert.equal(accepted, #rows_of(h.objects(client, "out/")))
  end)

  it("gives an object a new key when its key was taken meanwhile, never overwriting", function()
    local sink = open_manual(bucket)
    sink:set_clock(1764030000000)
    local taken = "out/20251125T002000.000Z-0000000000.csv"
    assert(client:put(taken, "someone else's", "text/plain", true))
    assert(sink:write({ 1, "mine" }, 2, 1))
    assert(sink:time_end(2))
    assert.is_true(sink:flush(true))
    assert.equal("someone else's", client:get(taken))
    assert.equal("out/20251125T002000.000Z-0000000001.csv", sink:last_key())
    assert.equal('"id","name","time","diff"\n"1","mine","2","1"\n', client:get(sink:last_key()))
    assert.equal(1, sink:stats().failed_uploads)
    assert(sink:close())
  end)

  for _, limit in ipairs {
    { max_object_rows = 3 },
    { max_object_bytes = 80 }, -- the header (26 bytes) and two rows (17 bytes each) stay below
  } do
    local name, value = next(limit)
    it("rolls objects at " .. name .. " at a minibatch end, without waiting for the interval", function()
      local sink = open_manual(bucket, { [name] = value, write_interval_ms = 3600000 })
      for batch = 1, 5 do -- minibatches of two rows
        for k = 1, 2 do assert(sink:write({ 10 * batch + k, "r" }, 2 * batch, 1)) end
        assert(sink:time_end(2 * batch))
        sink:flush() -- no timer: the host's flush uploads what is sealed
      end
      -- sealed at rows 4 and 8: by rows (4 >= 3), or by bytes (26 + 4 * 17 >= 80)
      local objs = h.objects(client, "out/")
      assert.equal(2, #objs)
      for _, o in ipairs(objs) do assert.equal(4, #h.parse_csv(o.body) - 1) end
      assert.equal(2, sink:stats().buffered_rows)
      assert(sink:close())
      local ids = {}
      for _, r in ipairs(rows_of(h.objects(client, "out/"))) do ids[#ids + 1] = tonumber(r[1]) end
      assert.same({ 11, 12, 21, 22, 31, 32, 41, 42, 51, 52 }, ids) -- none lost, none twice
    end)
  end

  it("refuses writes after close", function()
    local sink = open_manual(bucket)
    assert(sink:close())
    assert.has_error(function() sink:write({ 1, "x" }, 2, 1) end, "the sink is closed")
  end)
end)
