-- Paced point reads (bench/tenancy.py): like get.lua, but each connection waits DELAY_MS
-- after every answer before it sends the next request, so the load is a steady rate of
-- about connections / (DELAY_MS + latency) per second, not as fast as the server goes.
-- wrk -s paced_get.lua URL -- NS TABLE KEYS SK CONSISTENCY DELAY_MS
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")
setup = common.setup
done = common.done

local prefix, suffix, n, pause

function init(args)
  local ns, tbl, sk, consistency = args[1], args[2], args[4], args[5]
  n = tonumber(args[3])
  pause = tonumber(args[6])
  prefix = "/v1/namespaces/" .. ns .. "/tables/" .. tbl .. "/rows/"
  suffix = "?sk=" .. sk .. "&consistency=" .. consistency
  math.randomseed(2000 + (id or 0))
end

function delay()
  return pause
end

function request()
  return wrk.format("GET", prefix .. common.key(math.random(0, n - 1)) .. suffix)
end
