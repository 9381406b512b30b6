-- Enqueue a batch of jobs of one task, with the same options, in one call.
--
-- ARGV[2..7]  task, level, retries, when, trace, named: shared by every job of the batch
--             when: '' to run now, '+<ms>' to run after a delay, '<ms>' at a Unix time
--             named: '1' if the caller chose the ids (an existing job is kept), else ''
-- ARGV[8..]   3 fields per job: id, args, unique key ('' for none)
-- Returns, per job, the id of the job that holds it (the new one, the job that had
-- its id already, or the live job already holding its unique key) and 1 if it was
-- created, 0 if not, or, for a job that had its id already but is of another task,
-- that task's name (job ids are queue-wide: the caller is told in the same call).

local task, level, retries, when, trace = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local named = ARGV[7] == '1'
local now = now_ms()
local run_at = now
if when ~= '' then
  if string.sub(when, 1, 1) == '+' then
    run_at = now + tonumber(string.sub(when, 2))
  else
    run_at = tonumber(when)
  end
end
local scheduled = run_at > now
local out = {}
local ready = {}
for i = 8, #ARGV, 3 do
  local id, ukey = ARGV[i], ARGV[i + 2]
  local held_by = named and redis.call('HGET', job_key(id), 'task')
  local existing = (held_by and id) or (ukey ~= '' and holder(ukey))
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = (held_by and held_by ~= task) and held_by or 0
  else
    if scheduled then
      create(id, task, ARGV[i + 1], level, retries, trace, ukey, now, 'scheduled', run_at)
      redis.call('ZADD', SCHEDULED, run_at, id)
    else
      create(id, task, ARGV[i + 1], level, retries, trace, ukey, now, 'queued', now)
      ready[#ready + 1] = id
    end
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if #ready > 0 then
  enlist(level, ready, false)
end
finish()
return out
