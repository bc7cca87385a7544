-- formats/csv.lua - CSV exactly as Pathway's pw.io.csv.write / pw.io.fs.write(format="csv")
-- writes it: a header of the column names then "time" and "diff", every field quoted with
-- inner quotes doubled, LF line endings.
local types -- column types, in order: set by init, used by row

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
    types = {}
    for i, c in ipairs(columns) do
      fmt.csv_cell(fmt.null, c.type) -- raises on a type fmt cannot write
      types[i] = c.type
    end
  end,

  header = header,

  row = function(values, time, diff)
    return fmt.csv_row(values, types, time, diff)
  end,
}
