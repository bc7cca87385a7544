-- formats/json.lua - JSON Lines exactly as Pathway's pw.io.jsonlines.write /
-- pw.io.fs.write(format="json") writes them: one compact object per line with the
-- columns in order, then "diff", then "time". No header.
local names, types -- set by init, used by row

return {
  extension = "json",
  content_type = "application/x-ndjson",

  init = function(columns)
    names, types = {}, {}
    for i, c in ipairs(columns) do
      fmt.json_value(fmt.null, c.type) -- raises on a type fmt cannot write
      names[i] = c.name
      types[i] = c.type
    end
  end,

  row = function(values, time, diff)
    return fmt.json_row(values, names, types, time, diff)
  end,
}
