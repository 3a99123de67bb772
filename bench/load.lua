-- bench/wrk.py's script for wrk: posts the same bodies as bench/load.py and prints one JSON line.
--   wrk -t1 -c16 -d5s --latency -s bench/load.lua URL -- chat|embeddings|stream [KEY]
-- The JSON (last line of stdout): requests (answers with status < 400), errors (status > 399,
-- as wrk counts them, plus connect/read/write errors and timeouts), req_per_s, p50_ms, p99_ms,
-- duration_s (the run's own clock) and bytes (all read, heads included).
-- No response() function: wrk then skips Lua for each answer and only parses the HTTP framing
-- (a stream is counted when its last chunk has arrived).

local bodies = {
  chat = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello, how are you?"}]}',
  embeddings = '{"model": "embed", "input": "Hello, how are you?"}',
  stream = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello, how are you?"}], "stream": true}',
}

function init(args)
  local kind = args[1] or "chat"
  wrk.method = "POST"
  wrk.body = assert(bodies[kind], "body: chat, embeddings or stream")
  wrk.headers["content-type"] = "application/json"
  if args[2] and args[2] ~= "" then
    wrk.headers["authorization"] = "Bearer " .. args[2]
    wrk.headers["api-key"] = args[2]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local ok = summary.requests - e.status
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests": %d, "errors": %d, "req_per_s": %.3f, "p50_ms": %.4f, "p99_ms": %.4f, "duration_s": %.3f, "bytes": %d}\n',
    ok, errors, ok / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000, seconds, summary.bytes))
end
