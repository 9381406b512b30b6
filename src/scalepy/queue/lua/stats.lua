-- Count a queue's jobs by state, in one consistent snapshot.
--
-- Returns {queued, scheduled, active, dead}.

local queued = 0
for _, level in ipairs(redis.call('ZRANGE', LEVELS, 0, -1)) do
  queued = queued + redis.call('LLEN', ready_key(level))
end
return {queued, redis.call('ZCARD', SCHEDULED), redis.call('ZCARD', LEASES),
  redis.call('ZCARD', DEAD)}
