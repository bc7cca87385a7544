-- The option and column type tables: the one definition every binding reads. Checks that
-- the Lua module takes every option by its table entry, refuses what the entry refuses,
-- and that docs/options.md is what tools/options_doc.lua makes of the table.
local s3sink = require "s3sink"
local h = require "helpers"

describe("options", function()
  it("docs/options.md is generated from the table (run `make docs` after changing it)", function()
    local render = assert(loadfile("tools/options_doc.lua"))("render")
    local f = assert(io.open("docs/options.md", "rb"))
    local committed = f:read("a")
    f:close()
    assert.are.equal(render(s3sink), committed)
  end)

  it("describes every option with a type, a group and a documentation", function()
    local seen = {}
    for _, o in ipairs(s3sink.options) do
      assert.is_nil(seen[o.name], o.name .. " twice")
      seen[o.name] = true
      assert.truthy(({ string = 1, integer = 1, boolean = 1, table = 1 })[o.type], o.name)
      assert.truthy(({ target = 1, output = 1, transport = 1, reliability = 1, host = 1 })[o.group], o.name)
      assert.truthy(#o.doc > 20, o.name)
      if o.type == "integer" then assert.truthy(o.min <= o.max, o.name) end
    end
    assert.truthy(seen.write_interval_ms and seen.bucket and seen.spool_dir)
  end)

  it("reads every option by the type of its entry, and refuses other types naming it", function()
    for _, o in ipairs(s3sink.options) do
      local wrong = o.type == "string" and 1 or "x"
      local ok, err = pcall(s3sink.sink, h.config("b", { [o.name] = wrong }))
      assert.is_false(ok, o.name)
      assert.matches("option '" .. o.name .. "' must be an? " .. o.type, err, 1, false)
    end
  end)

  it("refuses integers out of an entry's range with the range in the message", function()
    for _, o in ipairs(s3sink.options) do
      if o.type == "integer" then
        local ok, err = pcall(s3sink.sink, h.config("b", { [o.name] = o.min - 3 }))
        assert.is_false(ok, o.name)
        assert.matches(o.name .. " is " .. (o.min - 3) .. ": it must be ", err, 1, true)
      end
    end
  end)

  it("lists the column types and the bundled scripts", function()
    local names = {}
    for _, t in ipairs(s3sink.column_types) do names[#names + 1] = t.name end
    assert.are.same({ "int", "float", "bool", "str", "bytes", "pointer", "datetime_naive",
      "datetime_utc", "duration", "json", "tuple", "list", "array", "any" }, names)
    assert.are.same({ "csv", "json" }, s3sink.bundled.format)
    assert.are.same({ "default", "time_range" }, s3sink.bundled.naming)
  end)
end)
