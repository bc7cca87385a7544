-- formats/csv.lua - CSV exactly as Pathway's pw.io.csv.write / pw.io.fs.write(format="csv")
-- writes it: a header of the column names then "time" and "diff", every field quoted with
-- inner quotes doubled, LF line endings.

local function header(columns)
  local cells = {}
  for i, c in ipairs(columns) do cells[i] = fmt.csv_quote(c.name) end
  cells[#cells + 1] = '"time"'
  cells[#cells + 1] = '"diff"'
  return table.concat(cells, ",") .. "\n"
end

return {
  extension = "csv",
  content_type = "text/csv; charset=utf-8",

  init = function(columns)
    for _, c in ipairs(columns) do
      if c.type ~= "any" then fmt.csv_cell(fmt.null, c.type) end -- raises on a type fmt cannot write
    end
  end,

  header = header,

  -- written in C from the host's values: what fmt.csv_row(values, types, time, diff)
  -- returns, without a Lua call per row
  row = fmt.csv_encoder {},
}
