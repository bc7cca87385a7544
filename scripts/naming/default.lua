-- Default object naming policy.
--
-- Keys look like  <prefix>20261125T002556.123Z-0000000042[-<writer_id>].<extension>
-- the UTC time of the flush (milliseconds) and a sequence number, both zero-padded, so keys
-- sort lexicographically in creation order. The sequence continues from the last key
-- found under the prefix (ctx.last_key: listed when the sink opens, then the last upload),
-- and the time never goes backwards from that key's, so a restarted writer, or one whose
-- clock stepped back, never reuses or precedes an earlier key.
--
-- Only keys of this shape count (owns): other objects under the prefix, such as
-- "_SUCCESS", "manifest.json" or a sub-folder, are left alone. When the sink opens it
-- lists the prefix from one day before the current time (start_after): every key that
-- could sort after a new one is still seen, even if the clock went back, and a long
-- history under the prefix is not listed again. The sequence starts over if the last
-- object is more than a day old; keys still increase, since their time does.

local SHAPE = "^(%d%d%d%d%d%d%d%dT%d%d%d%d%d%d%.%d%d%dZ)%-(%d+)[^/]*$"
local LOOK_BACK_MS = 24 * 3600 * 1000

local function stamp(ms)
  return os.date("!%Y%m%dT%H%M%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

local function name(ctx)
  local current = stamp(ctx.flush_time_ms)
  local sequence = ctx.sequence
  if ctx.last_key then
    local last_stamp, last_sequence = ctx.last_key:sub(#ctx.prefix + 1):match(SHAPE)
    if last_stamp then
      if last_stamp > current then current = last_stamp end
      sequence = math.max(sequence, tonumber(last_sequence) + 1)
    end
  end
  local writer = ctx.writer_id and ("-" .. ctx.writer_id) or ""
  return string.format("%s%s-%010d%s.%s", ctx.prefix, current, sequence, writer, ctx.extension)
end

local function owns(ctx)
  return ctx.key:sub(#ctx.prefix + 1):match(SHAPE) ~= nil
end

local function start_after(ctx)
  return ctx.prefix .. stamp(math.max(0, ctx.now_ms - LOOK_BACK_MS))
end

return { name = name, owns = owns, start_after = start_after }
