-- wrk script of bench/web_load.py. Environment:
--   WRK_MODE     "get": cycle through the paths of WRK_LIST (one a line), each thread from its own place;
--                "post": send the lines of WRK_LIST ("index TAB path TAB form body") once each; thread t takes the
--                lines whose index % WRK_THREADS == t, in file order, from offset t of WRK_STARTS ("0,0"): every
--                request is a fresh submission, a participant's pages go in order through one thread. When a
--                thread runs out it sends GET /web-load-bench-ran-out (counted as "exhausted", an error);
--                "post-fixed": POST WRK_BODY plus a request counter to WRK_PATH (the bare insert).
-- done() prints "RESULT requests duration_us p50_us p99_us connect read write timeout" and for each thread
-- "THREAD tid sent offset exhausted status:count ...", from which the bench counts acknowledged submissions.
local mode = os.getenv("WRK_MODE")
local list = os.getenv("WRK_LIST")
local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
local starts = os.getenv("WRK_STARTS") or ""
local fixed_path = os.getenv("WRK_PATH")
local fixed_body = os.getenv("WRK_BODY") or ""
local form_headers = {["Content-Type"] = "application/x-www-form-urlencoded"}

local threads = {}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  threads[#threads + 1] = thread
  counter = counter + 1
end

-- per-thread globals (read back in done())
statuses = {}
sent = 0
offset = 0
exhausted = 0
local items = {}
local verifying = false

function init(args)
  -- wrk calls request() once on the first thread's state after init() to check the request (script_verify_request);
  -- that request is never sent, so it must not use up a submission
  verifying = tid == 0
  if mode == "get" then
    for line in io.lines(list) do items[#items + 1] = line end
    offset = (tid * 7919) % #items
  elseif mode == "post" then
    for line in io.lines(list) do
      local n, path, body = line:match("^(%-?%d+)\t([^\t]+)\t(.*)$")
      if n and tonumber(n) % nthreads == tid then items[#items + 1] = {path, body} end
    end
    local i = 0
    for s in string.gmatch(starts, "[^,]+") do
      if i == tid then offset = tonumber(s) end
      i = i + 1
    end
  end
end

function request()
  if verifying then
    verifying = false
    return wrk.format("GET", "/")
  end
  sent = sent + 1
  if mode == "get" then
    offset = offset % #items + 1
    return wrk.format("GET", items[offset])
  elseif mode == "post-fixed" then
    return wrk.format("POST", fixed_path, form_headers, fixed_body .. "&n=" .. tid .. "-" .. sent)
  end
  if offset >= #items then
    exhausted = exhausted + 1
    return wrk.format("GET", "/web-load-bench-ran-out")
  end
  offset = offset + 1
  return wrk.format("POST", items[offset][1], form_headers, items[offset][2])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.timeout))
  for _, t in ipairs(threads) do
    io.write(string.format("THREAD %d %d %d %d", t:get("tid"), t:get("sent"), t:get("offset"), t:get("exhausted")))
    for status, n in pairs(t:get("statuses")) do io.write(string.format(" %d:%d", status, n)) end
    io.write("\n")
  end
end
