-- bh.retry: call a function again while it fails with a retryable error,
-- sleeping an exponentially growing, jittered delay between attempts.
-- A module (require "bh.retry"); luaopen_bh also puts its functions in bh.
local bh = require "bh"

local M = {}

local floor, random, type = math.floor, math.random, type

-- The codes worth another try: the peer may just be slow or restarting.
local DEFAULT_RETRY_ON = { timeout = true, connect = true, io = true }

-- Raises a misuse error naming the option, as the C functions do.
local function bad_option(name, what)
  error(string.format("bad option '%s' to 'bh.retry' (%s)", name, what), 3)
end

-- Returns opts[name] (or the default) after checking it is a number >= min;
-- integer options must also be whole.
local function number_option(opts, name, default, min, integer)
  local v = opts[name]
  if v == nil then return default end
  if type(v) ~= "number" then bad_option(name, "number expected, got " .. type(v)) end
  if v ~= v or v < min then bad_option(name, "must be >= " .. min) end
  if integer and floor(v) ~= v then bad_option(name, "integer expected") end
  return v
end

-- Turns opts.retry_on (a set {code = true}, a list {"code", ...} or a
-- function(err) -> boolean) into a predicate on the error value.
local function retry_predicate(retry_on)
  if retry_on == nil then retry_on = DEFAULT_RETRY_ON end
  if type(retry_on) == "function" then return retry_on end
  if type(retry_on) ~= "table" then
    bad_option("retry_on", "table or function expected, got " .. type(retry_on))
  end
  local set = {}
  for k, v in pairs(retry_on) do
    if type(k) == "number" then set[v] = true elseif v then set[k] = true end
  end
  return function(err)
    return type(err) == "table" and set[err.code] == true
  end
end

-- Reads and checks every option once, before the first attempt.
local function read_options(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #2 to 'bh.retry' (table expected, got " .. type(opts) .. ")", 3)
  end
  local o = {
    attempts = number_option(opts, "attempts", 3, 1, true),
    backoff = number_option(opts, "backoff", 0.1, 0),
    factor = number_option(opts, "factor", 2, 1),
    max_backoff = number_option(opts, "max_backoff", 2, 0),
    jitter = number_option(opts, "jitter", 0.1, 0),
    retryable = retry_predicate(opts.retry_on),
  }
  if o.jitter > 1 then bad_option("jitter", "must be <= 1") end
  return o
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
  if type(fn) ~= "function" then
    error("bad argument #1 to 'bh.retry' (function expected, got " .. type(fn) .. ")", 2)
  end
  local o = read_options(opts)
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
