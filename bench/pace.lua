-- A paced load for bench/http.sh's latency runs: each of wrk's connections waits between
-- its requests so that all of them together offer a constant rate, instead of wrk's closed
-- loop (a new request the moment an answer comes back).
--
--   wrk -c64 ... -s bench/pace.lua <url> -- <milliseconds between one connection's requests>
--
-- Pacing per connection is not a fully open loop: an answer slower than the interval delays
-- that connection's next request. bench/http.sh prints the rate wrk achieved beside the
-- rate offered, so that a run where the two part is seen for what it is.
local interval

function init(args)
  interval = tonumber(args[1])
  assert(interval, "usage: -- <milliseconds between one connection's requests>")
end

function delay()
  return interval
end
