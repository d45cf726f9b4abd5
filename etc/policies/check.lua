-- check.lua: one daemon, as a monitoring plugin (design §3.4): a
-- Nagios/Icinga check, a Kubernetes exec probe.
--
--   bhprobe-lua check.lua [--timeout DURATION] [--attempts N] [--verbose] TARGET
--
-- TARGET is a cache manifest (.running-process-manifest.pb), a central
-- registry file (SERVICE-VERSION.pb) or an identity JSON (design §1.7),
-- told apart by content, not by name. The first line of the output is
-- always the one status line
--
--   BHPROBE STATE - text | time=0.000412s;;;0
--
-- (the verdict, the service and, when not OK, the code and the reason in
-- a few words; time is the probe's, or the check's when nothing was
-- probed), whatever happens, a usage error included; details follow it
-- (the usage, the whole reason, with --verbose the steps and timings).
-- Exit status (design §1.11): 0 OK verified; 1 WARNING stale,
-- unreachable, outdated, or a record naming no daemon; 2 CRITICAL
-- impostor, squatted, invalid; 3 UNKNOWN a usage error, a TARGET that
-- cannot be read, another machine's record (nothing could be checked),
-- no answer within the check's bound. With the defaults (one attempt of
-- 0.5 s) it answers within 1 s whatever the daemon does.
local bh = bh or require "bh"

local STATE = { [0] = "OK", "WARNING", "CRITICAL", "UNKNOWN" }
local STATUS = { verified = 0, stale = 1, unreachable = 1, outdated = 1, impostor = 2,
  squatted = 2, invalid = 2, foreign = 3 }
-- The pause before a retry: short, so that --attempts N stays bounded.
local BACKOFF = 0.05

local started = bh.now()

-- s for the status line: one line, no '|' (the start of the perfdata),
-- at most about n bytes (bh.cut: the one cut of strings from records).
local function plain(s, n)
  return bh.cut((tostring(s):gsub("[%c|]", " ")), n or 160)
end

-- Print the status line (then details, when given) and exit with status.
local function finish(status, text, seconds, details)
  io.stdout:write(string.format("BHPROBE %s - %s | time=%.6fs;;;0\n", STATE[status],
    plain(text), seconds or (bh.now() - started)))
  if details and details ~= "" then io.stdout:write(details) end
  io.stdout:flush()
  os.exit(status)
end

local SPEC = {
  name = "check.lua",
  about = "Probes one daemon, recorded in TARGET (a manifest, a registry file or an identity\n"
    .. "JSON), and says so as a monitoring plugin: one status line, exit 0/1/2/3.",
  args = { name = "TARGET", key = "targets", min = 1, max = 1 },
  options = {
    { "--timeout", "duration", default = 0.5, max = 60, help = "deadline of one attempt" },
    { "--attempts", "integer", default = 1, min = 1, max = 10,
      help = "attempts of a probe that may clear up by itself" },
    { "--verbose", help = "the probe's steps and their timings after the status line" },
  },
  exits = "exit status: 0 OK verified; 1 WARNING stale, unreachable, outdated, no daemon;\n"
    .. "2 CRITICAL impostor, squatted, invalid; 3 UNKNOWN usage error, TARGET unreadable,\n"
    .. "another machine's record, no answer in time",
  usage_error = function(msg, usage) finish(3, "usage: " .. msg, nil, usage) end,
}

-- Note a step, timed from t0.
local function note(steps, t0, step, result, detail)
  steps[#steps + 1] = { step = step, ms = (bh.now() - t0) * 1000, result = result,
    detail = detail }
end

