-- Decide a batch of rate-limit calls on one key, one after the other, each
-- atomically and all or nothing across its policies.
--
-- Mirrors scalepy/ratelimit/_algorithms.py (decide) and each rule's decide in
-- scalepy/ratelimit/_rules.py operation for operation; the property tests in
-- tests/ratelimit/test_agreement.py keep the two identical, and those in
-- tests/ratelimit/test_coalescing.py keep a batch identical to its calls decided
-- one by one.
--
-- KEYS[i]         the state of policy i; all keys of one call share one hash tag
-- ARGV[1]         now in microseconds, or "" to read the server's TIME
-- ARGV[2]         '1' to consume when every policy allows, '0' to only ask
-- ARGV[3]         n, the number of calls in the batch, >= 1
-- ARGV[3 + j]     the cost of call j (1 <= j <= n), >= 0, in arrival order
-- ARGV[3 + n + 3i - 2 .. 3 + n + 3i] policy i: its rule's script_args, a kind of
--                 the `rules` table below and two integers:
--                   'g', interval_us, burst  (GCRA / token bucket)
--                   'w', window_us, limit    (sliding-window counter)
--                   'f', window_us, limit    (fixed-window counter)
--
-- Returns, per call in order and per policy within it: allowed (1/0), remaining,
-- retry_after_us, reset_after_us. Every call is decided at the same `now`, on the
-- state the calls before it left: exactly the decisions the calls would get sent
-- one by one at that instant. When a call consumes nothing (a denial, ARGV[2] =
-- '0', cost 0), remaining and reset_after_us describe the quota as it stays (the
-- policy decided at cost 0). A call commits when every policy allows, its cost > 0
-- and ARGV[2] = '1'; after the batch the last committed state of each policy is
-- written, with the TTL its rule gives (its expires_at):
--   GCRA    the TAT as an integer string, PX = ceil(reset_after_us / 1000)
--   window  "start:current:previous", PX = ceil(2 * window_us / 1000)
--   fixed   "start:count", PX = ceil(window_us / 1000)
-- (a state whose TTL is not positive is deleted instead). Writing only the last
-- state is what writing after each call would leave: all share one `now`.
--
-- Lua 5.1 numbers are doubles: every value here stays an integer below 2**53, so
-- math.floor(a / b) is exact; integers are written with string.format('%.0f')
-- because tostring() keeps only 14 significant digits.

local floor, min, max, ceil = math.floor, math.min, math.max, math.ceil

local now
if ARGV[1] == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
else
  now = tonumber(ARGV[1])
end
local commit = ARGV[2] == '1'
local calls = tonumber(ARGV[3])
local base = 3 + calls -- ARGV[base + 3i - 2 .. base + 3i]: policy i

local function fmt(x)
  return string.format('%.0f', x)
end

-- Each rule returns allowed, remaining, retry_after_us, reset_after_us, the new
-- state as a string and its TTL in microseconds.

local function gcra(raw, interval, burst, cost)
  local tolerance = interval * burst
  local c = min(cost, burst + 1)
  local tat0 = now
  if raw then
    tat0 = max(tonumber(raw), now)
  end
  local new_tat = tat0 + c * interval
  local allowed = new_tat - now <= tolerance
  local after = tat0
  local retry = new_tat - now - tolerance
  if allowed then
    after = new_tat
    retry = 0
  end
  local remaining = max(0, floor((now + tolerance - after) / interval))
  return allowed, remaining, retry, after - now, fmt(after), after - now
end

local function window_retry(w, limit, curr, prev, elapsed, c, reset)
  local spare = limit - curr - c
  if spare >= 0 then
    return w - floor(spare * w / prev) - elapsed
  end
  if c <= limit then
    return w - elapsed + w - floor((limit - c) * w / curr)
  end
  return reset + w
end

local function sliding_window(raw, w, limit, cost)
  local start = now - now % w
  local curr, prev = 0, 0
  if raw then
    local s, cur, pre = string.match(raw, '^(%-?%d+):(%d+):(%d+)$')
    s = tonumber(s)
    if s == start then
      curr, prev = tonumber(cur), tonumber(pre)
    elseif s == start - w then
      prev = tonumber(cur)
    end
  end
  local elapsed = now - start
  local c = min(cost, limit + 1)
  local allowed = prev * (w - elapsed) + (curr + c) * w <= limit * w
  if allowed then
    curr = curr + c
  end
  local remaining = max(0, floor((limit * w - prev * (w - elapsed) - curr * w) / w))
  local reset = 0
  if curr > 0 then
    reset = start + 2 * w - now
  elseif prev > 0 then
    reset = start + w - now
  end
  local retry = 0
  if not allowed then
    retry = window_retry(w, limit, curr, prev, elapsed, c, reset)
  end
  local state = fmt(start) .. ':' .. fmt(curr) .. ':' .. fmt(prev)
  return allowed, remaining, retry, reset, state, 2 * w
end

local function fixed_window(raw, w, limit, cost)
  local start = now - now % w
  local count = 0
  if raw then
    local s, n = string.match(raw, '^(%-?%d+):(%d+)$')
    if tonumber(s) == start then
      count = tonumber(n)
    end
  end
  local c = min(cost, limit + 1)
  local allowed = count + c <= limit
  if allowed then
    count = count + c
  end
  local stop = start + w - now
  local retry, reset = 0, 0
  if not allowed then
    retry = stop
  end
  if count > 0 then
    reset = stop
  end
  return allowed, limit - count, retry, reset, fmt(start) .. ':' .. fmt(count), w
end

local rules = {g = gcra, w = sliding_window, f = fixed_window}

local raws = {}
for i = 1, #KEYS do
  raws[i] = redis.call('GET', KEYS[i])
end

-- Decides every policy at cost c on `raws`: per policy {allowed, remaining, retry,
-- reset}, the states and TTLs to write, and whether all allowed.
local function decide(c)
  local rows, states, ttls, all_allowed = {}, {}, {}, true
  for i = 1, #KEYS do
    local n = base + 3 * i
    local rule, a, b = rules[ARGV[n - 2]], tonumber(ARGV[n - 1]), tonumber(ARGV[n])
    local allowed, remaining, retry, reset
    allowed, remaining, retry, reset, states[i], ttls[i] = rule(raws[i], a, b, c)
    all_allowed = all_allowed and allowed
    rows[i] = {allowed and 1 or 0, remaining, retry, reset}
  end
  return rows, states, ttls, all_allowed
end

local out, size, written, last_ttls = {}, 0, false, nil
for j = 1, calls do
  local cost = tonumber(ARGV[3 + j])
  local rows, states, ttls, all_allowed = decide(cost)
  if commit and cost > 0 and all_allowed then
    -- The next call sees this one's state, as it would read it back from Redis.
    for i = 1, #KEYS do
      raws[i] = ttls[i] > 0 and states[i]
    end
    written, last_ttls = true, ttls
  elseif cost > 0 then
    local kept = decide(0)
    for i = 1, #KEYS do
      rows[i][2], rows[i][4] = kept[i][2], kept[i][4]
    end
  end
  for i = 1, #KEYS do
    local row = rows[i]
    out[size + 1], out[size + 2], out[size + 3], out[size + 4] = row[1], row[2], row[3], row[4]
    size = size + 4
  end
end

if written then
  for i = 1, #KEYS do
    if raws[i] then
      redis.call('SET', KEYS[i], raws[i], 'PX', fmt(ceil(last_ttls[i] / 1000)))
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return out
