-- bh.threshold: turn a stream of check results into a stable state, the
-- way Kubernetes probes use successThreshold and failureThreshold: the
-- state becomes "healthy" only after `success` consecutive successes and
-- "unhealthy" only after `failure` consecutive failures; it starts as
-- "unknown" (or opts.initial). A module (require "bh.threshold");
-- luaopen_bh also puts its function in bh.
local bh = require "bh"

local M = {}

local Threshold = {}
Threshold.__index = Threshold

local STATES = { "unknown", "healthy", "unhealthy" }

local OPTIONS = {
  success = { "integer", 1, 1000000, default = 1 },
  failure = { "integer", 1, 1000000, default = 3 },
  initial = { "string", one_of = STATES, default = "unknown" },
}

-- bh.threshold{success = 1, failure = 3, initial = "unknown"} -> threshold
function M.threshold(opts)
  local o = bh._check_opts("bh.threshold", opts, OPTIONS)
  return setmetatable({
    success = o.success,
    failure = o.failure,
    state = o.initial,
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
local RESET_STATE = { "string", one_of = STATES, default = "unknown" }
function Threshold:reset(state)
  -- argument 2 of the method call (self is 1): "bad argument #1"
  state = bh._check_arg("threshold:reset", 2, state, RESET_STATE)
  self.state, self.successes, self.failures = state, 0, 0
end

function Threshold:__tostring()
  return string.format("threshold: %s (%d ok, %d failed in a row; needs %d/%d)",
    self.state, self.successes, self.failures, self.success, self.failure)
end

return M
