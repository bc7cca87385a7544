-- Default object naming policy.
--
-- Keys look like  <prefix>20261125T002556.123Z-0000000042[-<writer_id>].<extension>
-- the UTC time of the flush (milliseconds) and a sequence number, both zero-padded, so keys
-- sort lexicographically in creation order. The sequence continues from the last key
-- found under the prefix (ctx.last_key: listed when the sink opens, then the last upload),
-- and the time never goes backwards from that key's, so a restarted writer, or one whose
-- clock stepped back, never reuses or precedes an earlier key.

local PATTERN = "(%d%d%d%d%d%d%d%dT%d%d%d%d%d%d%.%d%d%dZ)%-(%d+)[^/]*$"

local function name(ctx)
  local ms = ctx.flush_time_ms
  local stamp = os.date("!%Y%m%dT%H%M%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
  local sequence = ctx.sequence
  if ctx.last_key then
    local last_stamp, last_sequence = ctx.last_key:sub(#ctx.prefix + 1):match(PATTERN)
    if last_stamp then
      if last_stamp > stamp then stamp = last_stamp end
      sequence = math.max(sequence, tonumber(last_sequence) + 1)
    end
  end
  local writer = ctx.writer_id and ("-" .. ctx.writer_id) or ""
  return string.format("%s%s-%010d%s.%s", ctx.prefix, stamp, sequence, writer, ctx.extension)
end

return { name = name }
