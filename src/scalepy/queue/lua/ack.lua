-- Settle a batch of attempts, each fenced by the token its claim returned: an
-- attempt whose lease was lost (reaped, or claimed again since) changes nothing.
--
-- ARGV[2]  result TTL, ms
-- ARGV[3]  how often a job of a task unknown to its worker is put back before it dies
-- ARGV[4..]  5 fields per attempt: id, token, outcome, value, retry delay in ms
--   outcome 'c' completed (value: the result), 'f' failed (value: the error; retried
--   after the delay while tries <= retries, a negative delay never retries),
--   'x' cancelled (value: why), 'r' released by a worker shutting down (back to the
--   front of the queue; the attempt is not counted), 'u' the worker does not know
--   the task (put back after the delay, the attempt not counted, counted in the
--   field `unknown` instead; dead, with the value as its error, past ARGV[3] times)
-- Returns, per attempt: 0 lease lost, 1 settled as asked, 2 scheduled for a retry
-- (or put back), 3 dead-lettered.

local ttl = tonumber(ARGV[2])
local unknown_limit = tonumber(ARGV[3])
local now = now_ms()
local out = {}
local ended = {}  -- leases to remove
for i = 4, #ARGV, 5 do
  local id, token, outcome, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local job = job_key(id)
  local f = redis.call('HMGET', job, 'token', 'state', 'tries', 'retries', 'prio', 'ukey')
  local code = 0
  if f[1] == token and f[2] == 'active' then
    ended[#ended + 1] = id
    code = 1
    if outcome == 'c' then
      settle(id, 'completed', now, ttl, f[6], 'result', value)
    elseif outcome == 'f' then
      local delay = tonumber(ARGV[i + 4])
      if delay >= 0 and tonumber(f[3]) <= tonumber(f[4]) then
        redis.call('HSET', job, 'error', value)
        retry(id, f[5], now, delay)
        code = 2
      else
        bury(id, value, now, f[6])
        code = 3
      end
    elseif outcome == 'x' then
      settle(id, 'cancelled', now, ttl, f[6], 'error', value)
    elseif outcome == 'u' then
      redis.call('HINCRBY', job, 'tries', -1)
      if redis.call('HINCRBY', job, 'unknown', 1) > unknown_limit then
        bury(id, value, now, f[6])
        code = 3
      else
        retry(id, f[5], now, tonumber(ARGV[i + 4]))
        code = 2
      end
    else
      redis.call('HINCRBY', job, 'tries', -1)
      push_ready(id, f[5], now, true)
    end
  end
  out[#out + 1] = code
end
if #ended > 0 then
  redis.call('ZREM', LEASES, unpack(ended))
  -- A worker held back by the queue-wide cap may claim again.
  woken = woken or redis.call('EXISTS', LEVELS) == 1
end
finish()
return out
