-- bh.threshold: turn a stream of check results into a stable state, the
-- way Kubernetes probes use successThreshold and failureThreshold: the
-- state becomes "healthy" only after `success` consecutive successes and
-- "unhealthy" only after `failure` consecutive failures; it starts as
-- "unknown" (or opts.initial). A module (require "bh.threshold");
-- luaopen_bh also puts its function in bh.

local M = {}

local Threshold = {}
Threshold.__index = Threshold

local STATES = { unknown = true, healthy = true, unhealthy = true }

-- Checks a positive integer option, raising an error that names it.
local function count_option(opts, name, default)
  local v = opts[name]
  if v == nil then return default end
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    error(string.format("bad option '%s' to 'bh.threshold' (integer expected, got %s)",
      name, type(v)), 3)
  end
  if v < 1 then
    error(string.format("bad option '%s' to 'bh.threshold' (must be >= 1)", name), 3)
  end
  return math.tointeger(v)
end

-- bh.threshold{success = 1, failure = 3, initial = "unknown"} -> threshold
function M.threshold(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'bh.threshold' (table expected, got " .. type(opts) .. ")", 2)
  end
  local initial = opts.initial or "unknown"
  if not STATES[initial] then
    error("bad option 'initial' to 'bh.threshold' (unknown, healthy or unhealthy expected)", 2)
  end
  return setmetatable({
    success = count_option(opts, "success", 1),
    failure = count_option(opts, "failure", 3),
    state = initial,
    successes = 0, -- consecutive successes so far
    failures = 0, -- consecutive failures so far
  }, Threshold)
end

-- t:observe(ok) -> state, changed. Any true value counts as a success, so
-- t:observe(bh.probe(...)) works; nil or false is a failure.
function Threshold:observe(ok)
  local before = self.state
  if ok then
    self.successes, self.failures = self.successes + 1, 0
    if self.successes >= self.success then self.state = "healthy" end
  else
    self.failures, self.successes = self.failures + 1, 0
    if self.failures >= self.failure then self.state = "unhealthy" end
  end
  return self.state, self.state ~= before
end

-- t:reset([state]): forget the streak and go back to `state` (default
-- "unknown"), e.g. when the identity being watched was replaced.
function Threshold:reset(state)
  state = state or "unknown"
  if not STATES[state] then
    error("bad argument #1 to 'reset' (unknown, healthy or unhealthy expected)", 2)
  end
  self.state, self.successes, self.failures = state, 0, 0
end

function Threshold:__tostring()
  return string.format("threshold: %s (%d ok, %d failed in a row; needs %d/%d)",
    self.state, self.successes, self.failures, self.success, self.failure)
end

return M
