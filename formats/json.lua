-- formats/json.lua - JSON Lines exactly as Pathway's pw.io.jsonlines.write /
-- pw.io.fs.write(format="json") writes them: one compact object per line with the
-- columns in order, then "diff", then "time". No header.
return {
  extension = "json",
  content_type = "application/x-ndjson",

  init = function(columns)
    for _, c in ipairs(columns) do
      if c.type ~= "any" then fmt.json_value(fmt.null, c.type) end -- raises on a type fmt cannot write
    end
  end,

  -- written in C from the host's values: what fmt.json_row(values, names, types, time,
  -- diff) returns, without a Lua call per row
  row = fmt.json_encoder {},
}
