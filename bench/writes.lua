-- The write benchmarks of bench/http.sh: every request is one real write.
--
--   wrk -t2 ... -s bench/writes.lua http://127.0.0.1:8101 -- <kind> <file> <start> <threads>
--
-- kind        submit: a new number on the landing page's form (one visitor's session);
--             confirm: the code of the next pending sign-up, from its own session;
--             unsubscribe: the one-tap "stop all marketing" of the next subscriber.
-- file        from bench/prepare_writes.py: one browser a line, cookie<TAB>csrf<TAB>code
--             (for unsubscribe, the code column is the subscriber the page was shown for).
-- start       the first browser (or number) to use: the warm-up's "used" figure, so that
--             the measurement never replays a write (a replay answers 302 and writes nothing).
-- threads     wrk's -t: thread i takes start + i, start + i + threads, ...
-- pace        (optional) milliseconds each connection waits between its requests, for the
--             paced latency runs (bench/pace.lua says how); none: wrk's closed loop.
--
-- Every answer is counted by status, and as "ok" only when it is the redirect that
-- follows the write (submit -> /code, confirm -> /welcome, unsubscribe -> /preferences?saved=stopped).
-- done() prints one line for bench/http.sh:
--   writes kind=confirm answers=1234 ok=1234 bad_status=0 used=1240 exhausted=0 statuses=302:1234

local PATHS = { submit = "/", confirm = "/code", unsubscribe = "/preferences" }
local EXPECTED = { submit = "/code", confirm = "/welcome", unsubscribe = "/preferences?saved=stopped" }

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  kind, start, step, pace = args[1], tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
  assert(PATHS[kind] and start and step, "usage: -- <kind> <file> <start> <threads>")
  browsers = {}
  for line in io.lines(args[2]) do
    local cookie, csrf, code = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)$")
    browsers[#browsers + 1] = { cookie = cookie, csrf = csrf, code = code }
  end
  sent, used, ok, answers, bad_status, exhausted, statuses = 0, 0, 0, 0, 0, 0, {}
end

local started = 0

function delay() -- as bench/pace.lua: the first waits spread over one pace, then the pace
  if not pace then
    return 0
  end
  started = started + 1
  return started <= 64 and math.random() * pace or pace
end

local function post(browser, body)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  if browser then
    headers["Cookie"] = browser.cookie
  end
  return wrk.format("POST", PATHS[kind], headers, body)
end

function request()
  local n = start + sent * step + id -- this request's browser (or number)
  sent = sent + 1
  used = n + 1
  if kind == "submit" then
    local visitor = browsers[1]
    local phone = string.format("%%2B35840%07d", 4000000 + n) -- +358 40 4xx xxxx, new each time
    return post(visitor, "csrf_token=" .. visitor.csrf .. "&phone=" .. phone .. "&consent=y"
      .. "&utm_source=bench&utm_medium=wrk&utm_campaign=http")
  end
  local browser = browsers[n + 1]
  if browser == nil then -- none left: sent without a session, so it cannot count as ok
    exhausted = exhausted + 1
    return post(nil, "")
  end
  if kind == "confirm" then
    return post(browser, "csrf_token=" .. browser.csrf .. "&code=" .. browser.code)
  end
  return post(browser, "csrf_token=" .. browser.csrf .. "&subscriber=" .. browser.code .. "&stop_all=1")
end

function response(status, headers, body)
  answers = answers + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status < 200 or status >= 400 then
    bad_status = bad_status + 1
  end
  local location = headers["Location"] or headers["location"] or ""
  if status >= 300 and status < 400 and location:sub(-#EXPECTED[kind]) == EXPECTED[kind] then
    ok = ok + 1
  end
end

function done(summary, latency, requests)
  local total = { answers = 0, ok = 0, bad_status = 0, used = 0, exhausted = 0 }
  local statuses = {}
  for _, thread in ipairs(threads) do
    for name in pairs(total) do
      local value = thread:get(name) or 0
      total[name] = name == "used" and math.max(total[name], value) or total[name] + value
    end
    for status, count in pairs(thread:get("statuses") or {}) do
      statuses[status] = (statuses[status] or 0) + count
    end
  end
  local mix = {}
  for status, count in pairs(statuses) do
    mix[#mix + 1] = status .. ":" .. count
  end
  table.sort(mix)
  io.write(string.format(
    "writes kind=%s answers=%d ok=%d bad_status=%d used=%d exhausted=%d statuses=%s\n",
    threads[1]:get("kind"), total.answers, total.ok, total.bad_status, total.used,
    total.exhausted, table.concat(mix, ",")))
end
