"""The Redis cache's server-side steps, one script (one round trip, atomic) each.

Layout under the namespace ``N`` (``<KEEL_REDIS_KEY_PREFIX>cache:``):
- ``N e:<key>``   the value, a string with a PX expiry;
- ``N idx``       sorted set, every entry by expiry time (ms, Redis's clock);
- ``N sz``        hash, entry -> its size in bytes; ``N bytes`` their sum;
- ``N t:<tag>``   sorted set, the tag's entries by expiry (pruned as they expire),
                  itself expiring with its longest-lived entry;
- ``N g:<tag>``   present while fills carrying the tag are refused (the fill guard).

The index makes ``current_size_bytes`` and ``total_entries`` exact across processes and
lets the cache hold its own byte budget whatever Redis's ``maxmemory`` policy is. Keys
are built inside the scripts, so this runs on a single Redis (or a replicated primary),
not on Redis Cluster.
"""

from __future__ import annotations

_COMMON = """
local N = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Take an entry out of the index and the byte count; its size, or 0 if unindexed.
local function forget(key)
  local size = tonumber(redis.call('HGET', N .. 'sz', key))
  redis.call('ZREM', N .. 'idx', key)
  if size then
    redis.call('HDEL', N .. 'sz', key)
    redis.call('DECRBY', N .. 'bytes', size)
    return size
  end
  return 0
end
-- Forget up to `limit` entries that have expired (Redis already dropped their values).
local function prune(now, limit)
  local expired = redis.call('ZRANGEBYSCORE', N .. 'idx', '-inf', now, 'LIMIT', 0, limit)
  for _, key in ipairs(expired) do
    forget(key)
    redis.call('DEL', N .. 'e:' .. key)
  end
end
"""

# ARGV: namespace, key, value, ttl_ms, max_bytes, tag... -> -1 guarded, -2 too big,
# else the number of entries evicted to make room (the entry is stored).
SET = (
    _COMMON
    + """
local key, value = ARGV[2], ARGV[3]
local ttl, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 6, #ARGV do
  if redis.call('EXISTS', N .. 'g:' .. ARGV[i]) == 1 then return -1 end
end
local now = now_ms()
prune(now, 64)
forget(key)
local size = #key + #value
if size > max_bytes then
  redis.call('DEL', N .. 'e:' .. key)
  return -2
end
local expires = now + ttl
redis.call('SET', N .. 'e:' .. key, value, 'PX', ttl)
redis.call('ZADD', N .. 'idx', expires, key)
redis.call('HSET', N .. 'sz', key, size)
local total = redis.call('INCRBY', N .. 'bytes', size)
for i = 6, #ARGV do
  local tag = N .. 't:' .. ARGV[i]
  redis.call('ZADD', tag, expires, key)
  redis.call('ZREMRANGEBYSCORE', tag, '-inf', now)
  if redis.call('PTTL', tag) < ttl then redis.call('PEXPIRE', tag, ttl) end
end
-- Evict the entries closest to expiry (oldest first when TTLs are equal), never this one.
local evicted = 0
while total > max_bytes do
  local victim = nil
  for _, candidate in ipairs(redis.call('ZRANGE', N .. 'idx', 0, 1)) do
    if candidate ~= key then victim = candidate break end
  end
  if not victim then break end
  total = total - forget(victim)
  redis.call('DEL', N .. 'e:' .. victim)
  evicted = evicted + 1
end
return evicted
"""
)

# ARGV: namespace, key... -> how many live entries were dropped.
DELETE = (
    _COMMON
    + """
local dropped = 0
for i = 2, #ARGV do
  forget(ARGV[i])
  dropped = dropped + redis.call('DEL', N .. 'e:' .. ARGV[i])
end
return dropped
"""
)

# ARGV: namespace, guard_ms, limit, tag... -> {dropped, members left}. Drops at most
# `limit` entries a call so a big tag never blocks Redis for long; the guard is set
# first, so fills between two calls are already refused.
INVALIDATE_TAGS = (
    _COMMON
    + """
local guard, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local dropped, left = 0, 0
for i = 4, #ARGV do
  if guard > 0 then redis.call('SET', N .. 'g:' .. ARGV[i], '1', 'PX', guard) end
  local tag = N .. 't:' .. ARGV[i]
  if limit > 0 then  -- ZRANGE 0 -1 would be the whole set
    local members = redis.call('ZRANGE', tag, 0, limit - 1)
    for _, key in ipairs(members) do
      forget(key)
      dropped = dropped + redis.call('DEL', N .. 'e:' .. key)
    end
    if #members > 0 then redis.call('ZREM', tag, unpack(members)) end
    limit = limit - #members
  end
  left = left + redis.call('ZCARD', tag)
end
return {dropped, left}
"""
)

# ARGV: namespace -> {bytes, entries}, after forgetting expired entries.
SIZE = (
    _COMMON
    + """
prune(now_ms(), 1000)
return {tonumber(redis.call('GET', N .. 'bytes') or '0'), redis.call('ZCARD', N .. 'idx')}
"""
)
