-- GCRA for every limit of one request, all or nothing, in one call.
-- Keep in step with memory.py, which does the same arithmetic in Python.
--
-- KEYS[i]   the bucket of limit i
-- ARGV      3 per limit: limit, period in microseconds, cost (negative: a refund, which
--           lowers the debt, never below zero, and is always allowed)
-- A bucket holds "<stored_at> <debt>": stored_at in µs of the server clock, debt the
-- GCRA's TAT - stored_at measured in ticks of 1/limit µs. In ticks one request costs
-- exactly `period` and the bucket holds `limit * period`, so every figure is an integer
-- below 2^53 and exact in a Lua number (a double).
-- Reply: {all_allowed, then per limit: allowed, remaining, reset_after_us, retry_after_us}.

local function idiv(a, b)
  -- floor(a / b) for non-negative integers, exact even where a / b rounds up to an integer
  local q = math.floor(a / b)
  if q * b > a then return q - 1 end
  if (q + 1) * b <= a then return q + 1 end
  return q
end

local function cdiv(a, b)
  return idiv(a + b - 1, b)
end

-- The server's clock, so replicas whose clocks disagree still share one timeline.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local debts, charged = {}, {}
local stored_any = false
local all_allowed = true
for i = 1, #KEYS do
  local limit, period, cost = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local debt = 0
  local stored = redis.call('GET', KEYS[i])
  if stored then
    stored_any = true
    local gap = string.find(stored, ' ', 1, true)
    local elapsed = now - tonumber(string.sub(stored, 1, gap - 1))
    debt = tonumber(string.sub(stored, gap + 1))
    -- A clock that stepped back (a failover to a skewed server) adds no debt.
    if elapsed >= period then
      debt = 0
    elseif elapsed > 0 then
      debt = math.max(0, debt - elapsed * limit)
    end
  end
  debts[i] = debt
  charged[i] = math.max(0, debt + cost * period)
  if charged[i] > limit * period then all_allowed = false end
end

local reply = {all_allowed and 1 or 0}
for i = 1, #KEYS do
  local limit, period = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  local capacity = limit * period
  local held = debts[i]
  if all_allowed then
    held = charged[i]
    if held > 0 then
      -- The key lives until its debt has drained: past that it equals an absent key.
      redis.call('SET', KEYS[i], string.format('%.0f %.0f', now, held), 'PX', idiv(held, limit * 1000) + 1)
    elseif stored_any then
      redis.call('DEL', KEYS[i])
    end
  end
  local allowed = charged[i] <= capacity
  reply[#reply + 1] = allowed and 1 or 0
  reply[#reply + 1] = idiv(capacity - held, period)
  reply[#reply + 1] = cdiv(held, limit)
  reply[#reply + 1] = allowed and 0 or cdiv(charged[i] - capacity, limit)
end
return reply
