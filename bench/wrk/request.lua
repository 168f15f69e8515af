-- One wrk script for every benchmark, configured through the environment:
--   WRK_METHOD       GET (default), POST, ...
--   WRK_BODY_FILE    path of the request body (sent as is)
--   WRK_HEADER_1..16 "Name: value" request headers (auth, content type, Range)
--   WRK_RATE         requests per second for this whole run (0 = as fast as possible);
--                    each thread paces itself at WRK_RATE / WRK_THREADS
--   WRK_THREADS      wrk's -t, to split WRK_RATE between threads
--   WRK_PATHS_FILE   one request path per line; each request takes a random one
-- done() prints one line "WRKJSON {...}" with counts and latency percentiles (in us),
-- which bench/harness.py parses.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

wrk.method = os.getenv("WRK_METHOD") or "GET"

local body_file = os.getenv("WRK_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
end

for i = 1, 16 do
  local header = os.getenv("WRK_HEADER_" .. i)
  if header and header ~= "" then
    local name, value = header:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
end

local paths_file = os.getenv("WRK_PATHS_FILE")
local paths = nil
if paths_file and paths_file ~= "" then
  paths = {}
  for line in io.lines(paths_file) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
end

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("seed", thread_count)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

if paths then
  function request()
    return wrk.format(nil, paths[math.random(#paths)])
  end
end

local rate = tonumber(os.getenv("WRK_RATE") or "0") or 0
local threads = tonumber(os.getenv("WRK_THREADS") or "1") or 1
local interval_ms = 0
if rate > 0 then
  interval_ms = 1000 * threads / rate
end
local next_slot = nil

-- Called by wrk before each request of a connection when defined. Every request of
-- this thread takes the next free slot of a fixed schedule, so the thread sends at
-- most interval_ms apart on average (an open-loop rate as long as connections are free).
if interval_ms > 0 then
  function delay()
    local now = now_ms()
    if next_slot == nil or next_slot < now then
      next_slot = now
    end
    local wait = next_slot - now
    next_slot = next_slot + interval_ms
    return math.floor(wait)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, "connect": %.0f, '
      .. '"read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f, '
      .. '"p50": %.0f, "p90": %.0f, "p99": %.0f, "max": %.0f, "mean": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean
  ))
end
