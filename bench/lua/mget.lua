-- Multi-gets of K random loaded keys: POST /v1/namespaces/NS/tables/T/get
-- wrk -s mget.lua URL -- NS TABLE KEYS SK CONSISTENCY K
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")
setup = common.setup
done = common.done

local path, n, k, sk, tail
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  n = tonumber(args[3])
  sk = args[4]
  tail = '],"consistency":"' .. args[5] .. '"}'
  k = tonumber(args[6])
  path = "/v1/namespaces/" .. args[1] .. "/tables/" .. args[2] .. "/get"
  math.randomseed(2000 + (id or 0))
end

function request()
  local parts = {}
  for j = 1, k do
    parts[j] = '{"pk":"' .. common.key(math.random(0, n - 1)) .. '","sk":"' .. sk .. '"}'
  end
  return wrk.format("POST", path, headers, '{"keys":[' .. table.concat(parts, ",") .. tail)
end
