-- bh.every(period, fn, {jitter = 0.1, immediate = true, count = nil,
-- name = nil}): run fn as a new task every `period` seconds. Runs of one
-- job never overlap: the next run waits for the current one; a run that
-- takes longer than the period delays the next (which then starts at
-- once) and is logged (bh.log.error: at most one line a minute). An error in
-- a run is logged the same way (the first at once, then at most one line a
-- minute saying how many were not) and the job goes on. A run that returns false (exactly)
-- stops the job. Each wait is period * (1 ± jitter), so that many hosts
-- started together do not probe in lockstep. Returns the job's task
-- (task:wait() returns after `count` runs; without count it runs until the
-- run is stopped). A module (require "bh.every"); luaopen_bh also puts it in bh.
local bh = require "bh"

local M = {}

local OPTIONS = {
  jitter = { "number", 0, 1, default = 0.1 },
  immediate = { "boolean", default = true },
  count = { "integer", 1, 2 ^ 53, default = nil },
  name = { "string", default = "bh.every" },
}

-- Runs that overran their period are logged at most this often (a tiny
-- period must not log one line per run).
local OVERRUN_LOG_EVERY = 60

-- The wait before the next run: period ± jitter, minus the overrun.
local function next_delay(period, jitter, took)
  local d = period * (1 + jitter * (2 * math.random() - 1))
  return math.max(0, d - took)
end

-- A rate-limited error log: the first line at once, then at most one per
-- OVERRUN_LOG_EVERY seconds, each saying how many it did not print.
local function limited_logger()
  local last, quiet = nil, 0
  return function(text)
    local now = bh.now()
    if last ~= nil and now - last < OVERRUN_LOG_EVERY then
      quiet = quiet + 1
      return
    end
    local also = quiet > 0 and string.format(" (%d more since the last line)", quiet) or ""
    bh.log.error(text .. also)
    last, quiet = now, 0
  end
end

-- One run as its own task; errors are logged (rate-limited), not raised.
-- Returns true when the run asked the job to stop (returned false).
local function run_once(o, fn, n, log_error)
  local t = bh.spawn(function()
    local ok, res = pcall(fn, n)
    if not ok then
      log_error(string.format("%s: run %d failed: %s", o.name, n, tostring(res)))
      return false
    end
    return res == false
  end)
  return t:wait()
end

function M.every(period, fn, opts)
  bh._check_arg("bh.every", 1, period, { "number", 0, 1e9, open = true, name = "period" })
  bh._check_arg("bh.every", 2, fn, "function")
  local o = bh._check_opts("bh.every", opts, OPTIONS)
  local log_overrun, log_error = limited_logger(), limited_logger()
  return bh.spawn(function()
    if not o.immediate then bh.sleep(next_delay(period, o.jitter, 0)) end
    local n = 0
    while o.count == nil or n < o.count do
      n = n + 1
      local started = bh.now()
      local stop = run_once(o, fn, n, log_error)
      local took = bh.now() - started
      if stop or (o.count ~= nil and n >= o.count) then break end
      if took > period then
        log_overrun(string.format("%s: run %d took %.3fs, longer than the %.3fs period; "
          .. "the next run starts now", o.name, n, took, period))
      end
      local d = next_delay(period, o.jitter, took)
      if d > 0 then bh.sleep(d) end
    end
    return n
  end)
end

return M
