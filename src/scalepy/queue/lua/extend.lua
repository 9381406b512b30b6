-- Heartbeat: renew the leases a worker holds, each fenced by its token.
--
-- ARGV[2]  lease, ms
-- ARGV[3..]  2 fields per lease: id, token
-- Returns {ids whose lease is lost}, {ids whose cancellation was requested}

local lease = tonumber(ARGV[2])
local now = now_ms()
local lost, cancel = {}, {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local f = redis.call('HMGET', job_key(id), 'token', 'state', 'cancel')
  if f[1] == ARGV[i + 1] and f[2] == 'active' then
    redis.call('ZADD', LEASES, now + lease, id)
    if f[3] then
      cancel[#cancel + 1] = id
    end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancel}
