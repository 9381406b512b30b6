-- Re-drive dead jobs: back to the end of their level's ready list with fresh retries
-- (and fresh put-backs for a task no worker knew).
--
-- ARGV[2..]  job ids; ids not in the dead-letter set are skipped
-- Returns how many jobs were re-queued.

local now = now_ms()
local count = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', DEAD, id) == 1 then
    local job = job_key(id)
    local level = redis.call('HGET', job, 'prio')
    if level then
      redis.call('HSET', job, 'tries', 0)
      redis.call('HDEL', job, 'error', 'finished', 'unknown')
      push_ready(id, level, now, false)
      count = count + 1
    end
  end
end
finish()
return count
