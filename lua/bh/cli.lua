-- bh.cli: the command line of a policy script, parsed and checked whole
-- before the policy does anything (design §3): every shipped policy uses
-- it, so that they all take --help/-h, refuse a bad option with exit 3
-- (UNKNOWN, as a monitoring plugin says a check could not run) and their
-- usage on stderr, take durations in seconds or the Prometheus forms, and
-- say where an option of bhprobe-lua itself belongs when it was given
-- after the script. A module (require "bh.cli"); also bh.cli.
--
--   local o = bh.cli.parse({ ... }, {
--     name = "manifests.lua",
--     args = { name = "ROOT", key = "roots", min = 0, max = nil },
--     options = {
--       { "--apply", help = "clean up stale records" },          -- a flag
--       { "--every", "duration", help = "run a round every D" },
--       { "--attempts", "integer", default = 3, min = 1, max = 100 },
--     },
--     check = function(o) if ... then return "why" end end,  -- across options
--     about = "what it does", exits = "exit statuses ...",
--     usage_error = function(msg, usage) ... end,  -- says it instead of stderr
--   })
--   o.apply, o.every, o.attempts, o.roots
local bh = require "bh"

local M = {}

-- The exit status of a usage error (monitoring-plugin UNKNOWN).
M.EXIT_USAGE = 3

-- Options of bhprobe-lua itself: given after the script they reach the
-- script, which says where they belong.
local HOST_OPTIONS = { ["--report"] = "FILE", ["--metrics"] = "FILE", ["--listen"] = "ADDR",
  ["--name"] = "NAME", ["--version"] = false, ["-e"] = "CODE", ["-l"] = "NAME",
  ["-i"] = false, ["-v"] = false, ["-W"] = false }

-- Seconds of each Prometheus duration unit, in the order they must come.
local UNITS = { { "y", 365 * 86400 }, { "w", 7 * 86400 }, { "d", 86400 }, { "h", 3600 },
  { "m", 60 }, { "s", 1 }, { "ms", 0.001 } }
local UNIT_RANK = {}
for i, u in ipairs(UNITS) do UNIT_RANK[u[1]] = i end

-- bh.cli.duration(text) -> seconds | nil, why. A plain number is seconds
-- ("0.5", "30"); else the Prometheus form: whole numbers with units y, w,
-- d, h, m, s, ms, largest first, each at most once ("500ms", "1m",
-- "1h30m").
function M.duration(text)
  bh._check_arg("bh.cli.duration", 1, text, "string")
  local n = tonumber(text)
  if n ~= nil and text:match("^%s*[-+]?[%d.]") then
    if n ~= n or n == math.huge then return nil, "not a finite number" end
    return n
  end
  if text == "" then return nil, "empty" end
  local total, rank, pos = 0, 0, 1
  while pos <= #text do
    local digits, unit, next_pos = text:match("^(%d+)(%a+)()", pos)
    local r = unit and UNIT_RANK[unit]
    if not r then
      return nil, "expected seconds (0.5) or a duration such as 500ms, 30s, 1m, 1h"
    end
    if r <= rank then return nil, "units must come largest first, each once" end
    rank, total, pos = r, total + tonumber(digits) * UNITS[r][2], next_pos
  end
  return total
end

-- Why a value is refused by an option's type and range, or nil.
local function convert(opt, text)
  local kind = opt[2]
  local v, why
  if kind == "duration" then
    v, why = M.duration(text)
    if v == nil then return nil, why end
  elseif kind == "integer" then
    v = math.tointeger(tonumber(text))
    if v == nil then return nil, "expected an integer" end
  elseif kind == "number" then
    v = tonumber(text)
    if v == nil or v ~= v then return nil, "expected a number" end
  else
    v = text
  end
  if kind ~= "string" then
    local lo, hi = opt.min, opt.max
    if kind == "duration" and lo == nil then lo = 0 end
    local open = kind == "duration" and opt.min == nil -- a duration is > 0
    if lo and (v < lo or (open and v <= lo)) or (hi and v > hi) then
      local range = string.format("%s%s, %s]", open and "(" or "[", lo and tostring(lo) or "-inf",
        hi and tostring(hi) or "inf")
      return nil, "must be in " .. range .. (kind == "duration" and " seconds" or "")
    end
  end
  return v
end

-- The key of o an option goes to: "--max-depth" -> "max_depth".
local function key_of(opt)
  return opt.key or opt[1]:gsub("^%-+", ""):gsub("%-", "_")
end

