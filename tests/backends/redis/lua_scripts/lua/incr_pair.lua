-- Adds ARGV[1] to two counters of one object and returns both totals.
-- KEYS[1], KEYS[2]: the counters (same hash tag, so one cluster slot).
local first = redis.call('INCRBY', KEYS[1], ARGV[1])
local second = redis.call('INCRBY', KEYS[2], ARGV[1])
return {first, second}
