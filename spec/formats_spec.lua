-- Byte-exact output of the bundled csv and json formats (what Pathway's pw.io.fs.write
-- writes, docs/value-text.md), the TSV example format, and the sandbox and
-- type checks around format scripts.
local s3sink = require "s3sink"
local null = s3sink.null

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local TSV = here .. "../examples/formats/tsv.lua"

local function open(format, columns)
  local f, err = s3sink.formatter { format = format, columns = columns }
  assert(f, err)
  return f
end

-- The message of a failure, whether it was raised or returned as nil, message.
local function failure(fn, ...)
  local ok, r, msg = pcall(fn, ...)
  if not ok then return tostring(r) end
  if r == nil then return tostring(msg) end
  return nil
end

local function open_failure(format, columns)
  return failure(s3sink.formatter, { format = format, columns = columns })
end

local function row_failure(f, values, time, diff)
  return failure(f.row, f, values, time, diff)
end

local function script(src)
  local path = os.tmpname()
  local fh = assert(io.open(path, "wb"))
  fh:write(src)
  fh:close()
  return path
end

-- One formatter per (format, type, optional), all with a single column "c".
local cache = {}
local function single(format, type, optional)
  local key = format .. "/" .. type .. "/" .. tostring(optional)
  if not cache[key] then
    cache[key] = open(format, { { name = "c", type = type, optional = optional } })
  end
  return cache[key]
end

-- csv: the cell as it appears between the quotes in the file (inner quotes doubled);
-- json: the JSON value text.
local function check(type, v, csv, json, optional)
  assert.are.equal('"' .. csv .. '","7","1"\n', single("csv", type, optional):row({ v }, 7, 1))
  assert.are.equal('{"c":' .. json .. ',"diff":1,"time":7}\n',
    single("json", type, optional):row({ v }, 7, 1))
end

