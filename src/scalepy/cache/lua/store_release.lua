-- Store a loaded entry and release its load lock, in one step.
--
-- KEYS[1]  the entry
-- KEYS[2]  its load lock, in the same hash slot
-- ARGV[1]  the entry's bytes
-- ARGV[2]  the entry's time to live, in milliseconds
-- ARGV[3]  the lock's token: the lock is deleted only if it still holds it (a
--          holder whose lock expired must not free a newer holder's)
--
-- Returns 1 when the lock was ours and is gone, 0 when it had expired or moved on.
-- The entry is written first: a process that finds the lock free finds the entry.

redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then
  return redis.call('DEL', KEYS[2])
end
return 0
