-- Shared by every queue script: scalepy.queue._redis prepends it to each one.
--
-- KEYS[1]  the queue's base key, `scalepy:queue:{name}`: every key below extends it,
--          so all of a queue's keys share its hash tag (one Redis Cluster slot)
-- ARGV[1]  the command that announces settled jobs and wakes idle workers: PUBLISH,
--          or SPUBLISH on a cluster
--
-- A job is the hash `<base>:job:<id>` with the fields
--   task, args, prio, retries   what to run, at which priority level, how often to retry
--   state      queued | scheduled | active | completed | dead | cancelled
--   token      bumped by every claim: the fencing token the lease holder must show
--   tries      attempts counted against `retries` (a shutdown hands its attempt back)
--   created, ready_at, started, finished   Redis times in ms
--   trace, ukey, result, error, cancel     trace context, unique key, outcome, cancel request
--   worker     the name of the worker that claimed it last
--   unknown    times it was put back by workers that did not know its task
--
-- Queue keys: `ready:<level>` LISTs (claimed from the head), `levels` ZSET of the
-- levels that may hold jobs, `leases` ZSET id -> lease deadline, `scheduled` ZSET
-- id -> run-at, `dead` ZSET id -> time of death, `unique:<key>` -> id, `cron:<name>`
-- -> last fire. Channels: `wake`, which idle workers listen to, and `done`, where
-- settled job ids are announced.

local base = KEYS[1]
local publish_command = ARGV[1]
local LEVELS = base .. ':levels'
local LEASES = base .. ':leases'
local SCHEDULED = base .. ':scheduled'
local DEAD = base .. ':dead'
local WAKE = base .. ':wake'
local DONE = base .. ':done'

local function job_key(id)
  return base .. ':job:' .. id
end

local function ready_key(level)
  return base .. ':ready:' .. level
end

local function unique_key(key)
  return base .. ':unique:' .. key
end

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local settled = {}
local woken = false

-- Add jobs to the end (or the front) of a level's ready list; they must be queued.
local function enlist(level, ids, front)
  redis.call(front and 'LPUSH' or 'RPUSH', ready_key(level), unpack(ids))
  redis.call('ZADD', LEVELS, level, level)
  woken = true
end

-- Make a job ready: at the back of its level, or at the front for a job that
-- already waited its turn (a reaped or released one).
local function push_ready(id, level, now, front)
  redis.call('HSET', job_key(id), 'state', 'queued', 'ready_at', now)
  enlist(level, {id}, front)
end

local function schedule(id, run_at)
  redis.call('ZADD', SCHEDULED, run_at, id)
  redis.call('HSET', job_key(id), 'state', 'scheduled', 'ready_at', run_at)
end

-- Make a job due again after `delay` ms: scheduled, or at once at the back of its level.
local function retry(id, level, now, delay)
  if delay > 0 then
    schedule(id, now + delay)
  else
    push_ready(id, level, now, false)
  end
end

-- Free the job's unique key if it still names this job.
local function release_unique(id, ukey)
  if ukey and ukey ~= '' and redis.call('GET', unique_key(ukey)) == id then
    redis.call('DEL', unique_key(ukey))
  end
end

-- The job ended completed or cancelled: keep it `ttl` ms for its result (or its
-- error, in `field`), announce it.
local function settle(id, state, now, ttl, ukey, field, value)
  local job = job_key(id)
  redis.call('HSET', job, 'state', state, 'finished', now, field, value)
  release_unique(id, ukey)
  if ttl > 0 then
    redis.call('PEXPIRE', job, ttl)
  else
    redis.call('DEL', job)
  end
  settled[#settled + 1] = id
end

-- The job failed for good: into the dead-letter set, kept until re-driven or purged
-- (by purge.lua, or by claim.lua once older than the queue's dead-job retention).
local function bury(id, error, now, ukey)
  redis.call('HSET', job_key(id), 'state', 'dead', 'finished', now, 'error', error)
  redis.call('ZADD', DEAD, now, id)
  release_unique(id, ukey)
  settled[#settled + 1] = id
end

-- The ids of up to `limit` dead jobs that died at `cutoff` (ms, or '+inf') or earlier,
-- oldest first.
local function dead_before(cutoff, limit)
  return redis.call('ZRANGEBYSCORE', DEAD, '-inf', cutoff, 'LIMIT', 0, limit)
end

-- Delete dead jobs for good, hash and dead-set entry; ids not dead are skipped. Nothing
-- else names a dead job: bury released its unique key, and it is on no list or set.
-- Returns how many were deleted.
local function purge(ids)
  local count = 0
  for _, id in ipairs(ids) do
    if redis.call('ZREM', DEAD, id) == 1 then
      redis.call('DEL', job_key(id))
      count = count + 1
    end
  end
  return count
end

-- A live job holds this unique key already: return its id.
local function holder(ukey)
  local id = redis.call('GET', unique_key(ukey))
  if id then
    local state = redis.call('HGET', job_key(id), 'state')
    if state == 'queued' or state == 'scheduled' or state == 'active' then
      return id
    end
  end
  return false
end

-- Store a new job in `state` (queued or scheduled) from `ready_at`; optional
-- fields are left out when empty.
local function create(id, task, args, level, retries, trace, ukey, now, state, ready_at)
  local job = job_key(id)
  redis.call('HSET', job, 'task', task, 'args', args, 'prio', level, 'retries', retries,
    'created', now, 'state', state, 'ready_at', ready_at)
  if trace ~= '' then
    redis.call('HSET', job, 'trace', trace)
  end
  if ukey ~= '' then
    redis.call('HSET', job, 'ukey', ukey)
    redis.call('SET', unique_key(ukey), id)
  end
end

-- Run last: wake idle workers if jobs became ready, announce settled jobs.
local function finish()
  if woken then
    redis.call(publish_command, WAKE, '1')
  end
  if #settled > 0 then
    redis.call(publish_command, DONE, table.concat(settled, ' '))
  end
end
