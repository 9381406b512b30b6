-- Claim up to N ready jobs under a lease; first promote due scheduled jobs, reap
-- expired leases and delete dead jobs past their retention, so no separate scheduler
-- or janitor is needed and any live worker recovers the jobs of a dead one. Only
-- workers add dead jobs (their acks and these reaps), and a worker claims every poll
-- interval even when idle: the dead set is trimmed wherever it grows.
--
-- ARGV[2]  how many jobs to claim, 0 to 1000
-- ARGV[3]  lease, ms
-- ARGV[4]  most jobs the whole queue may run at once, 0 for no limit
-- ARGV[5]  result TTL, ms (for reaped jobs whose cancellation was requested)
-- ARGV[6]  the claiming worker's name, kept on the job for operators
-- ARGV[7]  dead-job retention, ms: jobs dead this long or longer are deleted, 0 keeps them
-- Returns {ms until the next scheduled job or lease deadline (-1: none),
--          then 7 fields per claimed job: id, token, task, args, ms it waited, trace, tries}

local want = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local worker = ARGV[6]
local dead_ttl = tonumber(ARGV[7])
local now = now_ms()

local due = redis.call('ZRANGEBYSCORE', SCHEDULED, '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', SCHEDULED, id)
  local level = redis.call('HGET', job_key(id), 'prio')
  if level then
    push_ready(id, level, now, false)
  end
end

local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', LEASES, id)
  local f = redis.call('HMGET', job_key(id), 'state', 'tries', 'retries', 'prio', 'cancel', 'ukey')
  if f[1] == 'active' then
    if f[5] then
      settle(id, 'cancelled', now, ttl, f[6], 'error', 'cancelled while running')
    elseif tonumber(f[2]) > tonumber(f[3]) then
      bury(id, 'LeaseExpired: the worker stopped renewing its lease', now, f[6])
    else
      push_ready(id, f[4], now, true)
    end
  end
end

if dead_ttl > 0 then
  purge(dead_before(now - dead_ttl, 1000))
end

if cap > 0 then
  want = math.min(want, cap - redis.call('ZCARD', LEASES))
end
local out = {-1}
local got = 0
local leases = {}
if want > 0 then
  local levels = redis.call('ZREVRANGEBYSCORE', LEVELS, '+inf', '-inf')
  for _, level in ipairs(levels) do
    local key = ready_key(level)
    while got < want do
      local asked = want - got
      local ids = redis.call('LPOP', key, asked)
      if not ids then
        redis.call('ZREM', LEVELS, level)
        break
      end
      for _, id in ipairs(ids) do
        local job = job_key(id)
        local f = redis.call('HMGET', job, 'state', 'task', 'args', 'ready_at', 'trace', 'token',
          'tries')
        if f[1] == 'queued' then  -- else cancelled or deleted while it waited
          local token = (tonumber(f[6]) or 0) + 1
          local tries = (tonumber(f[7]) or 0) + 1
          redis.call('HSET', job, 'state', 'active', 'started', now, 'token', token, 'tries', tries,
            'worker', worker)
          leases[#leases + 1] = now + lease
          leases[#leases + 1] = id
          out[#out + 1] = id
          out[#out + 1] = token
          out[#out + 1] = f[2]
          out[#out + 1] = f[3]
          out[#out + 1] = now - tonumber(f[4])
          out[#out + 1] = f[5] or ''
          out[#out + 1] = tries
          got = got + 1
        end
      end
      if #ids < asked then
        redis.call('ZREM', LEVELS, level)
        break
      end
    end
    if got >= want then
      break
    end
  end
  if got > 0 then
    redis.call('ZADD', LEASES, unpack(leases))
  end
  -- Full, with jobs left: pass the wake-up on to the idle workers.
  woken = got >= want and redis.call('EXISTS', LEVELS) == 1
end

local nearest = -1
for _, key in ipairs({SCHEDULED, LEASES}) do
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] then
    local wait = math.max(0, tonumber(head[2]) - now)
    if nearest < 0 or wait < nearest then
      nearest = wait
    end
  end
end
out[1] = nearest
finish()
return out