describe("format scripts", function()
  describe("worked example (docs/value-text.md, Worked example)", function()
    local columns = {
      { name = "name", type = "str" },
      { name = "n", type = "int" },
      { name = "x", type = "float" },
      { name = "ok", type = "bool" },
      { name = "opt", type = "int", optional = true },
      { name = "raw", type = "bytes" },
      { name = "at", type = "datetime_naive" },
      { name = "utc", type = "datetime_utc" },
      { name = "dur", type = "duration" },
      { name = "tup", type = "tuple" },
      { name = "js", type = "json" },
    }
    local values = {
      'Al "x", y', 10, 0.5, true, null, "\0\255",
      1704164645500000000, 1704164645000000000, 1500000000, '[1,"a"]', '{"k":[1,2]}',
    }

    it("csv", function()
      local f = open("csv", columns)
      assert.are.equal("csv", f.extension)
      assert.are.equal("text/csv; charset=utf-8", f.content_type)
      assert.are.equal(
        '"name","n","x","ok","opt","raw","at","utc","dur","tup","js","time","diff"\n',
        f:header())
      assert.are.equal(
        '"Al ""x"", y","10","0.5","True","None","AP8=","2024-01-02T03:04:05.500000000",'
        .. '"2024-01-02T03:04:05.000000000+0000","1500000000","[1,""a""]","{""k"":[1,2]}",'
        .. '"1700000000000","1"\n',
        f:row(values, 1700000000000, 1))
      -- a retraction: the same line with diff -1 and the retracting minibatch's time
      assert.are.equal(
        '"Al ""x"", y","10","0.5","True","None","AP8=","2024-01-02T03:04:05.500000000",'
        .. '"2024-01-02T03:04:05.000000000+0000","1500000000","[1,""a""]","{""k"":[1,2]}",'
        .. '"1700000000002","-1"\n',
        f:row(values, 1700000000002, -1))
    end)

    it("json", function()
      local f = open("json", columns)
      assert.are.equal("json", f.extension)
      assert.are.equal("application/x-ndjson", f.content_type)
      assert.are.equal("", f:header())
      assert.are.equal(
        '{"name":"Al \\"x\\", y","n":10,"x":0.5,"ok":true,"opt":null,"raw":"AP8=",'
        .. '"at":"2024-01-02T03:04:05.500000000","utc":"2024-01-02T03:04:05.000000000+0000",'
        .. '"dur":1500000000,"tup":[1,"a"],"js":{"k":[1,2]},"diff":1,"time":1700000000000}\n',
        f:row(values, 1700000000000, 1))
      assert.are.equal(
        '{"name":"Al \\"x\\", y","n":10,"x":0.5,"ok":true,"opt":null,"raw":"AP8=",'
        .. '"at":"2024-01-02T03:04:05.500000000","utc":"2024-01-02T03:04:05.000000000+0000",'
        .. '"dur":1500000000,"tup":[1,"a"],"js":{"k":[1,2]},"diff":-1,"time":1700000000002}\n',
        f:row(values, 1700000000002, -1))
    end)
  end)

  describe("per type", function()
    it("int, including the int64 extremes", function()
      check("int", 0, "0", "0")
      check("int", -42, "-42", "-42")
      check("int", math.maxinteger, "9223372036854775807", "9223372036854775807")
      check("int", math.mininteger, "-9223372036854775808", "-9223372036854775808")
    end)

    it("float: Rust Debug in csv, serde_json/zmij in json", function()
      check("float", 0.5, "0.5", "0.5")
      check("float", 0.1, "0.1", "0.1")
      check("float", 1 / 3, "0.3333333333333333", "0.3333333333333333")
      check("float", 0.1 + 0.2, "0.30000000000000004", "0.30000000000000004")
      check("float", 123456789012345680.0, "1.2345678901234568e17", "1.2345678901234568e+17")
      check("float", 1.7976931348623157e308, "1.7976931348623157e308", "1.7976931348623157e+308")
      check("float", 1.0, "1.0", "1.0")
      check("float", 100.0, "100.0", "100.0")
      check("float", -1.5, "-1.5", "-1.5")
      check("float", 2.0 ^ 53, "9007199254740992.0", "9007199254740992.0")
      check("float", 1e15, "1000000000000000.0", "1000000000000000.0")
      check("float", 9999999999999998.0, "9999999999999998.0", "9999999999999998.0")
      check("float", 1e16, "1e16", "1e+16")
      check("float", 1.5e300, "1.5e300", "1.5e+300")
      check("float", 1e-4, "0.0001", "0.0001")
      check("float", 9.99e-5, "9.99e-5", "0.0000999")
      check("float", 1e-5, "1e-5", "0.00001")
      check("float", 1e-6, "1e-6", "1e-6")
      check("float", 1e-7, "1e-7", "1e-7")
      check("float", 1.5e-7, "1.5e-7", "1.5e-7")
      check("float", 5e-324, "5e-324", "5e-324")
      check("float", 0.0, "0.0", "0.0")
      check("float", -0.0, "-0.0", "-0.0")
      check("float", 0 / 0, "NaN", "null")
      check("float", math.huge, "inf", "null")
      check("float", -math.huge, "-inf", "null")
    end)

    it("float column given a Lua integer writes it as a float", function()
      check("float", 3, "3.0", "3.0")
    end)

    it("bool", function()
      check("bool", true, "True", "true")
      check("bool", false, "False", "false")
    end)

    it("str: quotes, separators, line breaks, control characters, unicode", function()
      check("str", "", "", '""')
      check("str", 'say "hi"', 'say ""hi""', '"say \\"hi\\""')
      check("str", "a,b;c", "a,b;c", '"a,b;c"')
      check("str", "one\r\ntwo\nthree", "one\r\ntwo\nthree", '"one\\r\\ntwo\\nthree"')
      check("str", "tab\there", "tab\there", '"tab\\there"')
      check("str", "\0\1\8\12\27\31\127", "\0\1\8\12\27\31\127",
        '"\\u0000\\u0001\\b\\f\\u001b\\u001f\127"')
      check("str", "back\\slash/", "back\\slash/", '"back\\\\slash/"')
      check("str", "żółć 中文 😀", "żółć 中文 😀", '"żółć 中文 😀"')
      check("str", "None", "None", '"None"')
    end)

    it("None in optional columns of every type", function()
      for _, t in ipairs { "int", "float", "bool", "str", "bytes", "pointer", "datetime_naive",
        "datetime_utc", "duration", "json", "tuple", "list", "array" } do
        check(t, null, "None", "null", true)
      end
    end)

    it("bytes: standard base64 with padding", function()
      check("bytes", "\0\255", "AP8=", '"AP8="')
      check("bytes", "", "", '""')
      check("bytes", "a", "YQ==", '"YQ=="')
      check("bytes", "ab", "YWI=", '"YWI="')
      check("bytes", "abc", "YWJj", '"YWJj"')
      check("bytes", "\0\0\0\255\254", "AAAA//4=", '"AAAA//4="')
      check("bytes", "\255\255\255\255", "/////w==", '"/////w=="')
      check("bytes", "hello world", "aGVsbG8gd29ybGQ=", '"aGVsbG8gd29ybGQ="')
      local long = string.rep("\0\255\1", 1000) -- 3000 bytes: more than one internal chunk
      local b64 = string.rep("AP8B", 1000)
      check("bytes", long, b64, '"' .. b64 .. '"')
    end)

    it("pointer", function()
      check("pointer", "^X1MXHYYG4YM0DB900V28XN5T4W", "^X1MXHYYG4YM0DB900V28XN5T4W",
        '"^X1MXHYYG4YM0DB900V28XN5T4W"')
    end)

    it("datetime_naive and datetime_utc: 9 fractional digits, before 1970 too", function()
      local cases = {
        { 0, "1970-01-01T00:00:00.000000000" },
        { 123456789, "1970-01-01T00:00:00.123456789" },
        { -1, "1969-12-31T23:59:59.999999999" },
        { -14182939877000000, "1969-07-20T20:17:40.123000000" },
        { -2208988800000000001, "1899-12-31T23:59:59.999999999" },
        { 951825600000000001, "2000-02-29T12:00:00.000000001" },
        { 1704164645500000000, "2024-01-02T03:04:05.500000000" },
        { math.mininteger, "1677-09-21T00:12:43.145224192" },
        { math.maxinteger, "2262-04-11T23:47:16.854775807" },
      }
      for _, c in ipairs(cases) do
        check("datetime_naive", c[1], c[2], '"' .. c[2] .. '"')
        check("datetime_utc", c[1], c[2] .. "+0000", '"' .. c[2] .. '+0000"')
      end
    end)

    it("duration: integer nanoseconds", function()
      check("duration", 0, "0", "0")
      check("duration", 1500000000, "1500000000", "1500000000")
      check("duration", -1, "-1", "-1")
      check("duration", 31536000000000000, "31536000000000000", "31536000000000000")
      check("duration", math.maxinteger, "9223372036854775807", "9223372036854775807")
      check("duration", math.mininteger, "-9223372036854775808", "-9223372036854775808")
    end)

    it("json: compact text in csv, embedded in json", function()
      check("json", '{"k":[1,2]}', '{""k"":[1,2]}', '{"k":[1,2]}')
      check("json", '"text"', '""text""', '"text"')
      check("json", '{"a":"x\\"y"}', '{""a"":""x\\""y""}', '{"a":"x\\"y"}')
      check("json", "[1,2.5,null]", "[1,2.5,null]", "[1,2.5,null]")
      check("json", "null", "null", "null")
      check("json", "123", "123", "123")
    end)

    it("tuple, list and array: JSON text", function()
      check("tuple", '[1,"a",null]', '[1,""a"",null]', '[1,"a",null]')
      check("list", "[1,2,3]", "[1,2,3]", "[1,2,3]")
      check("array", '{"shape":[2,2],"elements":[1,2,3,4]}',
        '{""shape"":[2,2],""elements"":[1,2,3,4]}', '{"shape":[2,2],"elements":[1,2,3,4]}')
    end)
  end)

  describe("rows", function()
    it("quote and escape column names in the header and the keys", function()
      local columns = { { name = 'a"b', type = "int" }, { name = "naïve,x", type = "str" } }
      local c = open("csv", columns)
      assert.are.equal('"a""b","naïve,x","time","diff"\n', c:header())
      assert.are.equal('"1","z","2","1"\n', c:row({ 1, "z" }, 2, 1))
      local j = open("json", columns)
      assert.are.equal('{"a\\"b":1,"naïve,x":"z","diff":1,"time":2}\n', j:row({ 1, "z" }, 2, 1))
    end)

    it("write retractions with diff -1", function()
      local columns = { { name = "k", type = "str" }, { name = "v", type = "float", optional = true } }
      local c = open("csv", columns)
      local j = open("json", columns)
      assert.are.equal('"x","1.0","10","1"\n', c:row({ "x", 1.0 }, 10, 1))
      assert.are.equal('"x","1.0","12","-1"\n', c:row({ "x", 1.0 }, 12, -1))
      assert.are.equal('"x","None","12","1"\n', c:row({ "x", null }, 12, 1))
      assert.are.equal('{"k":"x","v":1.0,"diff":1,"time":10}\n', j:row({ "x", 1.0 }, 10, 1))
      assert.are.equal('{"k":"x","v":1.0,"diff":-1,"time":12}\n', j:row({ "x", 1.0 }, 12, -1))
      assert.are.equal('{"k":"x","v":null,"diff":1,"time":12}\n', j:row({ "x", null }, 12, 1))
    end)
  end)

  describe("the TSV example format, given by path", function()
    it("writes PostgreSQL COPY text escapes and \\N for None", function()
      local f = open(TSV, {
        { name = "name", type = "str", optional = true },
        { name = "n", type = "int" },
        { name = "x", type = "float" },
        { name = "ok", type = "bool" },
        { name = "raw", type = "bytes" },
        { name = "at", type = "datetime_utc" },
      })
      assert.are.equal("tsv", f.extension)
      assert.are.equal("text/tab-separated-values; charset=utf-8", f.content_type)
      assert.are.equal("name\tn\tx\tok\traw\tat\ttime\tdiff\n", f:header())
      assert.are.equal(
        'a\\tb\\nc\\\\d\\re "q"\t-5\t1e16\tTrue\tAP8=\t2024-01-02T03:04:05.000000000+0000\t42\t1\n',
        f:row({ 'a\tb\nc\\d\re "q"', -5, 1e16, true, "\0\255", 1704164645000000000 }, 42, 1))
      assert.are.equal("\\N\t0\t0.5\tFalse\t\t1970-01-01T00:00:00.000000000+0000\t43\t-1\n",
        f:row({ null, 0, 0.5, false, "", 0 }, 43, -1))
    end)
  end)

  describe("sandbox", function()
    local function refused(body, name)
      local path = script(body)
      local msg = open_failure(path, { { name = "c", type = "int" } })
      os.remove(path)
      assert.is_not_nil(msg, "the script should have been refused")
      assert.truthy(msg:find(name, 1, true), "message does not name " .. name .. ": " .. msg)
    end

    it("has no os.execute", function()
      refused('os.execute("true")\nreturn { row = function() return "" end }', "execute")
    end)

    it("has no io.open", function()
      refused('io.open("/etc/passwd")\nreturn { row = function() return "" end }', "io")
    end)

    it("has no require", function()
      refused('require("os")\nreturn { row = function() return "" end }', "require")
    end)

    it("stops a row that reaches for io", function()
      local path = script([[
        return { row = function(values) return io.open("/etc/passwd"):read("a") end }]])
      local f = open(path, { { name = "c", type = "int" } })
      os.remove(path)
      local msg = row_failure(f, { 1 }, 1, 1)
      assert.is_not_nil(msg)
      assert.truthy(msg:find("io", 1, true), msg)
    end)
  end)

  describe("type checks", function()
    it("refuse a value of the wrong type, naming the column", function()
      local f = open("csv", { { name = "n", type = "int" }, { name = "count_col", type = "int" } })
      local msg = row_failure(f, { 1, "seven" }, 1, 1)
      assert.is_not_nil(msg)
      assert.truthy(msg:find("count_col", 1, true), msg)
      msg = row_failure(open("json", { { name = "when", type = "datetime_naive" } }), { "2024" }, 1, 1)
      assert.is_not_nil(msg)
      assert.truthy(msg:find("when", 1, true), msg)
    end)

    it("fmt.csv_row names the column index, its type and what it found", function()
      local path = script([[
        return { row = function(values, time, diff)
          return fmt.csv_row(values, { "str", "int" }, time, diff)
        end }]])
      local f = open(path, { { name = "a", type = "str" }, { name = "b", type = "str" } })
      os.remove(path)
      local msg = row_failure(f, { "x", "y" }, 1, 1)
      assert.is_not_nil(msg)
      assert.truthy(msg:find("column 2 (int)", 1, true), msg)
      assert.truthy(msg:find("string", 1, true), msg)
    end)

    it("fmt.json_row names the column", function()
      local path = script([[
        return { row = function(values, time, diff)
          return fmt.json_row(values, { "a", "b_col" }, { "str", "bool" }, time, diff)
        end }]])
      local f = open(path, { { name = "a", type = "str" }, { name = "b", type = "int" } })
      os.remove(path)
      local msg = row_failure(f, { "x", 1 }, 1, 1)
      assert.is_not_nil(msg)
      assert.truthy(msg:find("b_col", 1, true), msg)
      assert.truthy(msg:find("bool", 1, true), msg)
    end)

    it("refuse an unknown column type", function()
      local msg = open_failure("csv", { { name = "d", type = "decimal" } })
      assert.is_not_nil(msg)
      assert.truthy(msg:find("decimal", 1, true), msg)
    end)
  end)

  describe("fmt helpers", function()
    -- run a tiny format script whose row() returns the helper's result
    local function eval(expr, ...)
      local path = script("return { row = function(v) return " .. expr .. " end }")
      local f = open(path, { { name = "v", type = "str" } })
      os.remove(path)
      local out = f:row({ ... }, 1, 1)
      return out
    end

    it("json_string, csv_quote, csv_cell, json_value", function()
      assert.are.equal('"a\\"\\\\\\u0000\\t/é"', eval("fmt.json_string(v[1])", 'a"\\\0\t/é'))
      assert.are.equal('"a""b"', eval("fmt.csv_quote(v[1])", 'a"b'))
      assert.are.equal("'it''s'", eval("fmt.csv_quote(v[1], \"'\")", "it's"))
      assert.are.equal("None", eval("fmt.csv_cell(fmt.null, 'int')", "x"))
      assert.are.equal("1e16", eval("fmt.csv_cell(1e16, 'float')", "x"))
      assert.are.equal("a\"b", eval("fmt.csv_cell(v[1], 'str')", 'a"b'))
      assert.are.equal('"AP8="', eval("fmt.json_value(v[1], 'bytes')", "\0\255"))
      assert.are.equal("1e+16", eval("fmt.json_float(1e16)", "x"))
      assert.are.equal("9.99e-5", eval("fmt.float(9.99e-5)", "x"))
      assert.are.equal("-9223372036854775808", eval("fmt.int(math.mininteger)", "x"))
      assert.are.equal("1969-12-31T23:59:59.999999999+0000", eval("fmt.datetime(-1, true)", "x"))
      assert.are.equal("AP8=", eval("fmt.base64(v[1])", "\0\255"))
    end)

    it("csv_row takes a separator", function()
      assert.are.equal('"a";"1.5";"7";"-1"\n',
        eval("fmt.csv_row({v[1], 1.5}, {'str', 'float'}, 7, -1, ';')", "a"))
    end)
  end)
end)
