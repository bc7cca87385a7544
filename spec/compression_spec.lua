-- The compression option, against a real MinIO: every object is one gzip member or zstd
-- frame of exactly the bytes the same sink writes uncompressed, read back with the gzip
-- and zstd programs; keys, content types, naming, the spool's recovery and the rules.
local s3sink = require "s3sink"
local lfs = require "lfs"
local h = require "helpers"

local CODECS = {
  gzip = { ext = "gz", ctype = "application/gzip", unpack = "gzip -dc" },
  zstd = { ext = "zst", ctype = "application/zstd", unpack = "zstd -dcq" },
}

-- The programs run without the sanitizer runtime the ASan specs preload.
local function run(cmd)
  local p = assert(io.popen("env -u LD_PRELOAD " .. cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local function decompress(codec, body)
  local f = h.write_file(h.tmpname("." .. CODECS[codec].ext), body)
  local text, ok = run(CODECS[codec].unpack .. " " .. f)
  os.remove(f)
  assert(ok, codec .. " could not decompress: " .. text)
  return text
end

-- gzip: one member, whose trailer holds the length of all of the content (a second
-- member would hold only its own); zstd: one frame, with the content size and a checksum.
local function assert_one_unit(codec, body, content)
  if codec == "gzip" then
    assert.equal("\x1f\x8b", body:sub(1, 2))
    assert.equal(#content % 2 ^ 32, (string.unpack("<I4", body, #body - 3)))
  else
    local f = h.write_file(h.tmpname(".zst"), body)
    local info = run("zstd -lv " .. f)
    os.remove(f)
    assert.matches("# Zstandard Frames: 1\n", info, 1, true)
    assert.matches("Decompressed Size: [^\n]*%(" .. #content .. " B%)", info)
    assert.matches("Check: XXH64", info, 1, true)
  end
end

local function rmtree(dir)
  if not lfs.attributes(dir) then return end
  for f in lfs.dir(dir) do
    if f ~= "." and f ~= ".." then os.remove(dir .. "/" .. f) end
  end
  lfs.rmdir(dir)
end

local function files(dir)
  local out = {}
  for f in lfs.dir(dir) do
    if f:match("^%d+%.") then out[#out + 1] = f end
  end
  table.sort(out)
  return out
end

describe("compression", function()
  local bucket, client
  before_each(function() bucket, client = h.new_bucket() end)

  -- Writes the same minibatches to prefix plain/ uncompressed and to packed/ with the
  -- codec, with a manual clock (same flush times, same keys but the extension).
  local function write_both(codec, format, columns, rows_of)
    local sinks = {}
    for _, side in ipairs { "plain", "packed" } do
      sinks[side] = assert(s3sink.sink(h.config(bucket, {
        prefix = side .. "/", format = format, columns = columns, clock = "manual",
        no_timer = true, write_interval_ms = 100,
        compression = side == "packed" and codec or nil,
      })))
    end
    for batch = 1, 3 do
      for side, sink in pairs(sinks) do
        sink:set_clock(batch * 1000)
        for _, r in ipairs(rows_of(batch)) do assert(sink:write(r, batch, 1)) end
        assert(sink:time_end(batch))
        assert.is_true(assert(sink:flush()), side)
      end
    end
    for _, sink in pairs(sinks) do assert(sink:close()) end
    return h.objects(client, "plain/"), h.objects(client, "packed/")
  end

  for codec, c in pairs(CODECS) do
    for _, format in ipairs { "csv", "json" } do
      it(codec .. " objects of " .. format .. " are the uncompressed objects' bytes, one unit each", function()
        local columns = { { name = "id", type = "int" }, { name = "name", type = "str" },
          { name = "v", type = "float", optional = true } }
        local plain, packed = write_both(codec, format, columns, function(batch)
          local rows = {}
          for i = 1, 500 * batch do
            rows[i] = { batch * 10000 + i, "name " .. i .. ' "quoted", comma', i % 7 == 0 and s3sink.null or i / 3 }
          end
          return rows
        end)
        assert.equal(3, #plain)
        assert.equal(3, #packed)
        local ext = format
        for i = 1, 3 do
          assert.equal(plain[i].key:gsub("^plain/", "packed/") .. "." .. c.ext, packed[i].key)
          assert.matches("%." .. ext .. "%." .. c.ext .. "$", packed[i].key)
          local text = decompress(codec, packed[i].body)
          assert.equal(plain[i].body, text) -- byte for byte, header included
          assert_one_unit(codec, packed[i].body, text)
          assert.is_true(#packed[i].body < #text / 3, "compressed")
        end
      end)
    end
  end

  it("compresses a format script's objects too, and names them after its extension", function()
    local plain, packed = write_both("zstd", "examples/formats/tsv.lua",
      { { name = "id", type = "int" }, { name = "name", type = "str" } },
      function(batch) return { { batch, "tab\there" }, { batch + 1, "x" } } end)
    assert.matches("%.tsv%.zst$", packed[1].key)
    for i = 1, 3 do assert.equal(plain[i].body, decompress("zstd", packed[i].body)) end
  end)

  it("tells naming scripts the final extension and the uncompressed size", function()
    local naming = h.write_file(h.tmpname(".lua"), [[
      return { name = function(ctx)
        return string.format("%s%03d-%d.%s", ctx.prefix, ctx.sequence, ctx.bytes, ctx.extension)
      end }]])
    local sink = assert(s3sink.sink(h.config(bucket, { compression = "gzip", naming = naming, no_timer = true })))
    for i = 1, 100 do assert(sink:write({ i, "row" }, 1, 1)) end
    assert(sink:time_end(1))
    assert(sink:flush(true))
    local stats = sink:stats()
    assert(sink:close())
    os.remove(naming)
    local objects = h.objects(client, "out/")
    assert.equal(1, #objects)
    local bytes = objects[1].key:match("^out/000%-(%d+)%.csv%.gz$")
    assert.equal(#decompress("gzip", objects[1].body), tonumber(bytes))
    assert.equal(#objects[1].body, stats.bytes) -- stats count what was stored
  end)

  it("uses the level asked for: gzip 1 and 9 store the same content, 9 in fewer bytes", function()
    local sizes = {}
    for _, level in ipairs { 1, 9 } do
      local sink = assert(s3sink.sink(h.config(bucket, {
        prefix = "l" .. level .. "/", compression = "gzip", compression_level = level, no_timer = true })))
      for i = 1, 5000 do assert(sink:write({ i, "name " .. (i % 97) }, 1, 1)) end
      assert(sink:time_end(1))
      assert(sink:close())
      local o = h.objects(client, "l" .. level .. "/")[1]
      sizes[level] = #o.body
      sizes["text" .. level] = decompress("gzip", o.body)
    end
    assert.equal(sizes.text1, sizes.text9)
    assert.is_true(sizes[9] < sizes[1])
  end)

  describe("with a spool", function()
    local dir
    before_each(function() dir = h.tmpname("-spool") end)
    after_each(function() rmtree(dir) end)

    local function open(overrides)
      local cfg = h.config(bucket, overrides)
      cfg.spool_dir = dir
      cfg.no_timer = true
      return assert(s3sink.sink(cfg))
    end

    it("recovers a segment it had not compressed yet, and compresses it as it was meant", function()
      local first = open({ compression = "zstd" })
      for i = 1, 3 do
        assert(first:write({ i, "r" }, i, 1))
        assert(first:time_end(i))
      end
      first:discard() -- the crash: nothing compressed, nothing uploaded
      -- the next sink has other settings: the segment keeps those it was written with
      local second = open({ compression = "gzip" })
      assert(second:close())
      local objects = h.objects(client, "out/")
      assert.equal(1, #objects)
      assert.matches("%.csv%.zst$", objects[1].key)
      local rows = h.parse_csv(decompress("zstd", objects[1].body))
      assert.same({ "id", "name", "time", "diff" }, rows[1])
      assert.equal(4, #rows)
      assert.same({}, files(dir))
    end)

    -- A run that named and compressed a segment, failed to upload it and crashed:
    -- returns its key and the compressed file's bytes.
    local function leave_packed_segment(codec)
      local first = open({ compression = codec })
      for i = 1, 200 do assert(first:write({ i, "row " .. i }, 5, 1)) end
      assert(first:time_end(5))
      assert(client:delete_bucket())
      local ok, err = first:flush(true) -- named and compressed, then the upload fails
      assert.is_nil(ok)
      assert.matches("kept in spool_dir", err)
      first:discard()
      assert(client:create_bucket())
      local key, packed
      for _, f in ipairs(files(dir)) do
        if f:match("journal$") then
          local journal = h.read_file(dir .. "/" .. f)
          key = journal:match("\nkey =([^\n]+)\n")
          assert.matches("\npacked %d+\n", journal)
        end
        assert.is_nil(f:match("seg$")) -- replaced by the compressed file
        if f:match("packed$") then packed = h.read_file(dir .. "/" .. f) end
      end
      return assert(key), assert(packed)
    end

    for codec in pairs(CODECS) do
      it("uploads a compressed segment after a crash with the same key and bytes (" .. codec .. ")", function()
        local key, packed = leave_packed_segment(codec)
        local second = open() -- without compression: the segment is uploaded as it is
        assert(second:close())
        local objects = h.objects(client, "out/")
        assert.equal(1, #objects)
        assert.equal(key, objects[1].key)
        assert.equal(packed, objects[1].body)
        assert.equal(201, #h.parse_csv(decompress(codec, objects[1].body)))
        assert.same({}, files(dir))
      end)
    end

    it("counts a compressed segment stored before the crash as uploaded, once", function()
      local key, packed = leave_packed_segment("gzip")
      assert(client:put(key, packed, "application/gzip", true)) -- the upload had succeeded
      local second = open({ compression = "gzip" })
      assert(second:close())
      local objects = h.objects(client, "out/")
      assert.equal(1, #objects)
      assert.equal(packed, objects[1].body)
      assert.same({}, files(dir))
    end)

    it("compresses again a segment whose compression a crash cut short", function()
      local key, packed = leave_packed_segment("gzip")
      -- play "the crash came while compressing": the journal has no packed line yet, the
      -- segment is there, the compressed file is partial
      for _, f in ipairs(files(dir)) do
        local path = dir .. "/" .. f
        if f:match("journal$") then
          h.write_file(path, (h.read_file(path):gsub("packed %d+\n", "")))
        elseif f:match("packed$") then
          h.write_file(path, packed:sub(1, 10))
          h.write_file(path:gsub("packed$", "seg"), decompress("gzip", packed))
        end
      end
      local second = open({ compression = "gzip" })
      assert(second:close())
      local objects = h.objects(client, "out/")
      assert.equal(1, #objects)
      assert.equal(key, objects[1].key)
      assert.equal(201, #h.parse_csv(decompress("gzip", objects[1].body)))
      assert.same({}, files(dir))
    end)
  end)

  it("is refused at creation when unknown or mismatched, naming the option and the fix", function()
    local cases = {
      { { compression = "lz4" }, "compression 'lz4' is not known: give one of \"none\", \"gzip\", \"zstd\"" },
      { { compression = "GZIP" }, "compression 'GZIP' is not known" },
      { { compression = "gzip", compression_level = 12 }, "compression_level is 12: gzip takes 1 to 9" },
      { { compression = "zstd", compression_level = 20 }, "compression_level is 20: it must be from 1 to 19" },
      { { compression_level = 3 }, "compression_level is set but compression is \"none\"" },
      { { compression = "none", compression_level = 3 }, "compression_level is set but compression is \"none\"" },
      { { compression = 1 }, "option 'compression' must be a string" },
    }
    for _, case in ipairs(cases) do
      -- a value its option refuses raises; options that do not go together: nil, message
      local ok, sink, msg = pcall(s3sink.sink, h.config(bucket, case[1]))
      if not ok then sink, msg = nil, sink end
      assert.is_nil(sink)
      assert.matches(case[2], msg, 1, true)
    end
    assert.same({}, client:list("out/"))
  end)
end)
