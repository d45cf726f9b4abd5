-- bh.every(period, fn, {jitter = 0.1, immediate = true, count = nil,
-- name = nil}): run fn as a new task every `period` seconds. Runs of one
-- job never overlap: the next run waits for the current one; a run that
-- takes longer than the period delays the next (which then starts at
-- once) and is logged on stderr. An error in a run is logged and the job
-- goes on. A run that returns false (exactly) stops the job. Each wait
-- is period * (1 ± jitter), so that many hosts started together do not
-- probe in lockstep. Returns the job's task (task:wait()
-- returns after `count` runs; without count it runs until the run is
-- stopped). A module (require "bh.every"); luaopen_bh also puts it in bh.
local bh = require "bh"

local M = {}

local function bad(name, what)
  error(string.format("bad option '%s' to 'bh.every' (%s)", name, what), 3)
end

local function read_options(opts)
  opts = opts or {}
  if type(opts) ~= "table" then bad("opts", "table expected") end
  local o = { jitter = opts.jitter or 0.1, immediate = opts.immediate,
              count = opts.count, name = opts.name or "bh.every" }
  if o.immediate == nil then o.immediate = true end
  if type(o.jitter) ~= "number" or o.jitter < 0 or o.jitter > 1 then
    bad("jitter", "number in [0, 1] expected")
  end
  if o.count ~= nil and (math.type(o.count) ~= "integer" or o.count < 1) then
    bad("count", "integer >= 1 expected")
  end
  return o
end

-- The wait before the next run: period ± jitter, minus the overrun.
local function next_delay(period, jitter, took)
  local d = period * (1 + jitter * (2 * math.random() - 1))
  return math.max(0, d - took)
end

-- One run as its own task; errors are logged, not raised. Returns true
-- when the run asked the job to stop (returned false).
local function run_once(o, fn, n)
  local t = bh.spawn(function()
    local ok, res = pcall(fn, n)
    if not ok then
      io.stderr:write(string.format("bhprobe-lua: %s: run %d failed: %s\n",
        o.name, n, tostring(res)))
      return false
    end
    return res == false
  end)
  return t:wait()
end

function M.every(period, fn, opts)
  if type(period) ~= "number" or not (period > 0) then -- luacheck: ignore 581 (NaN)
    error("bad argument #1 to 'bh.every' (period must be a number > 0)", 2)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'bh.every' (function expected, got " .. type(fn) .. ")", 2)
  end
  local o = read_options(opts)
  return bh.spawn(function()
    if not o.immediate then bh.sleep(next_delay(period, o.jitter, 0)) end
    local n = 0
    while o.count == nil or n < o.count do
      n = n + 1
      local started = bh.now()
      local stop = run_once(o, fn, n)
      local took = bh.now() - started
      if stop or (o.count ~= nil and n >= o.count) then break end
      if took > period then
        io.stderr:write(string.format(
          "bhprobe-lua: %s: run %d took %.3fs, longer than the %.3fs period; "
          .. "the next run starts now\n", o.name, n, took, period))
      end
      local d = next_delay(period, o.jitter, took)
      if d > 0 then bh.sleep(d) end
    end
    return n
  end)
end

return M
