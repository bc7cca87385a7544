-- bench/lua_csv.lua - the bundled CSV format with a Lua row() instead of its native
-- encoder: what a user's own format script costs per row (build/core_bench's format
-- argument). Same bytes as formats/csv.lua.
return {
  extension = "csv",
  header = function(columns)
    local names = {}
    for i, c in ipairs(columns) do names[i] = fmt.csv_quote(c.name) end
    return table.concat(names, ",") .. ',"time","diff"\n'
  end,
  row = function(values, time, diff, types) return fmt.csv_row(values, types, time, diff) end,
}
