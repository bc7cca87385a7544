-- examples/formats/changes.lua - an example format script: a change log in JSON Lines, one
-- line per change with what happened, when, and the row:
--   {"op":"insert","time":1700000000000,"row":{"id":1,"name":"alice"}}
-- "op" is "insert" for a row added (diff 1) and "delete" for a row removed (diff -1); an
-- update is a delete and an insert with the same time. Values are written as the bundled
-- json format writes them (fmt.json_value), so every column type works.
--
-- Use it by its path as the format, e.g. format = "examples/formats/changes.lua".

local keys = {} -- '"name":' of each column, made once by init

return {
  extension = "jsonl",
  content_type = "application/x-ndjson",

  -- called once with the columns, before anything else: prepare, or refuse them
  init = function(columns)
    for i, c in ipairs(columns) do
      keys[i] = fmt.json_string(c.name) .. ":"
      if c.type ~= "any" then fmt.json_value(fmt.null, c.type) end -- raises on a type fmt cannot write
    end
  end,

  -- no header: a JSON Lines object is its lines

  -- types[i]: the type of values[i] (the column's; an "any" column's values bring their own)
  row = function(values, time, diff, types)
    local cells = {}
    for i = 1, #types do
      cells[i] = keys[i] .. fmt.json_value(values[i], types[i])
    end
    return string.format('{"op":"%s","time":%s,"row":{%s}}\n', diff > 0 and "insert" or "delete",
      fmt.int(time), table.concat(cells, ","))
  end,
}
