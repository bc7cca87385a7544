-- examples/formats/tsv.lua - an example format script: tab-separated values in the style
-- of PostgreSQL's COPY text format. A header line of the column names, then one line per
-- change; fields are separated by tabs, a backslash, tab, newline or carriage return in a
-- value is written as \\, \t, \n or \r, and a missing value (None) as \N. Values use
-- Pathway's CSV text (fmt.csv_cell): True/False, base64 bytes, ns durations, ...
--
-- Use it by giving its path wherever a format name goes (anything containing a '/' or
-- ending in ".lua" is read as a file), e.g. from Lua:
--   s3sink.formatter{ format = "examples/formats/tsv.lua", columns = { ... } }
-- or `format = "/etc/myapp/tsv.lua"` in the sink's configuration.
--
-- Format scripts run in a sandbox: `fmt` (value text as Pathway writes it), string, table,
-- math, utf8 and the safe base functions; no io, os.execute or require.

local escapes = { ["\\"] = "\\\\", ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r" }
local function escape(s)
  return (string.gsub(s, "[\\\t\n\r]", escapes))
end

local cells = {} -- reused by every row

return {
  extension = "tsv",
  content_type = "text/tab-separated-values; charset=utf-8",

  header = function(columns)
    local names = {}
    for i, c in ipairs(columns) do names[i] = escape(c.name) end
    names[#names + 1] = "time"
    names[#names + 1] = "diff"
    return table.concat(names, "\t") .. "\n"
  end,

  -- types[i]: the type of values[i] (the column's; an "any" column's values bring their own)
  row = function(values, time, diff, types)
    local n = #types
    for i = 1, n do
      local v = values[i]
      if v == fmt.null then
        cells[i] = "\\N"
      else
        cells[i] = escape(fmt.csv_cell(v, types[i]))
      end
    end
    cells[n + 1] = fmt.int(time)
    cells[n + 2] = fmt.int(diff)
    return table.concat(cells, "\t", 1, n + 2) .. "\n"
  end,
}
