-- Shared by the wrk scripts of bench/http.py (loaded with dofile; wrk runs one Lua state
-- per thread plus one for setup/done).
--   setup(thread): numbers the threads (thread id 1..t), so each seeds its own generator
--                  and writes its own fresh keys.
--   done(...):     prints one line "WRK_JSON {...}" that bench/http.py parses: requests,
--                  duration, errors and latency percentiles in microseconds.
local M = {}

local next_id = 0

function M.setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end

-- key i as loaded: the format redis-benchmark uses for key:__rand_int__
function M.key(i)
  return string.format("key:%012d", i)
end

function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,'
      .. '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end

return M
