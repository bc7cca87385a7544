-- The script sandbox: pattern matching that counts its steps (checked against the
-- interpreter's own string library), a budget that no script can catch, and string
-- methods that belong to each script. No server needed.
local s3sink = require "s3sink"
local h = require "helpers"

-- Runs op(s, p, a3, a4) and serializes what it returns or raises. The same source runs
-- here (the interpreter's string library) and inside a format script (the sandbox's).
local HARNESS = [[
local function arg(x)
  if x == "" then return nil end
  local tag, v = x:sub(1, 1), x:sub(3)
  if tag == "i" then return math.tointeger(tonumber(v)) end
  if tag == "b" then return v == "true" end
  if tag == "t" then return { a = "<A>", b = false, ["1"] = 11, x = "[x]" } end
  if tag == "f" then return function(c, ...) if c == "b" then return nil end return "{" .. c .. "}" end end
  return v
end

local function serialize(ok, ...)
  local out = { ok and "ok" or "error" }
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    out[#out + 1] = math.type(v) or type(v)
    out[#out + 1] = tostring(v)
  end
  return table.concat(out, "|")
end

local function run(op, s, p, a3, a4)
  a3, a4 = arg(a3), arg(a4)
  if op == "gmatch" then
    return serialize(pcall(function()
      local got = {}
      for a, b in string.gmatch(s, p, a3) do got[#got + 1] = tostring(a) .. "," .. tostring(b) end
      return table.concat(got, ";")
    end))
  elseif op == "find" then return serialize(pcall(string.find, s, p, a3, a4))
  elseif op == "match" then return serialize(pcall(string.match, s, p, a3))
  else return serialize(pcall(string.gsub, s, p, a3, a4)) end
end
]]

local native_run = assert(load(HARNESS .. "\nreturn run"))()

local function sandbox_formatter()
  local path = h.write_file(h.tmpname(".lua"), HARNESS .. [[
return { row = function(values) return run(values[1], values[2], values[3], values[4], values[5]) end }
]])
  local f = assert(s3sink.formatter {
    format = path,
    columns = { { name = "op", type = "str" }, { name = "s", type = "str" },
      { name = "p", type = "str" }, { name = "a3", type = "str" }, { name = "a4", type = "str" } },
  })
  os.remove(path)
  return f
end

local function script_formatter(source)
  local path = h.write_file(h.tmpname(".lua"), source)
  local f = assert(s3sink.formatter { format = path, columns = { { name = "x", type = "str" } } })
  os.remove(path)
  return f
end

describe("sandboxed pattern matching", function()
  local f = sandbox_formatter()
  -- error positions name the chunk, which differs: compare what follows them
  local function unplaced(r) return (r:gsub("^error|string|[^|]-:%d+: ", "error|string|")) end
  local function same(op, s, p, a3, a4)
    local want = unplaced(native_run(op, s, p, a3 or "", a4 or ""))
    local got = unplaced(assert(f:row({ op, s, p, a3 or "", a4 or "" }, 0, 1)))
    if got ~= want then
      error(string.format("%s(%q, %q, %q, %q):\n  Lua:     %s\n  sandbox: %s", op, s, p,
        a3 or "", a4 or "", want, got), 2)
    end
  end

  it("agrees with Lua's string library on chosen cases", function()
    local cases = {
      { "find", "hello world", "o w" }, { "find", "hello", "l+" }, { "find", "a.b", ".", "", "b:true" },
      { "find", "abc", "b", "i:-1" }, { "find", "abc", "", "i:10" }, { "find", "abc", "", "i:4" },
      { "find", "abc", "^b" }, { "find", "abc", "c$" }, { "find", "a$c", "$c" },
      { "match", "key = value", "(%w+)%s*=%s*(%w+)" }, { "match", "  x", "()x()" },
      { "match", "THE (quick) fox", "%((%a+)%)" }, { "match", "f(a(b)c)d", "%b()" },
      { "match", "THE (quick) fox", "%f[%a]%a+" }, { "match", "hello", "(h)(e)(l)%3" },
      { "match", "aaa", "a-" }, { "match", "aaa", "a-$" }, { "match", "xyz", "[%a-z]+" },
      { "match", "]]x", "[]]+" }, { "match", "a-b", "[a%-]+" }, { "match", "x", "[^]x]" },
      { "match", "\0a\0", "%z" }, { "match", "a\0b", "a%zb" }, { "match", "abc", "(a)(b)(c)", "i:2" },
      { "gsub", "hello world", "o", "0" }, { "gsub", "hello world", "(o)", "[%1%1]" },
      { "gsub", "abc", "", "-" }, { "gsub", "abc", "%w", "%0%0", "i:2" },
      { "gsub", "abc", "b*", "X" }, { "gsub", "a b c", "%a", "t" }, { "gsub", "a b x", "%a", "f" },
      { "gsub", "abc", "^a", "A" }, { "gsub", "hello", "l", "%%" }, { "gsub", "hello", "l", "%2" },
      { "gsub", "hello", "l", "%" }, { "gsub", "abc", "()", "%1" }, { "gsub", "abc", "b", "i:7" },
      { "gmatch", "one two  three", "%a+" }, { "gmatch", "k=v, a=b", "(%w+)=(%w+)" },
      { "gmatch", "abc", "" }, { "gmatch", "aaa", "a*" }, { "gmatch", "abcabc", "b", "i:3" },
      { "gmatch", "^a^a", "^a" },
      -- errors, with Lua's messages
      { "find", "abc", "%" }, { "find", "abc", "[a" }, { "find", "abc", "(a" }, { "find", "abc", "a)" },
      { "find", "abc", "%b" }, { "find", "abc", "%f" }, { "find", "abc", "%1" }, { "find", "abc", "%0" },
      { "match", "abc", "(()" }, { "gsub", "abc", "a", "b:true" },
      { "find", "abc", string.rep("(", 40) .. "a" .. string.rep(")", 40) },
      { "match", string.rep("a", 300), string.rep("a?", 300) .. string.rep("a", 300) },
    }
    for _, c in ipairs(cases) do same(c[1], c[2], c[3], c[4], c[5]) end
  end)

  it("agrees with Lua's string library on 4000 random patterns", function()
    local items = { "a", "b", "x", ".", "%a", "%d", "%s", "%w", "%p", "%u", "%l", "%x", "%c",
      "%g", "%A", "%S", "%.", "%%", "[ab]", "[^a]", "[a-c]", "[%a_]", "[]]", "[^]]", "[%]a]",
      "()", "(", ")", "%b()", "%bab", "%f[%w]", "%f[%s]", "%1", "%2", "-", "$", "^" }
    local reps = { "", "", "", "*", "+", "-", "?" }
    local subject_chars = { "a", "b", "x", "(", ")", " ", "1", "-", ".", "%", "]", "Z", "\n", "_" }
    local ops = { "find", "match", "gsub", "gmatch" }
    local repls = { "s:<%0>", "s:%1", "s:[%1|%2]", "s:%%", "s:x", "t", "f", "i:3" }
    local rng = 12345
    local function rand(n) rng = (rng * 1103515245 + 12345) % 2147483648; return rng % n + 1 end
    for _ = 1, 4000 do
      local p = {}
      if rand(5) == 1 then p[1] = "^" end
      for _ = 1, rand(6) do p[#p + 1] = items[rand(#items)] .. reps[rand(#reps)] end
      local s = {}
      for _ = 1, rand(12) - 1 do s[#s + 1] = subject_chars[rand(#subject_chars)] end
      local op = ops[rand(#ops)]
      local a3 = op == "gsub" and repls[rand(#repls)] or (rand(4) == 1 and ("i:" .. (rand(9) - 4)) or "")
      local a4 = op == "gsub" and (rand(3) == 1 and ("i:" .. rand(3)) or "") or ""
      same(op, table.concat(s), table.concat(p), a3, a4)
    end
  end)
end)

describe("the script budget", function()
  local function stopped(source, value)
    local f = script_formatter(source)
    local t0 = os.clock()
    local ok, err = f:row({ value or "x" }, 0, 1)
    assert.is_nil(ok)
    assert.matches("exceeded its instruction budget", err)
    assert.is_true(os.clock() - t0 < 30, "the budget took too long to stop the script")
    return f
  end

  it("cannot be caught with pcall", function()
    local f = stopped("return { row = function() while true do pcall(function() while true do end end) end end }")
    -- the next call gets a fresh budget
    assert.is_nil(f:row({ "x" }, 0, 1))
  end)

  it("cannot be caught with xpcall, nor by its message handler", function()
    stopped([[return { row = function()
      while true do xpcall(function() while true do end end, function(m) while true do end end) end
    end }]])
  end)

  it("cannot be caught with an error handler that loops through pcall", function()
    stopped([[return { row = function()
      for _ = 1, 1e9 do local ok = pcall(error, "x") end
      while true do pcall(pcall, function() while true do end end) end
    end }]])
  end)

  it("stops a pattern that backtracks without end", function()
    stopped("return { row = function(v) return (v[1]:find(string.rep('a-', 12) .. 'b')) and 'y' or 'n' end }",
      string.rep("a", 200))
  end)

  it("stops gsub and gmatch that backtrack", function()
    stopped("return { row = function(v) return (string.gsub(v[1], string.rep('a*', 10) .. 'b', '')) end }",
      string.rep("a", 300))
    stopped([[return { row = function(v)
      local n = 0
      for _ in v[1]:gmatch(string.rep('a-', 10) .. 'b') do n = n + 1 end
      return tostring(n)
    end }]], string.rep("a", 300))
  end)

  it("cannot be escaped through a finalizer", function()
    local f = script_formatter([[return { row = function()
      setmetatable({}, { __gc = function() while true do end end })
    end }]])
    local ok, err = f:row({ "x" }, 0, 1)
    assert.is_nil(ok)
    assert.matches("__gc metamethods are not allowed", err)
  end)

  it("counts plain searches too", function()
    stopped([[return { row = function(v)
      local s = string.rep("a", 1e6)
      while true do s:find("b", 1, true) end
    end }]])
  end)

  it("leaves ordinary pattern work alone", function()
    local f = script_formatter([[return { row = function(v)
      local s = string.rep("key=value, ", 20000)
      local n = 0
      for k, val in s:gmatch("(%w+)=(%w+)") do n = n + 1 end
      return tostring(n) .. " " .. select(2, s:gsub("%s+", ""))
    end }]])
    assert.equal("20000 20000", f:row({ "x" }, 0, 1))
  end)
end)

describe("string methods", function()
  it("resolve to the running script's own string table", function()
    local f = script_formatter([[
      function string.shout(s) return s:upper() .. "!" end
      return { row = function(v) return v[1]:shout() end }]])
    assert.equal("HI!", f:row({ "hi" }, 0, 1))
    -- another script does not see the first one's addition
    local g = script_formatter("return { row = function(v) return tostring(v[1].shout) end }")
    assert.equal("nil", g:row({ "hi" }, 0, 1))
  end)

  it("keep the string metatable out of scripts' reach", function()
    local f = script_formatter("return { row = function(v) return tostring(getmetatable('')) end }")
    assert.equal("false", f:row({ "x" }, 0, 1))
  end)

  it("of a format and a naming script on one sink do not mix", function()
    local bucket, client = h.new_bucket()
    local fmt = h.write_file(h.tmpname(".lua"), [[
      string.upper = function() return "format's upper" end
      return { extension = "txt", row = function(v) return ("x"):upper() .. "\n" end }]])
    local naming = h.write_file(h.tmpname(".lua"), [[
      return { name = function(ctx) return ctx.prefix .. ("key"):upper() .. "." .. ctx.extension end }]])
    local cfg = h.config(bucket, { format = fmt, naming = naming, no_timer = true,
      columns = { { name = "x", type = "str" } } })
    local sink = assert(s3sink.sink(cfg))
    assert(sink:write({ "a" }, 2, 1))
    assert(sink:close())
    local objects = h.objects(client, "out/")
    assert.equal("out/KEY.txt", objects[1].key)
    assert.equal("format's upper\n", objects[1].body)
    os.remove(fmt)
    os.remove(naming)
  end)
end)
