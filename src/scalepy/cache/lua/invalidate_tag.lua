-- Bump one tag's version and keep it for at least ARGV[1] milliseconds.
--
-- KEYS[1]  the tag's version counter
-- ARGV[1]  milliseconds the new version must be kept: longer than any entry
--          written with an older version may live, so a forgotten tag (back to
--          version 0) can never revive such an entry
--
-- Returns the new version.

local version = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return version