-- The text of a regular file bh.manifest.read just read (so small, and
-- no FIFO that would block): nil when it cannot be read now.
local function text_of(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read(1 << 20)
  f:close()
  return text
end

-- The record of a manifest or registry file m (read, with info).
local function judge_manifest(m, info, o, steps)
  local d = m.current_daemon
  local base = { service = m.service_name }
  if not d then
    base.err = { code = "no_daemon", stage = "manifest",
      message = "the record names no daemon (cleared, or the daemon stopped)" }
    return bh.probe_record(base)
  end
  local t0 = bh.now()
  local here, ferr = bh.manifest.check_host(m)
  note(steps, t0, "check the host", here and "this machine" or ferr.code)
  if not here then
    base.err, base.expected = ferr, d
    return bh.probe_record(base)
  end
  local rec = bh.check_daemon(d, { service = m.service_name, timeout = o.timeout,
    attempts = o.attempts, backoff = BACKOFF, owner = info.uid, steps = steps })
  rec.generation = d.exe_hash and 2 or 1
  return rec
end

-- TARGET read and probed: the record, what TARGET was, or nil, why (it
-- cannot be read: UNKNOWN).
local function judge(target, o)
  local steps = {}
  local t0 = bh.now()
  local m, info = bh.manifest.read(target)
  if m then
    note(steps, t0, "read the record", "ok", string.format("owner uid %d, mode %04o", info.uid,
      info.mode))
    local base = target:match("[^/]*$")
    local kind = base ~= bh.manifest.NAME and base:match("^[^.].*%-.+%.pb$") and "registry file"
      or "manifest"
    local rec = judge_manifest(m, info, o, steps)
    rec.manifest, rec.steps = target, steps
    return rec, kind
  end
  if info.code == "manifest_io" or info.code == "system" then return nil, tostring(info) end
  -- Not a manifest: an identity JSON, when it reads as one.
  local text = text_of(target)
  if text and text:match("^%s*{") then
    local id, jerr = bh.identity.from_json(text)
    note(steps, t0, "read the identity JSON", id and "ok" or jerr.code)
    local rec = id and bh.check_daemon(id, { timeout = o.timeout, attempts = o.attempts,
      backoff = BACKOFF, steps = steps }) or bh.probe_record{ err = jerr }
    rec.steps = steps
    return rec, "identity JSON"
  end
  note(steps, t0, "read the record", info.code)
  local rec = bh.probe_record{ err = info }
  rec.manifest, rec.steps = target, steps
  return rec, "manifest"
end

-- What the status line calls the daemon: its service, else its endpoint.
local function name_of(rec, target)
  if type(rec.service) == "string" and rec.service ~= "" then return rec.service end
  local path = rec.endpoint and rec.endpoint.path
  if type(path) == "string" then return path end
  return target
end

local o = bh.cli.parse({ ... }, SPEC)
local target = o.targets[1]
-- The check's own bound: every attempt's deadline and pause, and a margin
-- for reading TARGET (a file system that hangs must not hang the check).
local bound = o.attempts * o.timeout + (o.attempts - 1) * BACKOFF + 0.25
local ok, rec, kind = pcall(bh.timeout, bound, judge, target, o)
if not ok then finish(3, "internal error: " .. tostring(rec)) end
if rec == nil and type(kind) == "table" then -- bh.timeout's own timeout
  finish(3, string.format("no answer within %.3g s: %s", bound, target))
end
if rec == nil then finish(3, "unreadable " .. tostring(kind)) end

local status = STATUS[rec.verdict] or 3
local name = name_of(rec, target)
local text
if rec.verdict == "verified" then
  text = string.format("verified %s, pid %s", name, tostring(rec.peer_pid))
else
  text = string.format("%s %s: %s (%s)", rec.verdict, name, tostring(rec.code),
    plain(rec.message or rec.code, 100))
end
local details = {}
if o.verbose then
  details[1] = "target     " .. plain(target, 4096) .. " (" .. kind .. ")\n"
  details[2] = bh.describe(rec)
elseif rec.message then
  details[1] = plain(rec.message, 1024) .. "\n"
end
local seconds = type(rec.elapsed_ms) == "number" and rec.elapsed_ms / 1000 or nil
finish(status, text, seconds, table.concat(details))
