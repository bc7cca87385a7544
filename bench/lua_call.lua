-- bench/lua_call.lua - a format whose Lua row() does no work: it returns the same line for
-- every row. build/core_bench measures with it what entering Lua costs per row (values
-- pushed, the protected call, the result copied), the most a batched row() (one call for
-- many rows) could save; bench/lua_csv.lua measures the whole per-row cost beside it.
return {
  extension = "csv",
  header = function() return '"time","diff"\n' end,
  row = function() return '"0","1"\n' end,
}
