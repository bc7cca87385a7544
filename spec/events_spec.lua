-- Visibility: on_event and the counters, against a real MinIO.
local s3sink = require "s3sink"
local h = require "helpers"

describe("events", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  local function open(overrides, events)
    local cfg = h.config(bucket, overrides)
    cfg.on_event = function(ev) events[#events + 1] = ev end
    return assert(s3sink.sink(cfg))
  end

  local function kinds(events)
    local out = {}
    for _, ev in ipairs(events) do out[#out + 1] = ev.kind end
    return table.concat(out, " ")
  end

  it("tells each upload: key, rows, bytes as stored, time; the counters agree", function()
    local events = {}
    local sink = open({ clock = "manual", no_timer = true }, events)
    for object = 1, 3 do
      for i = 1, object do assert(sink:write({ i, "row" }, 2 * object, 1)) end
      assert(sink:time_end(2 * object))
      assert.is_true(sink:flush(true))
    end
    assert.equal("uploaded uploaded uploaded", kinds(events))
    local stats, bytes = sink:stats(), 0
    for n, ev in ipairs(events) do
      assert.equal(n, ev.rows)
      assert.equal(#client:get(ev.key), ev.bytes)
      assert.is_true(ev.elapsed_ms >= 0 and ev.elapsed_ms < 60000)
      assert.equal(0, ev.attempts)
      assert.is_nil(ev.message)
      bytes = bytes + ev.bytes
    end
    assert.equal(events[3].key, sink:last_key())
    assert.equal(3, stats.objects)
    assert.equal(6, stats.rows)
    assert.equal(bytes, stats.bytes)
    assert.is_true(stats.upload_ms >= 0)
    assert(sink:close())
  end)

  it("tells a taken key (retry), a stop with its message, and the recovery", function()
    local events = {}
    local sink = open({ clock = "manual", no_timer = true }, events)
    sink:set_clock(1764030000000)
    assert(client:put("out/20251125T002000.000Z-0000000000.csv", "someone else's", "text/plain", true))
    assert(sink:write({ 1, "a" }, 2, 1))
    assert(sink:time_end(2))
    assert.is_true(sink:flush(true))
    assert.equal("retry uploaded", kinds(events))
    assert.equal("out/20251125T002000.000Z-0000000000.csv", events[1].key)
    assert.matches("was taken by another object", events[1].message)
    assert.equal(0, events[1].retry_in_ms)
    assert.equal("out/20251125T002000.000Z-0000000001.csv", events[2].key)

    -- a permanent error stops uploads: one event with the message the host gets
    assert(sink:close())
    events = {}
    bucket, client = h.new_bucket()
    sink = open({ clock = "manual", no_timer = true }, events)
    assert(client:delete_bucket())
    assert(sink:write({ 2, "b" }, 4, 1))
    assert(sink:time_end(4))
    sink:set_clock(5000)
    local ok, err = sink:flush()
    assert.is_nil(ok)
    assert.equal("stopped", kinds(events))
    assert.equal(err, events[1].message)
    assert.equal("NoSuchBucket", events[1].code)
    -- the host tries again once the bucket is back: recovered (after 1 failed attempt), then uploaded
    assert(client:create_bucket())
    assert.is_true(sink:flush(true))
    assert.equal("stopped recovered uploaded", kinds(events))
    assert.equal(1, events[2].attempts)
    assert.equal(events[3].key, events[2].key)
    assert.equal(1, events[3].rows)
    assert(sink:close())
  end)

  it("delivers the sink's own thread's events in the sink's next call, on the caller's thread", function()
    local events = {}
    local sink = open({ write_interval_ms = 50, background_uploads = true }, events)
    assert(sink:write({ 1, "bg" }, 2, 1))
    assert(sink:time_end(2))
    assert.truthy(h.eventually(10, function() return sink:stats().objects == 1 end))
    assert.equal(0, #events) -- uploaded by the sink's thread: Lua runs only in the sink's calls
    assert(sink:write({ 2, "next" }, 4, 1))
    assert.equal("uploaded", kinds(events))
    assert(sink:close())
    assert.equal("uploaded uploaded", kinds(events))
  end)

  it("lets on_event read the sink but not write, flush or close it; its errors do not fail the call", function()
    local seen, refused = nil, nil
    local cfg = h.config(bucket, { clock = "manual", no_timer = true })
    local sink
    cfg.on_event = function(ev)
      seen = sink:stats().objects
      refused = select(2, pcall(sink.flush, sink, true))
      error("handler bug")
    end
    sink = assert(s3sink.sink(cfg))
    local ok = pcall(function()
      assert(sink:write({ 1, "a" }, 2, 1))
      assert(sink:time_end(2))
      assert.is_true(sink:flush(true)) -- the handler's error does not fail the flush
    end)
    assert.is_true(ok)
    assert.equal(1, seen)
    assert.matches("on_event may read the sink", refused)
    assert.equal(1, #client:list("out/"))
    assert(sink:close())
  end)

  it("refuses an on_event that is not a function, naming it", function()
    local cfg = h.config(bucket)
    cfg.on_event = "print"
    local ok, err = pcall(s3sink.sink, cfg)
    assert.is_false(ok)
    assert.matches("option 'on_event' must be a function, not a string", err)
  end)

  it("counts the same in every binding: the runtime's table of counters", function()
    local sink = assert(s3sink.sink(h.config(bucket)))
    local names = {}
    for name in pairs(sink:stats()) do names[#names + 1] = name end
    table.sort(names)
    assert.same({ "buffered_bytes", "buffered_rows", "bytes", "early_bytes", "failed_uploads", "last_write_ms",
      "objects", "pending_objects", "rows", "spool_bytes", "upload_ms" }, names)
    assert(sink:close())
  end)
end)
