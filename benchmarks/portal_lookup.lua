-- wrk script for benchmarks/portal_lookup.py: POST /api/portal/lookup with JSON bodies.
--   PORTAL_PAIRS   file of "number code class" lines (class: hit, wrong, unknown)
--   PORTAL_MODE    hit | wrong | unknown | mixed (90 % hits, 10 % wrong codes)
--   PORTAL_XFF     1: a random X-Forwarded-For per request from 10.0.0.0/16 (65,536
--                  client addresses, trusted from 127.0.0.1 as behind the reverse proxy)
-- done() prints one line "PORTAL_RESULT {json}" with latency (µs) and status counts.

local mode = os.getenv("PORTAL_MODE") or "mixed"
local xff = os.getenv("PORTAL_XFF") == "1"
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local lists = { hit = {}, wrong = {}, unknown = {} }
c200, c404, c429, cother = 0, 0, 0, 0

function init(args)
  math.randomseed(os.time() * 1000 + id)
  for line in io.lines(os.getenv("PORTAL_PAIRS")) do
    local n, c, k = line:match("^(%S+) (%S+) (%S+)$")
    if n then table.insert(lists[k], { n, c }) end
  end
end

local function pick()
  local kind = mode
  if mode == "mixed" then
    kind = (math.random() < 0.9) and "hit" or "wrong"
  end
  local l = lists[kind]
  return l[math.random(#l)]
end

function request()
  local p = pick()
  local headers = { ["Content-Type"] = "application/json" }
  if xff then
    headers["X-Forwarded-For"] = string.format("10.0.%d.%d", math.random(0, 255), math.random(0, 255))
  end
  local body = string.format('{"number":"%s","code":"%s"}', p[1], p[2])
  return wrk.format("POST", "/api/portal/lookup", headers, body)
end

function response(status, headers, body)
  if status == 200 then c200 = c200 + 1
  elseif status == 404 then c404 = c404 + 1
  elseif status == 429 then c429 = c429 + 1
  else cother = cother + 1 end
end

function done(summary, latency, requests)
  local s = { [200] = 0, [404] = 0, [429] = 0, other = 0 }
  for _, t in ipairs(threads) do
    s[200] = s[200] + t:get("c200")
    s[404] = s[404] + t:get("c404")
    s[429] = s[429] + t:get("c429")
    s.other = s.other + t:get("cother")
  end
  local e = summary.errors
  io.write(string.format(
    'PORTAL_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d},' ..
    '"status":{"200":%d,"404":%d,"429":%d,"other":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max,
    s[200], s[404], s[429], s.other))
end
