-- Point reads of random loaded keys: GET /v1/namespaces/NS/tables/T/rows/key:%012d?sk=SK
-- wrk -s get.lua URL -- NS TABLE KEYS SK CONSISTENCY
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")
setup = common.setup
done = common.done

local prefix, suffix, n

function init(args)
  local ns, tbl, sk, consistency = args[1], args[2], args[4], args[5]
  n = tonumber(args[3])
  prefix = "/v1/namespaces/" .. ns .. "/tables/" .. tbl .. "/rows/"
  suffix = "?sk=" .. sk .. "&consistency=" .. consistency
  math.randomseed(1000 + (id or 0))
end

function request()
  return wrk.format("GET", prefix .. common.key(math.random(0, n - 1)) .. suffix)
end
