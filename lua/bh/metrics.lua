-- bh.metrics: Prometheus metrics of probe records, in the naming style of
-- the blackbox exporter, served over HTTP (bh.metrics.serve, --listen) or
-- rewritten atomically for node_exporter's textfile collector
-- (bh.metrics.flush, --metrics). Per target ({service, namespace, path}):
--   bhprobe_probe_success                  gauge 0/1
--   bhprobe_probe_duration_seconds         gauge
--   bhprobe_probe_failures_total{code}     counter
--   bhprobe_probe_verdict{verdict}         gauge 0/1 per bh.VERDICTS
-- Per round (bh.metrics.end_round):
--   bhprobe_round_duration_seconds, bhprobe_round_targets{verdict},
--   bhprobe_rounds_total, bhprobe_last_round_success_timestamp_seconds,
--   bhprobe_round_errors_total{reason} (bh.metrics.round_error)
-- Reactions (bh.metrics.reaction):
--   bhprobe_reactions_total{action,result}
-- and bhprobe_build_info{version,lua,running_process} 1.
--
-- A target's series exist only while it was seen in the last `keep`
-- rounds (default 1): a deleted manifest, a record cleared by --apply or
-- a renamed service disappears at the next end_round instead of
-- reporting its last value forever. A module (require "bh.metrics"),
-- also bh.metrics.
local bh = require "bh"

local M = {}

