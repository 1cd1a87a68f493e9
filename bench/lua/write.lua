-- Durable writes of batches of B records with fresh keys: POST /v1/namespaces/NS/tables/T/write
-- Keys are "w<run>-<thread>-<seq>", never repeated within a run (RUN makes runs distinct).
-- wrk -s write.lua URL -- NS TABLE B VALUE_BYTES RUN
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(here .. "common.lua")
setup = common.setup
done = common.done

local path, batch, value, prefix
local seq = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  path = "/v1/namespaces/" .. args[1] .. "/tables/" .. args[2] .. "/write"
  batch = tonumber(args[3])
  local size = tonumber(args[4])
  local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
  local chars = {}
  for j = 1, size do
    local c = (j - 1) % #alphabet + 1
    chars[j] = alphabet:sub(c, c)
  end
  value = table.concat(chars)
  prefix = '{"pk":"w' .. args[5] .. "-" .. (id or 0) .. "-"
end

function request()
  local parts = {}
  for j = 1, batch do
    parts[j] = prefix .. seq .. '","sk":"v","value":"' .. value .. '"}'
    seq = seq + 1
  end
  return wrk.format(
    "POST", path, headers, '{"records":[' .. table.concat(parts, ",") .. '],"ack":"durable"}'
  )
end
