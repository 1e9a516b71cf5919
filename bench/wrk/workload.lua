-- One wrk script for every workload. Arguments (after --): workload, application id or token,
-- number of users, number of threads, and a tag that keeps each run's create+delete users apart
-- (a warm-up may stop between a create and its delete). The summary goes, as JSON, to $WRK_OUT.
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local function json_post(path, body)
  return wrk.format("POST", path, headers, body)
end

local function key_for(index)
  return string.format("sk-bench-%06d-0123456789abcdefWxyz", index)
end

function init(args)
  workload = args[1]
  credential = args[2]
  users = tonumber(args[3])
  threads = tonumber(args[4])
  tag = args[5] or "0"
  -- Each thread cycles through its own users only, so no two connections ever share one.
  per_thread = math.max(1, math.floor(users / threads))
  pair = 0
  created = false
  n = 0
  math.randomseed(tid * 7919 + 17)
  if workload:sub(1, 4) == "bao_" then
    headers = { ["Content-Type"] = "application/json", ["X-Vault-Token"] = credential }
  else
    headers = { ["Content-Type"] = "application/json", ["X-Application-ID"] = credential }
  end
end

function request()
  n = n + 1
  if workload == "create_delete" then
    -- Each thread owns every threads-th user and runs create then delete on it, one connection per
    -- thread; pairs.lua's response() moves to the next step, since wrk calls request() once unsent.
    local index = tid + threads * (pair % per_thread)
    local user = "pair-" .. tag .. "-" .. index
    if not created then
      return json_post("/external_provider/api_key/create",
        '{"user":"' .. user .. '","open_AI":{"api_key":"' .. key_for(index) .. '","api_key_name":"bench"}}')
    end
    return json_post("/external_provider/api_key/delete", '{"user":"' .. user .. '","open_AI":true}')
  elseif workload == "update" or workload == "update_one" or workload == "mix_90_10" then
    local index = workload == "update_one" and 0 or math.random(0, users - 1)
    local user = "user-" .. index
    if workload == "mix_90_10" and math.random() < 0.9 then
      return json_post("/external_provider/api_key/update", '{"user":"' .. user .. '"}')
    end
    return json_post("/external_provider/api_key/update",
      '{"user":"' .. user .. '","open_AI":{"api_key_name":"name-' .. tid .. '-' .. n .. '"}}')
  elseif workload == "rejected" then
    -- Alternate a wrong application id (401, then 429 once the address is past the limit) and bad JSON (400).
    if n % 2 == 1 then
      return wrk.format("POST", "/external_provider/api_key/update",
        { ["Content-Type"] = "application/json", ["X-Application-ID"] = "not-a-registered-id" }, '{"user":"user-1"}')
    end
    return json_post("/external_provider/api_key/update", '{"user":')
  elseif workload:sub(1, 5) == "chat_" or workload:sub(1, 7) == "stream_" then
    -- A small chat completion: straight to the stand-in upstream (`_direct`, the credential is the key),
    -- through our relay (`_relay`, the credential is an application id; `_policy`, an application with
    -- every limit set, none reached) or through nginx (`_nginx`). Streams ask for their usage, as an
    -- application with a token budget must.
    local via = workload:match("_(%a+)$")
    local path = (via == "direct" or via == "litellm") and "/v1/chat/completions" or "/open_ai/v1/chat/completions"
    local stream = workload:sub(1, 7) == "stream_" and "true" or "false"
    local model = "gpt-4o-mini"
    -- The stand-in upstream picks its answer by the query, which every hop passes unchanged, except
    -- LiteLLM, whose streamed model has a base URL of its own.
    if stream == "true" then
      if via == "litellm" then model = "gpt-4o-mini-stream" else path = path .. "?stream=1" end
    end
    local chat_headers = { ["Content-Type"] = "application/json" }
    if via == "relay" or via == "policy" then
      chat_headers["X-Application-ID"] = credential
      chat_headers["X-User-ID"] = "bench-relay"
    else
      chat_headers["Authorization"] = "Bearer " .. credential
    end
    local usage = stream == "true" and ',"stream_options":{"include_usage":true}' or ""
    return wrk.format("POST", path, chat_headers,
      '{"model":"' .. model .. '","stream":' .. stream .. usage .. ',"messages":[{"role":"user","content":"Say hello"}]}')
  elseif workload:sub(1, 10) == "anthropic_" then
    -- A streamed Anthropic message: straight to the stand-in (`_direct`, the credential is the key) or
    -- through our relay's /relay/anthropic (`_relay`, the credential is an application id).
    local via = workload:match("_(%a+)$")
    local message_headers = { ["Content-Type"] = "application/json", ["anthropic-version"] = "2023-06-01" }
    local path = "/v1/messages"
    if via == "relay" then
      path = "/relay/anthropic/v1/messages"
      message_headers["X-Application-ID"] = credential
      message_headers["X-User-ID"] = "bench-relay"
    else
      message_headers["x-api-key"] = credential
    end
    return wrk.format("POST", path, message_headers,
      '{"model":"claude-haiku-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Say hello"}]}')
  elseif workload == "health" then
    return wrk.format("GET", "/health")
  elseif workload == "bao_write" or workload == "bao_write_one" then
    local index = workload == "bao_write_one" and 0 or math.random(0, users - 1)
    return json_post("/v1/secret/data/users/user-" .. index,
      '{"data":{"api_key":"' .. key_for(index) .. '","api_key_name":"name-' .. tid .. '-' .. n .. '"}}')
  elseif workload == "bao_health" then
    return wrk.format("GET", "/v1/sys/health")
  end
  error("unknown workload " .. workload)
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_OUT"), "w")
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d}}',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
  out:close()
end