local series = {}   -- key -> {labels, success, duration, verdict, failures = {code = n}, seen}
                    -- (labels: the target's label text, escaped once)
local round_no = 0  -- rounds ended so far; observe() counts for round_no + 1
local counts = {}   -- verdict -> records observed in the round in progress
local last = nil    -- the last ended round: {duration, counts}
local last_success = nil
local keep_rounds = 1

-- Counters over the life of the process, every known label value shown
-- from the start (0), so that rate() and increase() see the first one.
local ACTIONS = { "clear_record", "remove_socket" }
local RESULTS = { "done", "failed" }
local reactions = {} -- "action\0result" -> n
local ROUND_ERRORS = { "empty", "unreadable", "insecure_registry" }
local round_errors = {} -- reason -> n

local function text(v)
  if v == nil or v == bh.null then return "" end
  return tostring(v)
end

-- A label value: cut to 256 bytes with the mark of the cut (bh.cut: a
-- 15 MB service_name in a manifest must not make a 15 MB label, nine
-- times over), then backslash, double quote and newline escaped
-- (exposition format); everything else is literal UTF-8.
local function label_text(v)
  return bh.cut(text(v))
end

local function escape(v)
  return (label_text(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

-- The label set of series s, with one more label when extra_name is given.
local function labels(s, extra_name, extra_value)
  if not extra_name then return "{" .. s.labels .. "}" end
  return string.format('{%s,%s="%s"}', s.labels, extra_name, escape(extra_value))
end

-- Account rec in the series table t (for the round seen).
local NO_ENDPOINT = {}

local function account(t, rec, seen)
  local ep = rec.endpoint or NO_ENDPOINT
  -- A record without an endpoint (an unreadable manifest) names no series.
  if ep.path == nil or ep.path == bh.null then return end
  -- The key is made of the cut texts: two records whose labels come out
  -- the same are one series (the exposition must not repeat a series).
  local service, namespace, path = label_text(rec.service), label_text(ep.namespace_id),
    label_text(ep.path)
  local key = service .. "\0" .. namespace .. "\0" .. path
  local s = t[key]
  if not s then
    -- escaped here, once per series, not at every render
    s = { failures = {}, labels = string.format('service="%s",namespace="%s",path="%s"',
      escape(service), escape(namespace), escape(path)) }
    t[key] = s
  end
  s.seen = seen
  s.success = rec.verdict == "verified" and 1 or 0
  s.verdict = rec.verdict
  s.duration = type(rec.elapsed_ms) == "number" and rec.elapsed_ms / 1000 or nil
  if rec.verdict ~= "verified" then
    local code = text(rec.code)
    if code == "" then code = rec.verdict or "unknown" end
    s.failures[code] = (s.failures[code] or 0) + 1
  end
end

-- bh.metrics.observe(record): account a standard probe record
-- (bh.probe_record) in the round in progress. Every record counts in
-- bhprobe_round_targets; records without an endpoint name no series.
function M.observe(rec)
  bh._check_arg("bh.metrics.observe", 1, rec, "table")
  local v = text(rec.verdict)
  counts[v] = (counts[v] or 0) + 1
  account(series, rec, round_no + 1)
end

-- bh.metrics.end_round{duration = seconds, success = true, keep = 1}:
-- close the round in progress: its counts by verdict and duration become
-- the round series, success stamps bhprobe_last_round_success_timestamp_seconds,
-- and targets not seen in the last `keep` rounds are forgotten.
local END_ROUND = {
  duration = { "number", 0, 1e9 },
  success = { "boolean", default = true },
  keep = { "integer", 1, 1000 },
}
function M.end_round(opts)
  local o = bh._check_opts("bh.metrics.end_round", opts, END_ROUND)
  local d, keep = o.duration, o.keep or keep_rounds
  keep_rounds = keep
  round_no = round_no + 1
  last = { duration = d, counts = counts }
  counts = {}
  if o.success then last_success = bh.wallclock() end
  for k, s in pairs(series) do
    if s.seen <= round_no - keep then series[k] = nil end
  end
end

-- bh.metrics.reaction(action, result): count one reaction of a policy in
-- bhprobe_reactions_total{action, result}: action "clear_record" or
-- "remove_socket", result "done" or "failed" (design §1.11).
local ACTION_SET = { clear_record = true, remove_socket = true }
local RESULT_SET = { done = true, failed = true }
function M.reaction(action, result)
  bh._check_arg("bh.metrics.reaction", 1, action, "string")
  bh._check_arg("bh.metrics.reaction", 2, result, "string")
  if not ACTION_SET[action] then
    error("bad argument #1 to 'bh.metrics.reaction' (\"clear_record\" or "
      .. "\"remove_socket\" expected, got \"" .. action .. "\")", 2)
  end
  if not RESULT_SET[result] then
    error("bad argument #2 to 'bh.metrics.reaction' (\"done\" or \"failed\" "
      .. "expected, got \"" .. result .. "\")", 2)
  end
  local k = action .. "\0" .. result
  reactions[k] = (reactions[k] or 0) + 1
end

-- bh.metrics.round_error(reason): count a round that could not do its
-- work in bhprobe_round_errors_total{reason}: a short snake_case word
-- ("empty": it found no record; "unreadable": a root, a directory under
-- it or the registry could not be read; "insecure_registry"; a policy may
-- add its own). Such a round ends with end_round{success = false}.
function M.round_error(reason)
  bh._check_arg("bh.metrics.round_error", 1, reason, "string")
  if not reason:match("^[a-z][a-z0-9_]*$") or #reason > 64 then
    error("bad argument #1 to 'bh.metrics.round_error' (a snake_case word of at "
      .. "most 64 characters expected, got \"" .. reason:sub(1, 80) .. "\")", 2)
  end
  round_errors[reason] = (round_errors[reason] or 0) + 1
end

-- Forget everything (tests; a policy that starts over).
function M.reset()
  series, counts, last, last_success, round_no, keep_rounds = {}, {}, nil, nil, 0, 1
  reactions, round_errors = {}, {}
end

local function sorted(t)
  local list = {}
  for k, s in pairs(t) do list[#list + 1] = { key = k, s = s } end
  table.sort(list, function(a, b) return a.key < b.key end)
  return list
end

local function fmt(v)
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%.17g", v)
end

-- A writer of metric families in the text format (0.0.4) or, with om,
-- OpenMetrics 1.0.0 (counter families named without _total, info
-- families without _info, "# EOF" at the end).
local function writer(om)
  local out = {}
  local w = {}
  function w.family(name, kind, help)
    local fam = name
    if om and kind == "counter" then fam = name:gsub("_total$", "") end
    if om and kind == "info" then fam = name:gsub("_info$", "") end
    if not om and kind == "info" then kind = "gauge" end
    out[#out + 1] = "# HELP " .. fam .. " " .. help
    out[#out + 1] = "# TYPE " .. fam .. " " .. kind
  end
  function w.sample(name, l, v) out[#out + 1] = name .. (l or "") .. " " .. fmt(v) end
  function w.finish()
    if om then out[#out + 1] = "# EOF" end
    return table.concat(out, "\n") .. "\n"
  end
  return w
end

-- The per-target families of the series in list.
local function render_targets(w, list, with_failures)
  w.family("bhprobe_probe_success", "gauge",
    "Whether the last probe verified the recorded daemon (1) or not (0).")
  for _, e in ipairs(list) do w.sample("bhprobe_probe_success", labels(e.s), e.s.success) end
  w.family("bhprobe_probe_duration_seconds", "gauge", "Duration of the last probe in seconds.")
  for _, e in ipairs(list) do
    if e.s.duration then
      w.sample("bhprobe_probe_duration_seconds", labels(e.s), e.s.duration)
    end
  end
  w.family("bhprobe_probe_verdict", "gauge",
    "The verdict of the last probe (1 for the current one).")
  for _, e in ipairs(list) do
    for _, v in ipairs(bh.VERDICTS) do
      w.sample("bhprobe_probe_verdict", labels(e.s, "verdict", v),
        e.s.verdict == v and 1 or 0)
    end
  end
  if not with_failures then return end
  w.family("bhprobe_probe_failures_total", "counter",
    "Failed probes of a target by error code, while it is being seen.")
  for _, e in ipairs(list) do
    local codes = {}
    for c in pairs(e.s.failures) do codes[#codes + 1] = c end
    table.sort(codes)
    for _, c in ipairs(codes) do
      w.sample("bhprobe_probe_failures_total", labels(e.s, "code", c), e.s.failures[c])
    end
  end
end

-- The per-round families and the build information.
local function render_rounds(w)
  w.family("bhprobe_build_info", "info", "The bhprobe-lua build: version, Lua, running-process.")
  w.sample("bhprobe_build_info", string.format('{version="%s",lua="%s",running_process="%s"}',
    escape(bh._VERSION), escape(_VERSION), escape(bh._RUNNING_PROCESS)), 1)
  w.family("bhprobe_rounds_total", "counter", "Probe rounds ended since the service started.")
  w.sample("bhprobe_rounds_total", nil, round_no)
  w.family("bhprobe_round_errors_total", "counter",
    "Rounds that could not do their work (no record, something unreadable), by reason.")
  local reasons, seen = {}, {}
  for _, r in ipairs(ROUND_ERRORS) do reasons[#reasons + 1], seen[r] = r, true end
  local extra = {}
  for r in pairs(round_errors) do if not seen[r] then extra[#extra + 1] = r end end
  table.sort(extra)
  table.move(extra, 1, #extra, #reasons + 1, reasons)
  for _, r in ipairs(reasons) do
    w.sample("bhprobe_round_errors_total", string.format('{reason="%s"}', r),
      round_errors[r] or 0)
  end
  w.family("bhprobe_reactions_total", "counter",
    "Reactions of the policy (records cleared, sockets removed), by result.")
  for _, a in ipairs(ACTIONS) do
    for _, r in ipairs(RESULTS) do
      w.sample("bhprobe_reactions_total", string.format('{action="%s",result="%s"}', a, r),
        reactions[a .. "\0" .. r] or 0)
    end
  end
  if last then
    w.family("bhprobe_round_targets", "gauge", "Records the last round scanned, by verdict.")
    for _, v in ipairs(bh.VERDICTS) do
      w.sample("bhprobe_round_targets", string.format('{verdict="%s"}', v), last.counts[v] or 0)
    end
    if last.duration then
      w.family("bhprobe_round_duration_seconds", "gauge", "Duration of the last round in seconds.")
      w.sample("bhprobe_round_duration_seconds", nil, last.duration)
    end
  end
  if last_success then
    w.family("bhprobe_last_round_success_timestamp_seconds", "gauge",
      "When the last successful round ended (Unix time).")
    w.sample("bhprobe_last_round_success_timestamp_seconds", nil, last_success)
  end
end

-- bh.metrics.render([openmetrics]) -> the exposition of every series (text
-- format 0.0.4, or OpenMetrics 1.0.0 when openmetrics is true).
function M.render(om)
  local w = writer(om)
  render_rounds(w)
  render_targets(w, sorted(series), true)
  return w.finish()
end

-- bh.metrics.render_records(records[, openmetrics]) -> the per-target
-- families of just these records (the answer to /probe?manifest=).
function M.render_records(recs, om)
  bh._check_arg("bh.metrics.render_records", 1, recs, "table")
  local t = {}
  for _, rec in ipairs(recs) do account(t, rec, 0) end
  local w = writer(om)
  render_targets(w, sorted(t), false)
  return w.finish()
end

-- bh.metrics.flush([path]) -> true | nil, err: atomically rewrite path
-- (default bh.options.metrics; with neither, nothing to do: true) with
-- mode 0644, refusing a symlink at path.
function M.flush(path)
  path = path or (bh.options and bh.options.metrics)
  if path == nil then return true end
  return bh.fs.write_atomic(path, M.render())
end

-- The task behind one GET /probe?manifest=PATH (lbh_http.c): probe(path)
-- returns a record, a list of records, or nil, message[, http status].
function M._probe_runner(server, probe, id, path, om)
  local ok, a, b, c = pcall(probe, path)
  if not ok then
    bh.log.error("/probe handler failed: " .. tostring(a))
    return server:_reply(id, 500, "probe handler failed\n")
  end
  if a == nil then
    return server:_reply(id, math.tointeger(c) or 404, tostring(b or "not found") .. "\n")
  end
  server:_reply(id, 200, M.render_records(a.verdict and { a } or a, om))
end

-- bh.metrics.serve{listen = "HOST:PORT", probe = fn, max_probes = 8}
-- (C, lbh_http.c): GET /metrics, /-/healthy, /probe?manifest=PATH.
M.serve = bh._http_serve
bh._http_serve = nil

return M
