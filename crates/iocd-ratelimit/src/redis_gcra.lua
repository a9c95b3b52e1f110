-- GCRA over several windows, admitted all-or-nothing. Mirrors `admit` in gcra.rs; keep them in step.
--
-- KEYS[i]     TAT (theoretical arrival time, integer microseconds) of window i; absent = never used.
-- ARGV[1]     clock reading in microseconds, or "" to use this Redis server's TIME. Using the server's
--             clock means every replica measures against one clock, whatever their own say.
-- ARGV[2*i]   window i's interval (microseconds one call occupies).
-- ARGV[2*i+1] window i's burst (how far ahead of now its TAT may run).
--
-- Returns {1} when admitted (every TAT advanced), or {0, window index from 0, wait in microseconds}
-- for the window needing the longest wait (the first on a tie), having written nothing.
-- Integers stay below 2^53, so Lua's doubles compute them exactly.

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local next_tats = {}
local refusing_index = -1
local longest_wait = 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
  if tat < now then
    tat = now
  end
  local next_tat = tat + interval
  local wait = next_tat - burst - now
  if wait > 0 and (refusing_index < 0 or wait > longest_wait) then
    refusing_index = i - 1
    longest_wait = wait
  end
  next_tats[i] = next_tat
end

if refusing_index >= 0 then
  return {0, refusing_index, longest_wait}
end

for i = 1, #KEYS do
  -- The key is needed only until its TAT passes (then it equals an absent key), which is at most the
  -- window's period (plus rounding) from now. '%d' because Redis would format a bare Lua number with
  -- 14 significant digits, too few for a microsecond timestamp.
  local ttl_ms = math.floor((next_tats[i] - now + 999) / 1000)
  redis.call('SET', KEYS[i], string.format('%d', next_tats[i]), 'PX', string.format('%d', ttl_ms))
end
return {1}
