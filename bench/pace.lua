-- A paced load for bench/http.sh's latency runs: each of wrk's connections waits between
-- its requests so that all of them together offer a constant rate, instead of wrk's closed
-- loop (a new request the moment an answer comes back).
--
--   wrk -c64 ... -s bench/pace.lua <url> -- <milliseconds between one connection's requests>
--
-- A connection's first wait is drawn at random between 0 and the interval, the others are
-- the interval: the connections start spread over one interval instead of all at once (a
-- burst of 64 requests that the writes' p99 would measure instead of their latency). Waits
-- drawn at random every time were tried: at the same mean rate they gave the landing page
-- a p50 of 29 ms instead of 2 ms and cut the achieved rate by a third, so no.
--
-- Pacing per connection is not a fully open loop: an answer slower than the interval delays
-- that connection's next request. bench/http.sh prints the rate wrk achieved beside the
-- rate offered, so that a run where the two part is seen for what it is.
local interval

function init(args)
  interval = tonumber(args[1])
  assert(interval, "usage: -- <milliseconds between one connection's requests>")
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

local started = {}

function delay()
  -- wrk keeps one Lua state per thread, so the first waits are told apart by count.
  local n = #started
  if n < 64 then
    started[n + 1] = true
    return math.random() * interval
  end
  return interval
end
