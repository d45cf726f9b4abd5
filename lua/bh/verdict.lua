-- bh.verdict and bh.probe_record: the ONE classification of a probe
-- outcome and the standard report record built from it. A module
-- (require "bh.verdict"); luaopen_bh also puts its functions in bh.
local bh = require "bh"

local M = {}

local type, tostring = type, tostring

-- Codes (design §1.6) by verdict (design §1.11).
--   stale:       the recorded process is provably gone: its pid is not
--                running, the machine rebooted, the pid was reused, or
--                it now runs another program (another path or digest);
--                and its endpoint is not held by another process (the
--                probe's listener check: err.peer absent), or held by its
--                successor (err.successor).
--   squatted:    gone as for stale, yet something else listens on its
--                endpoint (err.peer, no err.successor).
--   outdated:    the recorded process runs the recorded image and
--                answers as recorded, but its file was replaced or
--                deleted on disk (exe_deleted): a restart is due.
--   impostor:    something alive answers as the daemon and is not it: a
--                lying or malformed answer, or the answer came from
--                another process than the verified one.
--   unreachable: we could not tell (the socket does not answer although
--                the process is alive and verified, timeouts, I/O, an
--                executable we may not read): never cleaned up.
--   foreign:     recorded by another machine sharing the disk.
--   invalid:     the record itself is malformed, corrupt or too new.
local VERDICT_OF = {
  pid_not_found = "stale",
  boot_id_mismatch = "stale",
  pid_reused = "stale",
  exe_path_mismatch = "stale",
  exe_sha256_mismatch = "stale",
  exe_hash_mismatch = "stale",

  exe_deleted = "outdated",

  identity_mismatch = "impostor",
  peer_mismatch = "impostor",
  unsupported_framing_version = "impostor",
  frame_too_large = "impostor",
  decode_frame = "impostor",
  unexpected_frame = "impostor",
  malformed_payload = "impostor",
  decode_identity = "impostor",
  missing_endpoint = "impostor",
  invalid_sha256_length = "impostor",
  invalid_hash_length = "impostor",
  unsupported_hash_algorithm = "impostor",

  connect = "unreachable",
  owner_cannot_connect = "unreachable",
  timeout = "unreachable",
  io = "unreachable",
  exe_path = "unreachable",
  exe_hash = "unreachable",
  system = "unreachable",

  foreign_host = "foreign",

  endpoint_mismatch = "invalid",
  invalid_endpoint = "invalid",
  invalid_pid = "invalid",
  invalid_json = "invalid",
  invalid_identity = "invalid",
  manifest_io = "invalid",
  manifest_decode = "invalid",
  manifest_corrupt = "invalid",
  manifest_schema_too_new = "invalid",
  manifest_too_large = "invalid",
  insecure_registry = "invalid",
}

-- Stages whose errors are about the record, whatever the code: a manifest
-- holding an identity without endpoint is a bad record, not an impostor.
local RECORD_STAGES = { manifest = true, identity = true, endpoint = true }

M.VERDICTS = { "verified", "stale", "impostor", "unreachable", "foreign", "invalid",
  "squatted", "outdated" }

-- bh.verdict(err) -> "verified" | "stale" | "impostor" | "unreachable" |
-- "foreign" | "invalid" | "squatted" | "outdated". err is the error of a
-- probe (nil = verified), or no_daemon (a record that names no daemon:
-- stale). An unknown code is "unreachable": never clean
-- up what we do not understand. A stale code with err.peer (something
-- accepted on the endpoint of the gone process) is "squatted" unless
-- err.successor says it was the daemon's successor.
function M.verdict(err)
  if err == nil then return "verified" end
  bh._check_arg("bh.verdict", 1, err, "table")
  if err.code == "foreign_host" then return "foreign" end
  -- a record that names no daemon (cleared by --apply or by the daemon
  -- itself): no recorded process runs
  if err.code == "no_daemon" then return "stale" end
  if RECORD_STAGES[err.stage] then return "invalid" end
  local v = VERDICT_OF[err.code] or "unreachable"
  if v == "stale" and err.peer ~= nil and err.successor == nil then return "squatted" end
  return v
end

local null = bh.null

local function or_null(v)
  if v == nil then return null end
  return v
end

-- Rounds seconds to milliseconds with 3 decimals (a stable, short field).
local function ms(seconds)
  if type(seconds) ~= "number" then return null end
  return math.floor(seconds * 1e6 + 0.5) / 1e3
end

-- The listener of a squatted endpoint, or whoever answered as an impostor:
-- {pid, uid, gid, exe} as err.peer gives it (exe already capped by the
-- probe), for a report line.
local function peer_of(err, verdict)
  local p = err and err.peer
  if type(p) ~= "table" or (verdict ~= "squatted" and verdict ~= "impostor") then
    return nil
  end
  return { pid = p.pid, uid = p.uid, gid = p.gid, exe = p.exe }
end

-- What the peer claimed to be (err.got), for a report line: only for an
-- impostor or a squatter, whose lie is the news; its strings are cut by
-- the report itself.
local function got_of(err, verdict)
  local g = err and err.got
  if type(g) ~= "table" or (verdict ~= "squatted" and verdict ~= "impostor") then
    return nil
  end
  return g
end

-- bh.probe_record{service =, endpoint =, expected =, handle =, err =,
--                 elapsed =} -> the standard record table:
--   ts, service, endpoint {namespace_id, path}, verdict, code, field,
--   elapsed_ms, pid, peer_pid (absent values are JSON null), and for an
--   identity_mismatch fields, every differing field; for a squatted or
--   impostor verdict peer = {pid, uid, gid, exe} of the listener and got
--   = the identity it answered with (when its answer decoded); for a
--   stale record whose successor listens, successor = its pid.
-- endpoint defaults to expected.ipc_endpoint; elapsed (seconds) to
-- handle.elapsed.
-- expected: an identity table or a prepared identity, read alike.
local RECORD_FIELDS = { service = { "any" }, endpoint = { "table" },
  expected = { "table|bh.identity" },
  handle = { "any" }, err = { "table" }, elapsed = { "number", 0, 1e9 } }

function M.probe_record(o)
  bh._check_arg("bh.probe_record", 1, o, "table")
  o = bh._check_opts("bh.probe_record", o, RECORD_FIELDS)
  -- a record says how a probe went: without its handle or its error there
  -- is nothing to classify (an empty table is not "verified")
  if o.handle == nil and o.err == nil then
    error("bh.probe_record: needs the probe's handle or its err", 2)
  end
  local expected, h, err = o.expected, o.handle, o.err
  local ep = o.endpoint or (expected and expected.ipc_endpoint) or {}
  local elapsed = o.elapsed
  if elapsed == nil and h ~= nil then elapsed = h.elapsed end
  local verdict = M.verdict(err)
  return {
    ts = bh.timestamp(),
    service = or_null(o.service),
    endpoint = { namespace_id = or_null(ep.namespace_id), path = or_null(ep.path) },
    verdict = verdict,
    code = err and or_null(err.code) or null,
    field = err and or_null(err.field) or null,
    fields = err and err.fields or nil,
    elapsed_ms = ms(elapsed),
    pid = expected and or_null(expected.pid) or null,
    peer_pid = h ~= nil and or_null(h.peer_pid) or null,
    message = err and tostring(err.message or err) or nil,
    peer = peer_of(err, verdict),
    got = got_of(err, verdict),
    successor = err and math.tointeger(err.successor) or nil,
  }
end

-- What bh.check_daemon retries by default: what may clear up by itself
-- (a timeout, I/O, a refused connection of a daemon restarting, an
-- executable that could not be read).
local RETRY_ON = { timeout = true, io = true, connect = true, exe_path = true, exe_hash = true }

local CHECK_OPTIONS = {
  service = { "any" },
  timeout = { "number", 0, 86400, open = true, default = 0.5 },
  attempts = { "integer", 1, 100, default = 1 },
  backoff = { "number", 0, 60, default = 0.1 },
  retry_on = { "table|function" },
  owner = { "integer", 0, 4294967294 },
  steps = { "table" },
}

-- "verify_pid 0.120 ms, connect 0.030 ms, exchange 0.260 ms": where an
-- attempt's time went (the phases that ran).
local function timings_text(t)
  if type(t) ~= "table" then return nil end
  local parts = {}
  for _, k in ipairs({ "verify", "connect", "exchange" }) do
    if type(t[k]) == "number" then
      parts[#parts + 1] = string.format("%s %.3f ms", k == "verify" and "verify_pid" or k,
        t[k] * 1000)
    end
  end
  return #parts > 0 and table.concat(parts, ", ") or nil
end

-- bh.check_daemon(daemon, opts) -> record: probe the daemon an identity
-- records, at its ipc_endpoint, retrying what may clear up by itself, and
-- return its standard record (bh.probe_record). opts: service (the
-- record's), timeout (of one attempt, default 0.5 s), attempts (default
-- 1), backoff (before a retry, default 0.1 s), retry_on (bh.retry's;
-- default timeout, io, connect, exe_path, exe_hash), owner (the uid on
-- whose behalf to connect, bh.probe's), steps (a list: each attempt is
-- noted there, {step =, ms =, result =, detail = its timings}, and the
-- list becomes record.steps, for bh.describe). A handle is closed before
-- it returns. Call it from a task.
function M.check_daemon(daemon, opts)
  bh._check_arg("bh.check_daemon", 1, daemon, "table|bh.identity")
  local o = bh._check_opts("bh.check_daemon", opts, CHECK_OPTIONS)
  local steps, n = o.steps, 0
  local started = bh.now()
  local h, err = bh.retry(function()
    n = n + 1
    local t0 = bh.now()
    local ph, perr = bh.probe(daemon.ipc_endpoint, daemon, { timeout = o.timeout,
      owner = o.owner })
    if steps then
      local what = ph or perr
      steps[#steps + 1] = { step = "probe attempt " .. n, ms = (bh.now() - t0) * 1000,
        result = ph and ("verified, pid " .. tostring(ph.peer_pid)) or tostring(perr.code),
        detail = timings_text(what.timings) }
    end
    return ph, perr
  end, { attempts = o.attempts, backoff = o.backoff, jitter = 0,
    retry_on = o.retry_on or RETRY_ON })
  local rec = M.probe_record{ service = o.service, expected = daemon, handle = h, err = err,
    elapsed = h and h.elapsed or (bh.now() - started) }
  if h and h.close then h:close() end
  rec.steps = steps
  return rec
end

-- One value of a description on one line, cut as a label is (bh.cut,
-- 256 bytes): a 15 MB service name must not make a 15 MB answer.
local function cut(v)
  return bh.cut((tostring(v):gsub("%c", " ")))
end

local function shown(v)
  if v == nil or v == null then return "-" end
  return cut(v)
end

-- bh.describe(record) -> text: a standard record as the lines a person
-- reads (the HTTP endpoint's /probe?...&debug=true, check.lua
-- --verbose): what was probed (manifest, service, endpoint, pid), the
-- steps with their timings (record.steps: {step =, ms =, result =,
-- detail =}, in order, as the policy noted them), then the verdict, the
-- code and the message. Every value is capped and on one line.
function M.describe(rec)
  bh._check_arg("bh.describe", 1, rec, "table")
  local out = {}
  local function line(k, v) out[#out + 1] = string.format("%-10s %s", k, shown(v)) end
  local ep = type(rec.endpoint) == "table" and rec.endpoint or {}
  if rec.manifest ~= nil then line("manifest", rec.manifest) end
  line("service", rec.service)
  line("endpoint", ep.path)
  line("namespace", ep.namespace_id)
  line("pid", rec.pid)
  if rec.generation ~= nil then line("generation", rec.generation) end
  if type(rec.steps) == "table" and #rec.steps > 0 then
    out[#out + 1] = "steps:"
    for i, st in ipairs(rec.steps) do
      if i > 64 then
        out[#out + 1] = string.format("  ... %d more", #rec.steps - 64)
        break
      end
      local ms_text = type(st.ms) == "number" and string.format("%10.3f ms", st.ms)
        or string.rep(" ", 13)
      out[#out + 1] = string.format("  %s  %s: %s%s", ms_text, shown(st.step), shown(st.result),
        st.detail ~= nil and (" (" .. shown(st.detail) .. ")") or "")
    end
  end
  line("verdict", rec.verdict)
  line("code", rec.code)
  if rec.field ~= nil and rec.field ~= null then line("field", rec.field) end
  if rec.message ~= nil then line("message", rec.message) end
  if type(rec.elapsed_ms) == "number" then
    line("elapsed", string.format("%.3f ms", rec.elapsed_ms))
  end
  return table.concat(out, "\n") .. "\n"
end

return M