-- The usage text of spec.
local function usage_text(spec)
  local lines = {}
  local arg = spec.args and spec.args.name
  local pos = ""
  if arg then
    local min = spec.args.min or 0
    pos = min > 0 and (" " .. arg .. (spec.args.max == 1 and "" or " [" .. arg .. "...]"))
      or (" [" .. arg .. (spec.args.max == 1 and "]" or "...]"))
  end
  lines[#lines + 1] = string.format("usage: bhprobe-lua [host options] %s%s [options]",
    spec.name, pos)
  if spec.about then lines[#lines + 1] = spec.about end
  lines[#lines + 1] = "options (after the script):"
  local opts = {}
  for _, opt in ipairs(spec.options or {}) do opts[#opts + 1] = opt end
  opts[#opts + 1] = { "--help", help = "print this help and exit" }
  for _, opt in ipairs(opts) do
    local head = opt[1] .. (opt[2] and (" " .. (opt.metavar or opt[2]:upper())) or "")
    local help = opt.help or ""
    if opt.default ~= nil then help = help .. " (default " .. tostring(opt.default) .. ")" end
    lines[#lines + 1] = string.format("  %-22s %s", head, help)
  end
  lines[#lines + 1] = "durations: seconds (0.5) or 500ms, 30s, 1m, 1h"
  if spec.exits then lines[#lines + 1] = spec.exits end
  lines[#lines + 1] = "host options (bhprobe-lua's own: see bhprobe-lua --help) go before "
    .. "the script"
  return table.concat(lines, "\n") .. "\n"
end

-- bh.cli.usage(spec) -> the usage text parse prints.
function M.usage(spec)
  bh._check_arg("bh.cli.usage", 1, spec, "table")
  return usage_text(spec)
end

-- A usage error: say it, the usage after it, on stderr; exit 3.
-- spec.usage_error(msg, usage), when given, says it instead (a monitoring
-- plugin's status line on stdout first); the exit status is the same.
local function fail(spec, msg)
  if spec.usage_error then
    spec.usage_error(msg, usage_text(spec))
  else
    io.stderr:write(spec.name, ": ", msg, "\n", usage_text(spec))
    io.stderr:flush()
  end
  os.exit(spec.exit_usage or M.EXIT_USAGE)
end

-- The message for an option that is not the policy's.
local function unknown(spec, a)
  local name = a:match("^(%-%-?[^=]+)")
  local host = HOST_OPTIONS[name]
  if host ~= nil then
    return string.format("'%s' is an option of bhprobe-lua, not of %s: put it before "
      .. "the script: bhprobe-lua %s%s %s ...", name, spec.name, name,
      host and (" " .. host) or "", spec.name)
  end
  return "unknown option '" .. name .. "'"
end

local SPEC = { name = { "string", required = true }, args = { "table" }, options = { "table" },
  check = { "function" }, about = { "string" }, exits = { "string" },
  exit_usage = { "integer", 0, 255 }, usage_error = { "function" } }

-- bh.cli.parse(args, spec) -> o. args: the script's arguments ({...});
-- spec: see the head of this file. --help or -h prints the usage on
-- stdout and exits 0; anything wrong prints the reason and the usage on
-- stderr and exits 3. Options may come before, between or after the
-- positional arguments, as --name VALUE or --name=VALUE; "--" ends them.
function M.parse(args, spec)
  bh._check_arg("bh.cli.parse", 1, args, "table")
  bh._check_arg("bh.cli.parse", 2, spec, "table")
  spec = bh._check_opts("bh.cli.parse", spec, SPEC)
  local by_name, o = {}, {}
  for _, opt in ipairs(spec.options or {}) do
    by_name[opt[1]] = opt
    if opt.default ~= nil then
      o[key_of(opt)] = opt.default
    elseif not opt[2] then
      o[key_of(opt)] = false -- a flag not given
    end
  end
  local pos, i, n = {}, 1, args.n or #args
  while i <= n do
    local a = args[i]
    if a == "--help" or a == "-h" then
      io.stdout:write(usage_text(spec))
      io.stdout:flush()
      os.exit(0)
    elseif a == "--" then
      table.move(args, i + 1, n, #pos + 1, pos)
      break
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
      local opt = by_name[name or a]
      if not opt then fail(spec, unknown(spec, a)) end
      if not opt[2] then
        if inline then fail(spec, opt[1] .. " takes no value") end
        o[key_of(opt)] = true
      else
        local text = inline
        if text == nil then
          i = i + 1
          text = args[i]
          if text == nil then fail(spec, opt[1] .. " needs a value") end
        end
        local v, why = convert(opt, text)
        if v == nil then fail(spec, string.format("%s %s: %s", opt[1], text, why)) end
        o[key_of(opt)] = v
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  local pa = spec.args
  if pa then
    if #pos < (pa.min or 0) then fail(spec, "missing " .. pa.name) end
    if pa.max and #pos > pa.max then
      fail(spec, pa.max == 1 and ("one " .. pa.name .. " at a time")
        or ("at most " .. pa.max .. " " .. pa.name))
    end
    o[pa.key or "args"] = pos
  elseif #pos > 0 then
    fail(spec, "unexpected argument '" .. pos[1] .. "'")
  end
  if spec.check then
    local why = spec.check(o)
    if why then fail(spec, why) end
  end
  return o
end

return M
