-- Fire a periodic job once per period, however many workers try.
--
-- ARGV[2]  the schedule's name
-- ARGV[3]  the fire time, Unix ms
-- ARGV[4..8]  the job: id, task, args, level, retries
-- Returns ms left until the fire time if it is still ahead on the server's clock,
-- else 0 if this call enqueued the job, -1 if another worker fired it already.

local fire = tonumber(ARGV[3])
local now = now_ms()
if now < fire then
  return fire - now
end
local last = base .. ':cron:' .. ARGV[2]
if tonumber(redis.call('GET', last) or '-1') >= fire then
  return -1
end
redis.call('SET', last, ARGV[3])
local id, level = ARGV[4], ARGV[7]
create(id, ARGV[5], ARGV[6], level, ARGV[8], '', '', now, 'queued', now)
enlist(level, {id}, false)
finish()
return 0
