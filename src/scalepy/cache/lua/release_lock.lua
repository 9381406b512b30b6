-- Release a cache load lock, but only if it still holds the caller's token.
--
-- A compare-and-delete: a holder whose lock expired (its load ran past the TTL)
-- must not delete the lock a newer holder has taken since.
--
-- KEYS[1]  the lock key
-- ARGV[1]  the token stored by SET key token NX PX ttl
--
-- Returns 1 when the lock was ours and is gone, 0 when it had expired or moved on.
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
