-- bh.retry: call a function again while it fails with a retryable error,
-- sleeping an exponentially growing, jittered delay between attempts.
-- A module (require "bh.retry"); luaopen_bh also puts its functions in bh.
local bh = require "bh"

local M = {}

local random, type = math.random, type

-- The codes worth another try: the peer may just be slow or restarting.
local DEFAULT_RETRY_ON = { timeout = true, connect = true, io = true }

-- The options and their ranges (bh._check_opts: the C checker, so the
-- messages are those of every bh function, at the caller's line).
local OPTIONS = {
  attempts = { "integer", 1, 1000000, default = 3 },
  backoff = { "number", 0, 86400, default = 0.1 },
  factor = { "number", 1, 1000, default = 2 },
  max_backoff = { "number", 0, 86400, default = 2 },
  jitter = { "number", 0, 1, default = 0.1 },
  retry_on = { "table|function" },
}

-- Turns opts.retry_on (a set {code = true}, a list {"code", ...} or a
-- function(err) -> boolean) into a predicate on the error value.
local function retry_predicate(retry_on)
  if retry_on == nil then retry_on = DEFAULT_RETRY_ON end
  if type(retry_on) == "function" then return retry_on end
  local set = {}
  for k, v in pairs(retry_on) do
    if type(k) == "number" then set[v] = true elseif v then set[k] = true end
  end
  return function(err)
    return type(err) == "table" and set[err.code] == true
  end
end

-- The pause after failed attempt n: backoff * factor^(n-1), capped at
-- max_backoff, then moved by up to ±jitter of itself.
local function delay_after(o, n)
  local d = o.backoff * o.factor ^ (n - 1)
  if d > o.max_backoff then d = o.max_backoff end
  if o.jitter > 0 then d = d * (1 + o.jitter * (2 * random() - 1)) end
  return d
end

-- bh.retry(fn, opts) -> whatever the last call of fn returned (all values).
-- fn is called again while it returns nil, err with a retryable err and
-- attempts remain. Sleeping uses bh.sleep, so call it from a task.
function M.retry(fn, opts)
  bh._check_arg("bh.retry", 1, fn, "function")
  local o = bh._check_opts("bh.retry", opts, OPTIONS)
  o.retryable = retry_predicate(o.retry_on)
  local n = 0
  while true do
    n = n + 1
    local res = table.pack(fn())
    if res[1] ~= nil or n >= o.attempts or not o.retryable(res[2]) then
      return table.unpack(res, 1, res.n)
    end
    local d = delay_after(o, n)
    if d > 0 then bh.sleep(d) end
  end
end

return M
