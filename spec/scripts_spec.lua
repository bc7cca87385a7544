-- Format scripts: loading, the restricted environment, and errors that name the problem.
local s3sink = require "s3sink"
local h = require "helpers"

local COLS = { { name = "id", type = "int" }, { name = "name", type = "str" } }

local function script(text)
  return h.write_file(h.tmpname(".lua"), text)
end

local function formatter(path)
  return s3sink.formatter { format = path, columns = COLS }
end

describe("format scripts", function()
  it("report a syntax error with the file and line", function()
    local path = script("return {\n  row = function(v, t, d)\n    return 'x' ..\n  end\n}\n")
    local f, err, code = formatter(path)
    assert.is_nil(f)
    assert.equal("Lua script error", code)
    assert.matches("cannot load format script: " .. path:gsub("%p", "%%%0") .. ":4:", err)
    os.remove(path)
  end)

  it("report an error raised while loading, with a traceback", function()
    local path = script("local x = nil\nreturn x.field\n")
    local f, err = formatter(path)
    assert.is_nil(f)
    assert.matches(":2: attempt to index a nil value", err)
    assert.matches("stack traceback", err)
    os.remove(path)
  end)

  it("must return a table with a row function", function()
    local path = script("return 42\n")
    local _, err = formatter(path)
    assert.matches("must return a table, not a number", err)
    os.remove(path)
    path = script("return {}\n")
    _, err = formatter(path)
    assert.matches("must have a function 'row%(values, time, diff%)'", err)
    os.remove(path)
  end)

  it("cannot reach os.execute, io, require, load or dofile", function()
    for _, expr in ipairs { "os.execute('true')", "io.open('/etc/passwd')", "require('cjson')",
      "load('return 1')", "dofile('/dev/null')", "package.loaded", "debug.traceback()" } do
      local path = script("return { row = function() return '' end, init = function() local _ = " .. expr .. " end }\n")
      local f, err = formatter(path)
      assert.is_nil(f, expr)
      assert.is_truthy(err:find("attempt to index a nil value", 1, true)
        or err:find("attempt to call a nil value", 1, true), err)
      os.remove(path)
    end
  end)

  it("may use string, table, math, utf8, os.date and fmt", function()
    local path = script([[
      return { row = function(v, t, d)
        return table.concat({ string.upper(v[2]), math.max(v[1], 0), utf8.char(233),
          os.date("!%Y", 0), fmt.int(t) }, "|") .. "\n"
      end }
    ]])
    local f = assert(formatter(path))
    assert.equal("ABC|5|é|1970|7\n", f:row({ 5, "abc" }, 7, 1))
    os.remove(path)
  end)

  it("report a runtime error in row() naming the script and the row, without crashing", function()
    local path = script("return { row = function(v) error('bad value ' .. v[2]) end }\n")
    local f = assert(formatter(path))
    local ok, err = f:row({ 3, "zz" }, 10, -1)
    assert.is_nil(ok)
    assert.matches("format script " .. path:gsub("%p", "%%%0") .. " failed on row %(3, \"zz\"%) at time 10, diff %-1", err)
    assert.matches("bad value zz", err)
    -- the formatter keeps working after an error
    assert.is_nil((f:row({ 4, "yy" }, 12, 1)))
    os.remove(path)
  end)

  it("stop a runaway script with an instruction budget", function()
    local path = script("return { row = function() while true do end end }\n")
    local f = assert(formatter(path))
    local ok, err = f:row({ 1, "a" }, 2, 1)
    assert.is_nil(ok)
    assert.matches("instruction budget", err)
    os.remove(path)
  end)

  it("require row() to return a string", function()
    local path = script("return { row = function() return 12 end }\n")
    local f = assert(formatter(path))
    local ok, err = f:row({ 1, "a" }, 2, 1)
    assert.is_nil(ok)
    assert.matches("row%(%) must return a string, not a number", err)
    os.remove(path)
  end)

  it("may refuse column types in init()", function()
    local path = script([[
      return {
        init = function(cols)
          for _, c in ipairs(cols) do
            if c.type ~= "int" then error("column " .. c.name .. ": only int is supported", 0) end
          end
        end,
        row = function() return "" end,
      }
    ]])
    local _, err = formatter(path)
    assert.matches("refused the columns: column name: only int is supported", err)
    os.remove(path)
  end)

  it("name a missing script file", function()
    local _, err = formatter("/nonexistent/fmt.lua")
    assert.matches("cannot open format script '/nonexistent/fmt.lua': No such file", err)
  end)

  it("name an unknown bundled format and list the bundled ones", function()
    local _, err = formatter("xml")
    assert.matches("unknown format 'xml': use one of 'csv', 'json'", err)
  end)
end)

describe("columns", function()
  it("reject an unsupported type", function()
    local _, err = s3sink.formatter { format = "csv", columns = { { name = "a", type = "decimal" } } }
    assert.matches("column 'a' has unsupported type 'decimal'", err)
  end)

  it("reject the names time and diff", function()
    local _, err = s3sink.formatter { format = "csv", columns = { { name = "time", type = "int" } } }
    assert.matches("column 'time' clashes", err)
  end)

  it("of type any take every kind of value, each written as its own type", function()
    local cols = { { name = "id", type = "int" }, { name = "v", type = "any" } }
    local csv = assert(s3sink.formatter { format = "csv", columns = cols })
    local json = assert(s3sink.formatter { format = "json", columns = cols })
    local cases = {
      { 7, '"1","7","2","1"\n', '{"id":1,"v":7,"diff":1,"time":2}\n' },
      { 1.5, '"1","1.5","2","1"\n', '{"id":1,"v":1.5,"diff":1,"time":2}\n' },
      { 1e16, '"1","1e16","2","1"\n', '{"id":1,"v":1e+16,"diff":1,"time":2}\n' },
      { true, '"1","True","2","1"\n', '{"id":1,"v":true,"diff":1,"time":2}\n' },
      { 'a "b"', '"1","a ""b""","2","1"\n', '{"id":1,"v":"a \\"b\\"","diff":1,"time":2}\n' },
      { s3sink.null, '"1","None","2","1"\n', '{"id":1,"v":null,"diff":1,"time":2}\n' },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], csv:row({ 1, c[1] }, 2, 1))
      assert.equal(c[3], json:row({ 1, c[1] }, 2, 1))
    end
    -- a user format sees each value's type
    local path = script("return { row = function(v, t, d, types) return table.concat(types, ',') .. '\\n' end }\n")
    local f = assert(s3sink.formatter { format = path, columns = cols })
    assert.equal("int,float\n", f:row({ 1, 2.5 }, 2, 1))
    assert.equal("int,str\n", f:row({ 1, "x" }, 2, 1))
    assert.equal("int,int\n", f:row({ 1, 3 }, 2, 1))
    os.remove(path)
  end)

  it("check each value against its column", function()
    local f = assert(s3sink.formatter { format = "csv", columns = COLS })
    assert.has_error(function() f:row({ "x", "a" }, 2, 1) end)
    local ok, err = f:row({ s3sink.null, "a" }, 2, 1)
    assert.is_nil(ok)
    assert.matches("column 'id' holds int values but got null: declare the column optional", err)
  end)
end)
