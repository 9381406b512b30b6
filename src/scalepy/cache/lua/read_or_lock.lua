-- Read one cache entry and its remaining time to live; on a miss, take the
-- entry's load lock in the same step.
--
-- KEYS[1]  the entry
-- KEYS[2]  the entry's load lock, in the same hash slot
-- ARGV[1]  a fresh token to store in the lock
-- ARGV[2]  the lock's time to live, in milliseconds
--
-- Returns {bytes, milliseconds left} on a hit. On a miss (the entry is absent or
-- has no expiry, so not one of ours): 1 when the lock was taken for ARGV[1], 0
-- when another holder has it. Freshness is judged by the reader from the time
-- left, never from a clock, so replicas with skewed clocks agree. Taking the lock
-- here, not in a second round trip, makes an uncontended miss cost what a store
-- without a lock costs; a hit without the lock needs no script (PTTL, GET).

local value = redis.call('GET', KEYS[1])
if value then
  local left = redis.call('PTTL', KEYS[1])
  if left >= 0 then
    return {value, left}
  end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
