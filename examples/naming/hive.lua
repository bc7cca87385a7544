-- examples/naming/hive.lua - an example naming script: Hive-style partitions by upload time,
--   <prefix>dt=2026-01-05/hour=09/20260105T093012.345Z-0000000042[-<writer_id>].<extension>
-- Tools that read partitioned folders (Spark, Trino, DuckDB with hive_partitioning) see
-- `dt` and `hour` as columns; pw.io.s3.read of the prefix reads every object as usual.
--
-- Keys must increase and never repeat. They do here: the partition is a function of the
-- time in the key's name, so keys sort by that time, then by the sequence number. The time
-- never goes back from the last key's (a restarted writer, a clock stepped back), and the
-- sequence continues from it.
--
-- Use it by its path as the naming policy, e.g. naming = "examples/naming/hive.lua".

local SHAPE = "^dt=%d%d%d%d%-%d%d%-%d%d/hour=%d%d/(%d%d%d%d%d%d%d%dT%d%d%d%d%d%d%.%d%d%dZ)%-(%d+)[^/]*$"
local LOOK_BACK_MS = 24 * 3600 * 1000

-- "20260105T093012.345Z": UTC, to the millisecond; sorts as time does
local function stamp(ms)
  return os.date("!%Y%m%dT%H%M%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

-- "dt=2026-01-05/hour=09/" of a stamp
local function partition(s)
  return string.format("dt=%s-%s-%s/hour=%s/", s:sub(1, 4), s:sub(5, 6), s:sub(7, 8), s:sub(10, 11))
end

-- ctx: prefix, extension, sequence, flush_time_ms, first_time, last_time, rows, bytes,
-- writer_id (or nil), last_key (the greatest key of this policy under the prefix, or nil)
local function name(ctx)
  local current, sequence = stamp(ctx.flush_time_ms), ctx.sequence
  if ctx.last_key then
    local last_stamp, last_sequence = ctx.last_key:sub(#ctx.prefix + 1):match(SHAPE)
    if last_stamp then
      if last_stamp > current then current = last_stamp end
      sequence = math.max(sequence, tonumber(last_sequence) + 1)
    end
  end
  local writer = ctx.writer_id and ("-" .. ctx.writer_id) or ""
  return string.format("%s%s%s-%010d%s.%s", ctx.prefix, partition(current), current, sequence,
    writer, ctx.extension)
end

-- Keys of this shape are this policy's; others under the prefix (_SUCCESS, a manifest)
-- are ignored when the sink looks for the last key.
local function owns(ctx)
  return ctx.key:sub(#ctx.prefix + 1):match(SHAPE) ~= nil
end

-- The listing at open starts at the partition of a day ago, not at the first key ever.
local function start_after(ctx)
  return ctx.prefix .. partition(stamp(math.max(0, ctx.now_ms - LOOK_BACK_MS)))
end

return { name = name, owns = owns, start_after = start_after }
