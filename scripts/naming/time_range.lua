-- A naming policy that puts each object's time range in its key, under its partition's
-- folder (naming = "time_range"):
--
--   <prefix>[<partition path>/]<flush stamp>-<sequence>[-<writer_id>]_<from>_<to>.<extension>
--
-- <from> and <to> are the UTC stamps of the earliest and latest event time of the object's
-- rows (the time_column: ctx.min_event_time_ns, ctx.max_event_time_ns), or, without a
-- time_column or when all of them are null, "t" and the engine times of its first and
-- last row. A reader can skip the objects outside a time window by their names alone.
-- With partition_by, <partition path> is ctx.partition_path ("country=FR/city=Paris").
--
-- Keys increase in each folder: the flush stamp (which the sink never lets go back within
-- a run) then the sequence, continued from the folder's last key when the sink knows it
-- (ctx.last_key). Without partition_by the sink lists the prefix when it opens, so the
-- sequence continues after an earlier run's; owns() and start_after() work as in the
-- default policy.

local SHAPE = "^(%d%d%d%d%d%d%d%dT%d%d%d%d%d%d%.%d%d%dZ)%-(%d+)[^/]*$"
local LOOK_BACK_MS = 24 * 3600 * 1000

local function stamp(ms)
  return os.date("!%Y%m%dT%H%M%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

local function folder(ctx)
  return ctx.partition_path and (ctx.prefix .. ctx.partition_path .. "/") or ctx.prefix
end

local function range(ctx)
  if ctx.min_event_time_ns then
    return stamp(ctx.min_event_time_ns // 1000000) .. "_" .. stamp(ctx.max_event_time_ns // 1000000)
  end
  return string.format("t%d_t%d", ctx.first_time, ctx.last_time)
end

local function name(ctx)
  local dir = folder(ctx)
  local current, sequence = stamp(ctx.flush_time_ms), ctx.sequence
  if ctx.last_key and ctx.last_key:sub(1, #dir) == dir then
    local last_stamp, last_sequence = ctx.last_key:sub(#dir + 1):match(SHAPE)
    if last_stamp then
      if last_stamp > current then current = last_stamp end
      sequence = math.max(sequence, tonumber(last_sequence) + 1)
    end
  end
  local writer = ctx.writer_id and ("-" .. ctx.writer_id) or ""
  return string.format("%s%s-%010d%s_%s.%s", dir, current, sequence, writer, range(ctx),
    ctx.extension)
end

local function owns(ctx)
  return ctx.key:sub(#ctx.prefix + 1):match(SHAPE) ~= nil
end

local function start_after(ctx)
  return ctx.prefix .. stamp(math.max(0, ctx.now_ms - LOOK_BACK_MS))
end

return { name = name, owns = owns, start_after = start_after }
