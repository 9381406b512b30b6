-- Read one cache entry and its remaining time to live, in one round trip.
--
-- KEYS[1]  the entry
--
-- Returns nil when the entry is absent or has no expiry (not one of ours),
-- else {bytes, milliseconds left}. Freshness is judged by the reader from the
-- time left, never from a clock, so replicas with skewed clocks agree.

local value = redis.call('GET', KEYS[1])
if not value then
  return nil
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  return nil
end
return {value, left}
