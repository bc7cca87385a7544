-- bench/lua_csv.lua - the bundled CSV format with a Lua row() instead of its native
-- encoder: what a user's own format script costs per row (build/core_bench's format
-- argument). Same bytes as formats/csv.lua.
local function header(columns)
  local cells = {}
  for i, c in ipairs(columns) do cells[i] = fmt.csv_quote(c.name) end
  cells[#cells + 1] = '"time"'
  cells[#cells + 1] = '"diff"'
  return table.concat(cells, ",") .. "\n"
end

return {
  extension = "csv",
  header = header,
  row = function(values, time, diff, types) return fmt.csv_row(values, types, time, diff) end,
}
