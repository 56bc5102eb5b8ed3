-- wrk script: random customers and merchants; prints a JSON summary line at the end.
-- wrk -s bench/load.lua URL -- <mode> <customers> <merchants> [feast feature refs as JSON] [timestamp]
--   mode "predict": POST /v1/predict        (fsml)
--   mode "batch":   POST /v1/predict/batch  (fsml, 100 rows)
--   mode "feast":   POST /get-online-features (stock feast serve, the same features)
local mode, customers, merchants, refs, stamp = "predict", 2000, 300, "[]", nil
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

function init(args)
  mode = args[1] or mode
  customers = tonumber(args[2] or customers)
  merchants = tonumber(args[3] or merchants)
  refs = args[4] or refs
  stamp = args[5]
  math.randomseed(1000 * (id or 1) + os.time())
end

local function row()
  local time = stamp and string.format(', "timestamp": "%s"', stamp) or ""
  return string.format('{"customer_id": %d, "merchant_id": %d, "amount": %.2f%s}',
    math.random(1, customers), math.random(1, merchants), math.random() * 300, time)
end

function request()
  if mode == "feast" then
    local body = string.format('{"features": %s, "entities": {"customer_id": [%d], "merchant_id": [%d]}}',
      refs, math.random(1, customers), math.random(1, merchants))
    return wrk.format("POST", "/get-online-features", {["Content-Type"] = "application/json"}, body)
  elseif mode == "batch" then
    local rows = {}
    for i = 1, 100 do rows[i] = row() end
    return wrk.format("POST", "/v1/predict/batch", {["Content-Type"] = "application/json"},
      '{"rows": [' .. table.concat(rows, ",") .. ']}')
  end
  return wrk.format("POST", "/v1/predict", {["Content-Type"] = "application/json"}, row())
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'WRK_JSON {"requests": %d, "seconds": %.3f, "errors": %d, "non_2xx": %d, ' ..
    '"p50_ms": %.4f, "p90_ms": %.4f, "p99_ms": %.4f, "max_ms": %.4f, "mean_ms": %.4f}\n',
    summary.requests, summary.duration / 1e6, errors, summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000))
end
