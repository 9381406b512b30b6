-- Sync one replica of a shared circuit breaker, atomically: store its window,
-- judge the fleet's aggregate window, and compare-and-set the shared record.
--
-- Mirrors scalepy/breaker/_shared.py (RedisSharedState.sync); the tests in
-- tests/breaker/test_shared.py run it directly against Redis and Redis Cluster.
--
-- KEYS[1]   the shared record, a hash: state (0 closed, 1 open), epoch (+1 per
--           transition), opened_at (ms, Redis time), open_wait (ms); absent means
--           closed at epoch 0
-- KEYS[2]   the replicas' windows, a hash: replica id -> "calls:failures:slow:at_ms"
-- ARGV[1]   replica id
-- ARGV[2]   the epoch the replica last saw; -1 if it never synced
-- ARGV[3-5] calls, failures and slow calls in the replica's window now
-- ARGV[6]   minimum_calls
-- ARGV[7]   failure_rate_threshold
-- ARGV[8]   slow_call_rate_threshold
-- ARGV[9]   open wait (ms) when the aggregate opens the breaker
-- ARGV[10]  proposal from a half-open trial: '' none, '0' close, '1' reopen;
--           applied only if the record is open at exactly ARGV[2]'s epoch
-- ARGV[11]  open wait (ms) of a proposed reopen
-- ARGV[12]  ms after which a replica's stored window stops counting
-- ARGV[13]  ms the record and the windows live without any sync
-- ARGV[14]  channel on which transitions are published
-- ARGV[15]  now in ms, or '' to read the server's TIME
--
-- A window is stored (replacing the replica's previous one, so a retried sync never
-- counts twice) only by a replica that is in sync with the record's epoch. Every
-- transition clears the stored windows and publishes "epoch:state:0:open_wait_ms".
--
-- Returns {state, epoch, ms since opened, open_wait ms, calls, failures, slow}: the
-- record after the sync and the aggregate window judged (zeros if none was).

local now
if ARGV[15] == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
else
  now = tonumber(ARGV[15])
end

local function fmt(x)
  return string.format('%.0f', x)
end

local record = redis.call('HMGET', KEYS[1], 'state', 'epoch', 'opened_at', 'open_wait')
local state = tonumber(record[1]) or 0
local epoch = tonumber(record[2]) or 0
local opened_at = tonumber(record[3]) or now
local open_wait = tonumber(record[4]) or 0
local known = tonumber(ARGV[2])
local proposal = ARGV[10]
local ttl = ARGV[13]

local function transition(to, wait)
  epoch = epoch + 1
  state = to
  opened_at = now
  open_wait = wait
  redis.call('HSET', KEYS[1], 'state', to, 'epoch', fmt(epoch), 'opened_at', fmt(now),
    'open_wait', fmt(wait))
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[14], fmt(epoch) .. ':' .. to .. ':0:' .. fmt(wait))
end

local calls, failures, slow = 0, 0, 0
if proposal ~= '' and known == epoch and state == 1 then
  transition(tonumber(proposal), tonumber(ARGV[11]))
elseif known == epoch or known < 0 then
  redis.call('HSET', KEYS[2], ARGV[1],
    ARGV[3] .. ':' .. ARGV[4] .. ':' .. ARGV[5] .. ':' .. fmt(now))
  local stale = now - tonumber(ARGV[12])
  local entries = redis.call('HGETALL', KEYS[2])
  for i = 1, #entries, 2 do
    local c, f, s, at = string.match(entries[i + 1], '^(%d+):(%d+):(%d+):(%d+)$')
    if tonumber(at) < stale then
      redis.call('HDEL', KEYS[2], entries[i])
    else
      calls = calls + tonumber(c)
      failures = failures + tonumber(f)
      slow = slow + tonumber(s)
    end
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
  if state == 0 and calls > 0 and calls >= tonumber(ARGV[6])
      and (failures / calls >= tonumber(ARGV[7]) or slow / calls >= tonumber(ARGV[8])) then
    transition(1, tonumber(ARGV[9]))
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)

return {state, epoch, now - opened_at, open_wait, calls, failures, slow}
