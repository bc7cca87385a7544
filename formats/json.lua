-- formats/json.lua - JSON Lines exactly as Pathway's pw.io.jsonlines.write /
-- pw.io.fs.write(format="json") writes them: one compact object per line with the
-- columns in order, then "diff", then "time". No header.
local names -- set by init, used by row

return {
  extension = "json",
  content_type = "application/x-ndjson",

  init = function(columns)
    names = {}
    for i, c in ipairs(columns) do
      if c.type ~= "any" then fmt.json_value(fmt.null, c.type) end -- raises on a type fmt cannot write
      names[i] = c.name
    end
  end,

  -- types: each value's type in this row (an "any" column's values bring their own)
  row = function(values, time, diff, types)
    return fmt.json_row(values, names, types, time, diff)
  end,
}
