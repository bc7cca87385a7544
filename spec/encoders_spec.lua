-- Native encoders (row = fmt.csv_encoder{} / fmt.json_encoder{}): the same bytes as the Lua
-- functions fmt.csv_row / fmt.json_row on every type, "any" columns, nulls; their options;
-- and the sink writing through them.
local s3sink = require "s3sink"
local null = s3sink.null

local function script(src)
  local path = os.tmpname() .. ".lua"
  local fh = assert(io.open(path, "wb"))
  fh:write(src)
  fh:close()
  return path
end

local function formatter(format, columns)
  local f, err = s3sink.formatter { format = format, columns = columns }
  assert(f, err)
  return f
end

-- every column type, then an "any" column
local columns = {
  { name = "i", type = "int", optional = true }, { name = "f", type = "float" },
  { name = "b", type = "bool" }, { name = 's"q', type = "str" },
  { name = "y", type = "bytes" }, { name = "p", type = "pointer" },
  { name = "dn", type = "datetime_naive" }, { name = "du", type = "datetime_utc" },
  { name = "d", type = "duration" }, { name = "j", type = "json" },
  { name = "t", type = "tuple" }, { name = "l", type = "list" }, { name = "a", type = "array" },
  { name = "x", type = "any" },
}
local rows = {
  { 1, 0.1, true, 'say "hi"\n\t\1', "\0\255ab", "^X1", 1700000000123456789, -1, 5,
    '{"k":[1]}', "[1,2]", "[]", "[[1.5]]", 7 },
  { null, -1e300, false, "", "", "^", 0, 0, -5, "null", "[]", "[]", "[]", "txt" },
  { -9223372036854775807, 688673779587758.25, true, "é,\"", "x", "^Z", -1, 1, 0,
    "1", "[]", "[]", "[]", null },
  { 3, 0 / 0, false, "a", "ab", "^", 1, 2, 3, "{}", "[]", "[]", "[]", 1.5 },
}

-- the same format with a Lua row function calling fmt.csv_row / fmt.json_row
local LUA_CSV = [[
return { extension = "csv",
  row = function(values, time, diff, types) return fmt.csv_row(values, types, time, diff, SEP) end }
]]
local LUA_JSON = [[
local names
return { extension = "json",
  init = function(columns) names = {} for i, c in ipairs(columns) do names[i] = c.name end end,
  row = function(values, time, diff, types) return fmt.json_row(values, names, types, time, diff) end }
]]

describe("native encoders", function()
  for _, case in ipairs {
    { "csv", LUA_CSV:gsub("SEP", '","'), "return { row = fmt.csv_encoder {} }" },
    { "csv sep", LUA_CSV:gsub("SEP", '";;"'), "return { row = fmt.csv_encoder { sep = ';;' } }" },
    { "json", LUA_JSON, "return { row = fmt.json_encoder {} }" },
  } do
    it(case[1] .. " writes what the Lua function writes", function()
      local lua = formatter(script(case[2]), columns)
      local native = formatter(script(case[3]), columns)
      for k, r in ipairs(rows) do
        for _, diff in ipairs { 1, -1 } do
          assert.are.equal(lua:row(r, 1700000000000 + k, diff), native:row(r, 1700000000000 + k, diff))
        end
      end
    end)
  end

  it("the bundled formats use them", function()
    local csv = formatter("csv", { { name = "a", type = "str" } })
    assert.are.equal('"x""y","5","-1"\n', csv:row({ 'x"y' }, 5, -1))
    local json = formatter("json", { { name = "a", type = "str" } })
    assert.are.equal('{"a":"x\\"y","diff":-1,"time":5}\n', json:row({ 'x"y' }, 5, -1))
  end)

  it("refuse unknown options and bad separators", function()
    for src, msg in pairs {
      ["return { row = fmt.csv_encoder { seperator = ';' } }"] = "unknown option 'seperator'",
      ["return { row = fmt.json_encoder { sep = ';' } }"] = "unknown option 'sep'",
      ["return { row = fmt.csv_encoder { sep = '' } }"] = "sep must be a string",
    } do
      local f, err = s3sink.formatter { format = script(src), columns = columns }
      assert.is_nil(f)
      assert.matches(msg, err, 1, true)
    end
  end)

  it("keep the checks of values against the columns", function()
    local f = formatter("csv", { { name = "a", type = "int" } })
    local ok, r, msg = pcall(f.row, f, { "x" }, 1, 1)
    assert.matches("column 'a'", tostring(ok and msg or r), 1, true)
  end)

  it("row must still be a function or an encoder", function()
    local f, err = s3sink.formatter { format = script("return { row = 1 }"), columns = columns }
    assert.is_nil(f)
    assert.matches("fmt.csv_encoder", err, 1, true)
  end)
end)
