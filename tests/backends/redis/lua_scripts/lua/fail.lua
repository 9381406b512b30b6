-- Always raises, to check that script errors reach the caller as scalepy errors.
return redis.error_reply('scalepy test failure')
