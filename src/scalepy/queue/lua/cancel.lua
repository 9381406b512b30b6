-- Cancel a job: at once if it waits, at the next heartbeat of its worker if it runs.
--
-- ARGV[2]  job id
-- ARGV[3]  result TTL, ms
-- Returns the job's state afterwards ('cancelled', or 'active' while its worker has
-- yet to stop it), its end state if it had ended already, or false if it is unknown.

local id = ARGV[2]
local ttl = tonumber(ARGV[3])
local job = job_key(id)
local f = redis.call('HMGET', job, 'state', 'prio', 'ukey')
local state = f[1]
if state == 'queued' then
  redis.call('LREM', ready_key(f[2]), 1, id)
elseif state == 'scheduled' then
  redis.call('ZREM', SCHEDULED, id)
elseif state == 'active' then
  redis.call('HSET', job, 'cancel', '1')
  return state
else
  return state
end
settle(id, 'cancelled', now_ms(), ttl, f[3], 'error', 'cancelled before it ran')
finish()
return 'cancelled'
