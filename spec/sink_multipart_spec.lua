-- Objects sent as multipart uploads, against the real MinIO: the options' rules, objects
-- byte for byte with their identity, the threshold on the stored (compressed) size, keys
-- that are taken, and a spool whose earlier run left an upload behind. MinIO takes parts
-- of 5 MiB or more but the last, so the objects here are 11 to 16 MiB in 5 MiB parts.
local s3sink = require "s3sink"
local lfs = require "lfs"
local h = require "helpers"

local MiB = 1024 * 1024
local SMALL = { multipart_threshold_bytes = 5 * MiB, multipart_part_bytes = 5 * MiB }

local function with(overrides)
  local t = {}
  for k, v in pairs(SMALL) do t[k] = v end
  for k, v in pairs(overrides or {}) do t[k] = v end
  return t
end

-- The programs run without the sanitizer runtime the ASan specs preload.
local function run(cmd)
  local p = assert(io.popen("env -u LD_PRELOAD " .. cmd .. " 2>&1"))
  local out = p:read("a")
  assert(p:close(), out)
  return out
end

local function sha256(body)
  local f = h.write_file(h.tmpname(".bin"), body)
  local out = run("sha256sum " .. f)
  os.remove(f)
  return out:match("^(%x+)")
end


local function files(dir, pattern)
  local out = {}
  for f in lfs.dir(dir) do
    if f:match(pattern) then out[#out + 1] = dir .. "/" .. f end
  end
  table.sort(out)
  return out
end

-- Writes `rows` rows of about 1 KB in minibatches of 100; returns the CSV the sink's
-- objects hold together (without their headers).
local function write_rows(sink, rows, first)
  first = first or 1
  local text = {}
  for i = first, first + rows - 1 do
    local name = string.format("%07d", i) .. string.rep(string.char(97 + i % 26), 1000)
    assert(sink:write({ i, name }, 2 * (i // 100 + 1), 1))
    text[#text + 1] = string.format('"%d","%s","%d","1"\n', i, name, 2 * (i // 100 + 1))
    if i % 100 == 0 then assert(sink:time_end(2 * (i // 100 + 1))) end
  end
  assert(sink:time_end(2 * ((first + rows - 1) // 100 + 1)))
  return table.concat(text)
end

local HEADER = '"id","name","time","diff"\n'

-- n characters of base64's alphabet from math.random: text that barely compresses
local function random_text(n)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local t = {}
  for j = 1, n do
    local k = math.random(1, 64)
    t[j] = alphabet:sub(k, k)
  end
  return table.concat(t)
end

describe("multipart uploads", function()
  local bucket, client, dir
  before_each(function()
    bucket, client = h.new_bucket()
    dir = h.tmpname("-spool")
  end)
  after_each(function() h.rmtree(dir) end)

  it("has options with S3's limits, and checks that the budgets fit 10000 parts", function()
    assert.has_error(function() s3sink.sink(h.config(bucket, { multipart_threshold_bytes = 5 * MiB - 1 })) end,
      "sink: multipart_threshold_bytes is 5242879: it must be from 5242880 to 5368709120")
    assert.has_error(function() s3sink.sink(h.config(bucket, { multipart_part_bytes = 5 * 1024 * MiB + 1 })) end,
      "sink: multipart_part_bytes is 5368709121: it must be from 5242880 to 5368709120")
    for _, case in ipairs {
      { { max_buffer_bytes = 10000 * 16 * MiB + 1 },
        "max_buffer_bytes is 167772160001 bytes, but an object that large does not fit the 10000 parts of a multipart upload of multipart_part_bytes (16777216): raise multipart_part_bytes to 17825792 or more, or lower max_buffer_bytes" },
      { { spool_dir = "/tmp/never-made", spool_max_bytes = 10000 * 5 * MiB + 1, multipart_part_bytes = 5 * MiB },
        "spool_max_bytes is 52428800001 bytes, but an object that large does not fit the 10000 parts of a multipart upload of multipart_part_bytes (5242880): raise multipart_part_bytes to 6291456 or more, or lower spool_max_bytes" },
    } do
      local sink, err = s3sink.sink(h.config(bucket, case[1]))
      assert.is_nil(sink)
      assert.equal(case[2], err)
    end
    -- at the limit, fine; the defaults are documented in the table
    assert(s3sink.sink(h.config(bucket, { max_buffer_bytes = 10000 * 16 * MiB, no_timer = true }))):discard()
    local defaults = {}
    for _, o in ipairs(s3sink.options) do defaults[o.name] = o.default end
    assert.equal("67108864 (64 MiB)", defaults.multipart_threshold_bytes)
    assert.equal("16777216 (16 MiB)", defaults.multipart_part_bytes)
  end)

  for _, spooled in ipairs { false, true } do
    it("uploads an object over the threshold in parts, byte for byte, with its identity"
       .. (spooled and " (spooled)" or ""), function()
      local sink = assert(s3sink.sink(h.config(bucket, with {
        spool_dir = spooled and dir or nil, no_timer = true, write_interval_ms = 3600000 })))
      local rows = write_rows(sink, 12000) -- about 12 MiB: parts of 5, 5 and 2 MiB
      assert(sink:close())
      local objects = h.objects(client, "out/")
      assert.equal(1, #objects)
      assert.equal(HEADER .. rows, objects[1].body)
      local etag, identity = assert(client:head(objects[1].key))
      assert.matches('%-3"?$', etag)
      assert.equal(sha256(objects[1].body), identity)
      assert.same({}, client:list_uploads(objects[1].key))
      assert.same({}, client:list_uploads())
      if spooled then assert.same({}, files(dir, "^%d+%.")) end
    end)
  end

  it("sends objects below the threshold as one PutObject", function()
    local sink = assert(s3sink.sink(h.config(bucket, with { multipart_threshold_bytes = 16 * MiB, no_timer = true })))
    local rows = write_rows(sink, 12000)
    assert(sink:close())
    local objects = h.objects(client, "out/")
    assert.equal(HEADER .. rows, objects[1].body)
    local etag, identity = assert(client:head(objects[1].key))
    assert.not_matches("%-", etag)
    assert.equal(sha256(objects[1].body), identity) -- the same identity either way
  end)

  it("compares the threshold with the compressed size", function()
    -- 12 MiB of rows that gzip makes small: one PutObject
    local sink = assert(s3sink.sink(h.config(bucket, with { compression = "gzip", no_timer = true })))
    write_rows(sink, 12000)
    assert(sink:close())
    local objects = client:list("out/")
    assert.equal(1, #objects)
    assert.is_true(objects[1].size < MiB)
    assert.not_matches("%-", (client:head(objects[1].key)))
    -- rows that do not compress: parts
    math.randomseed(7)
    local other = h.new_bucket()
    local c2 = h.client(other)
    sink = assert(s3sink.sink(h.config(other, with { compression = "gzip", no_timer = true })))
    for i = 1, 12000 do
      assert(sink:write({ i, random_text(1000) }, 2, 1))
    end
    assert(sink:time_end(2))
    assert(sink:close())
    objects = c2:list("out/")
    assert.equal(1, #objects)
    assert.is_true(objects[1].size > 6 * MiB)
    assert.matches('%-2"?$', (c2:head(objects[1].key)))
  end)

  it("sends a spooled compressed object in parts from its packed file", function()
    math.randomseed(11)
    local sink = assert(s3sink.sink(h.config(bucket, with {
      compression = "zstd", spool_dir = dir, no_timer = true, write_interval_ms = 3600000 })))
    local text = {}
    for i = 1, 12000 do
      local name = random_text(1000)
      assert(sink:write({ i, name }, 2, 1))
      text[i] = string.format('"%d","%s","2","1"\n', i, name)
    end
    assert(sink:time_end(2))
    assert(sink:close())
    local objects = h.objects(client, "out/")
    assert.equal(1, #objects)
    assert.matches("%.csv%.zst$", objects[1].key)
    local etag, identity = assert(client:head(objects[1].key))
    assert.matches('%-2"?$', etag)
    assert.equal(sha256(objects[1].body), identity) -- the identity of the stored, compressed bytes
    local f = h.write_file(h.tmpname(".zst"), objects[1].body)
    assert.equal(HEADER .. table.concat(text), run("zstd -dcq " .. f))
    os.remove(f)
    assert.same({}, files(dir, "^%d+%."))
  end)

  it("gives the object the next key when its key holds someone else's object", function()
    local sink = assert(s3sink.sink(h.config(bucket, with { no_timer = true, clock = "manual" })))
    sink:set_clock(1764030000000)
    local taken = "out/20251125T002000.000Z-0000000000.csv"
    assert(client:put(taken, "someone else's", "text/plain", true))
    local rows = write_rows(sink, 12000)
    assert(sink:close())
    assert.equal("someone else's", client:get(taken))
    local objects = h.objects(client, "out/")
    assert.equal(2, #objects)
    assert.equal("out/20251125T002000.000Z-0000000001.csv", objects[2].key)
    assert.equal(HEADER .. rows, objects[2].body)
    assert.same({}, client:list_uploads())
  end)

  -- A run that sealed a spooled object over the threshold and stopped before its upload
  -- finished: returns the segment's key and the files.
  local function leave_segment()
    local first = assert(s3sink.sink(h.config(bucket, with { spool_dir = dir, no_timer = true, write_interval_ms = 3600000 })))
    local rows = write_rows(first, 12000)
    assert.is_false(first:flush()) -- the interval has not passed: nothing named yet
    first:discard()
    -- the next sink names it; playing the crash again, before its upload
    local second = assert(s3sink.sink(h.config(bucket, with { spool_dir = dir, no_timer = true })))
    second:discard()
    local journal = files(dir, "%.journal$")[1]
    local key = h.read_file(journal):match("\nkey =([^\n]+)\n")
    return assert(key), journal, rows
  end

  for _, recorded in ipairs { true, false } do
    it("aborts the upload an earlier run left for a spooled object, "
       .. (recorded and "by the id in its journal" or "by listing its key (id not recorded)")
       .. ", then uploads the object again", function()
      local key, journal, rows = leave_segment()
      -- what the crashed run had done: created the upload, sent a part
      local id = assert(client:create_upload(key, "text/csv"))
      assert(client:upload_part(key, id, 1, string.rep("p", 5 * MiB)))
      local f = assert(io.open(journal, "ab"))
      f:write("multipart =" .. key .. "\n")
      if recorded then f:write("upload =" .. key .. " =" .. id .. "\n") end
      f:close()
      local other = assert(client:create_upload("out/someone-elses.csv"))
      local sink = assert(s3sink.sink(h.config(bucket, with { spool_dir = dir, no_timer = true })))
      -- aborted at open, before anything else
      assert.same({}, client:list_uploads(key))
      assert(sink:close())
      local objects = h.objects(client, "out/")
      assert.equal(1, #objects)
      assert.equal(key, objects[1].key)
      assert.equal(HEADER .. rows, objects[1].body)
      assert.same({ { key = "out/someone-elses.csv", upload_id = other } }, client:list_uploads())
      assert(client:abort_upload("out/someone-elses.csv", other))
    end)
  end

  it("counts a spooled object stored before the crash as uploaded, without a new upload", function()
    local key, journal, rows = leave_segment()
    local body = h.read_file(files(dir, "%.seg$")[1])
    assert.equal(HEADER .. rows, body)
    assert(client:put(key, body, "text/csv", true)) -- the test client's PUT carries the identity
    local f = assert(io.open(journal, "ab"))
    f:write("multipart =" .. key .. "\n") -- and a crash right before its Complete's answer
    f:close()
    local sink = assert(s3sink.sink(h.config(bucket, with { spool_dir = dir, no_timer = true })))
    assert(sink:close())
    assert.equal(1, #client:list("out/"))
    assert.not_matches("%-", (client:head(key))) -- still the object put above
    assert.same({}, client:list_uploads())
    assert.same({}, files(dir, "^%d+%."))
  end)
end)
