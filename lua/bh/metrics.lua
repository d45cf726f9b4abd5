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
--   bhprobe_round_period_seconds (end_round{period = s}),
--   bhprobe_round_errors_total{reason} (bh.metrics.round_error)
-- Reactions (bh.metrics.reaction):
--   bhprobe_reactions_total{action,result}
-- and bhprobe_build_info{version,lua,running_process} 1.
-- Every series carries policy="NAME" first, the instance's --name (design
-- §3.2), so that two instances' textfiles can lie side by side in
-- node_exporter's directory.
--
-- The records of the last round are kept too, for the HTTP endpoint's
-- service discovery (GET /sd: bh.metrics.render_sd) and its front page
-- (GET /: bh.metrics.render_index).
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
local period = nil  -- the rounds' period, seconds (end_round{period =})
local rows = {}     -- the round in progress: one row per record observed
local last_rows = {} -- the last ended round's rows (/sd, the front page)

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

-- The instance's name, the value of the label policy on every series:
-- bh.options.name (the host's --name, defaulting to the script's base
-- name without .lua); in a plain lua5.4, the base name of arg[0] alike.
local function policy_name()
  local name = bh.options and bh.options.name
  if name then return name end
  local script = type(arg) == "table" and type(arg[0]) == "string" and arg[0] or "lua"
  return (script:match("([^/]*)$"):gsub("%.lua$", ""))
end
M.policy_name = policy_name

-- The label text of the policy label, policy="NAME".
local function policy_label()
  return 'policy="' .. escape(policy_name()) .. '"'
end

-- The label set of series s (policy first), with one more label when
-- extra_name is given.
local function labels(w, s, extra_name, extra_value)
  if not extra_name then return "{" .. w.policy .. "," .. s.labels .. "}" end
  return string.format('{%s,%s,%s="%s"}', w.policy, s.labels, extra_name, escape(extra_value))
end

-- The label set of a per-round series: the policy, and one more label.
local function round_labels(w, extra_name, extra_value)
  if not extra_name then return "{" .. w.policy .. "}" end
  return string.format('{%s,%s="%s"}', w.policy, extra_name, escape(extra_value))
end

local NO_ENDPOINT = {}

-- Account rec in the series table t (for the round seen). A record
-- without an endpoint (an unreadable manifest) names no series, unless
-- any_record (the answer to /probe: it always says the probe failed).
local function account(t, rec, seen, any_record)
  local ep = rec.endpoint or NO_ENDPOINT
  if not any_record and (ep.path == nil or ep.path == bh.null) then return end
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
  s.code = nil
  if rec.verdict ~= "verified" then
    local code = text(rec.code)
    if code == "" then code = text(rec.verdict) end
    if code == "" then code = "unknown" end
    s.code = code
    s.failures[code] = (s.failures[code] or 0) + 1
  end
end

-- A string from a record in a row (the front page, /sd), cut as a label
-- is (bh.cut, 256 bytes): a 15 MB service name must not make a 15 MB page.
local function row_text(v)
  return label_text(v)
end

-- The row of rec for the last round's table: what the front page shows
-- and what /sd lists (the manifest path, kept whole: it is the target).
local function row_of(rec)
  local ep = rec.endpoint or NO_ENDPOINT
  return {
    manifest = type(rec.manifest) == "string" and rec.manifest or nil,
    service = row_text(rec.service),
    namespace = row_text(ep.namespace_id),
    path = row_text(ep.path),
    generation = math.tointeger(rec.generation) and tostring(rec.generation) or "",
    verdict = row_text(rec.verdict),
    code = row_text(rec.code),
    elapsed_ms = type(rec.elapsed_ms) == "number" and rec.elapsed_ms or nil,
  }
end

-- bh.metrics.observe(record): account a standard probe record
-- (bh.probe_record) in the round in progress. Every record counts in
-- bhprobe_round_targets and is a row of the round's table (rec.manifest,
-- when the policy set it, is the record's /sd target; rec.generation its
-- generation label); records without an endpoint name no series.
function M.observe(rec)
  bh._check_arg("bh.metrics.observe", 1, rec, "table")
  local v = text(rec.verdict)
  counts[v] = (counts[v] or 0) + 1
  account(series, rec, round_no + 1)
  rows[#rows + 1] = row_of(rec)
end

-- bh.metrics.end_round{duration = seconds, success = true, keep = 1,
-- period = seconds}: close the round in progress: its counts by verdict
-- and duration become the round series, its records the last round's
-- table (/sd, the front page), success stamps
-- bhprobe_last_round_success_timestamp_seconds, and targets not seen in
-- the last `keep` rounds are forgotten. period (a policy running rounds
-- every so often) becomes bhprobe_round_period_seconds, so that an alert
-- can say "no successful round for 3 periods".
local END_ROUND = {
  duration = { "number", 0, 1e9 },
  success = { "boolean", default = true },
  keep = { "integer", 1, 1000 },
  period = { "number", 0, 1e9, open = true },
}
function M.end_round(opts)
  local o = bh._check_opts("bh.metrics.end_round", opts, END_ROUND)
  local d, keep = o.duration, o.keep or keep_rounds
  keep_rounds = keep
  round_no = round_no + 1
  last = { duration = d, counts = counts, ended = bh.wallclock(), success = o.success }
  counts = {}
  last_rows, rows = rows, {}
  if o.period then period = o.period end
  if o.success then last_success = last.ended end
  for k, s in pairs(series) do
    if s.seen <= round_no - keep then series[k] = nil end
  end
end

-- bh.metrics.reaction(action, result): count one reaction of a policy in
-- bhprobe_reactions_total{action, result}: action "clear_record" or
-- "remove_socket", result "done" or "failed" (design §1.11).
local ACTION = { "string", one_of = { "clear_record", "remove_socket" } }
local RESULT = { "string", one_of = { "done", "failed" } }
function M.reaction(action, result)
  bh._check_arg("bh.metrics.reaction", 1, action, ACTION)
  bh._check_arg("bh.metrics.reaction", 2, result, RESULT)
  local k = action .. "\0" .. result
  reactions[k] = (reactions[k] or 0) + 1
end

-- bh.metrics.round_error(reason): count a round that could not do its
-- work in bhprobe_round_errors_total{reason}: a short snake_case word
-- ("empty": it found no record; "unreadable": a root, a directory under
-- it or the registry could not be read; "insecure_registry"; a policy may
-- add its own). Such a round ends with end_round{success = false}.
local REASON = { "string", pattern = "^[a-z][a-z0-9_]*$", max_len = 64, name = "reason" }
function M.round_error(reason)
  bh._check_arg("bh.metrics.round_error", 1, reason, REASON)
  round_errors[reason] = (round_errors[reason] or 0) + 1
end

-- Forget everything (tests; a policy that starts over).
function M.reset()
  series, counts, last, last_success, round_no, keep_rounds = {}, {}, nil, nil, 0, 1
  reactions, round_errors = {}, {}
  period, rows, last_rows = nil, {}, {}
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
  local w = { policy = policy_label() }
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
  for _, e in ipairs(list) do w.sample("bhprobe_probe_success", labels(w, e.s), e.s.success) end
  w.family("bhprobe_probe_duration_seconds", "gauge", "Duration of the last probe in seconds.")
  for _, e in ipairs(list) do
    if e.s.duration then
      w.sample("bhprobe_probe_duration_seconds", labels(w, e.s), e.s.duration)
    end
  end
  w.family("bhprobe_probe_verdict", "gauge",
    "The verdict of the last probe (1 for the current one).")
  for _, e in ipairs(list) do
    for _, v in ipairs(bh.VERDICTS) do
      w.sample("bhprobe_probe_verdict", labels(w, e.s, "verdict", v),
        e.s.verdict == v and 1 or 0)
    end
  end
  if not with_failures then
    -- the answer to one probe: why it failed, as blackbox's
    -- probe_failed_due_to_regex says what failed
    w.family("bhprobe_probe_failed_code", "gauge",
      "The error code of a probe that did not verify the daemon (1).")
    for _, e in ipairs(list) do
      if e.s.code then
        w.sample("bhprobe_probe_failed_code", labels(w, e.s, "code", e.s.code), 1)
      end
    end
    return
  end
  w.family("bhprobe_probe_failures_total", "counter",
    "Failed probes of a target by error code, while it is being seen.")
  for _, e in ipairs(list) do
    local codes = {}
    for c in pairs(e.s.failures) do codes[#codes + 1] = c end
    table.sort(codes)
    for _, c in ipairs(codes) do
      w.sample("bhprobe_probe_failures_total", labels(w, e.s, "code", c), e.s.failures[c])
    end
  end
end

-- The per-round families and the build information.
local function render_rounds(w)
  w.family("bhprobe_build_info", "info", "The bhprobe-lua build: version, Lua, running-process.")
  w.sample("bhprobe_build_info", string.format('{%s,version="%s",lua="%s",running_process="%s"}',
    w.policy, escape(bh._VERSION), escape(_VERSION), escape(bh._RUNNING_PROCESS)), 1)
  w.family("bhprobe_rounds_total", "counter", "Probe rounds ended since the service started.")
  w.sample("bhprobe_rounds_total", round_labels(w), round_no)
  w.family("bhprobe_round_errors_total", "counter",
    "Rounds that could not do their work (no record, something unreadable), by reason.")
  local reasons, seen = {}, {}
  for _, r in ipairs(ROUND_ERRORS) do reasons[#reasons + 1], seen[r] = r, true end
  local extra = {}
  for r in pairs(round_errors) do if not seen[r] then extra[#extra + 1] = r end end
  table.sort(extra)
  table.move(extra, 1, #extra, #reasons + 1, reasons)
  for _, r in ipairs(reasons) do
    w.sample("bhprobe_round_errors_total", round_labels(w, "reason", r), round_errors[r] or 0)
  end
  w.family("bhprobe_reactions_total", "counter",
    "Reactions of the policy (records cleared, sockets removed), by result.")
  for _, a in ipairs(ACTIONS) do
    for _, r in ipairs(RESULTS) do
      w.sample("bhprobe_reactions_total", string.format('{%s,action="%s",result="%s"}', w.policy,
        a, r), reactions[a .. "\0" .. r] or 0)
    end
  end
  if last then
    w.family("bhprobe_round_targets", "gauge", "Records the last round scanned, by verdict.")
    for _, v in ipairs(bh.VERDICTS) do
      w.sample("bhprobe_round_targets", round_labels(w, "verdict", v), last.counts[v] or 0)
    end
    if last.duration then
      w.family("bhprobe_round_duration_seconds", "gauge", "Duration of the last round in seconds.")
      w.sample("bhprobe_round_duration_seconds", round_labels(w), last.duration)
    end
  end
  if period then
    w.family("bhprobe_round_period_seconds", "gauge",
      "How often the policy runs a round (its period, in seconds).")
    w.sample("bhprobe_round_period_seconds", round_labels(w), period)
  end
  if last_success then
    w.family("bhprobe_last_round_success_timestamp_seconds", "gauge",
      "When the last successful round ended (Unix time).")
    w.sample("bhprobe_last_round_success_timestamp_seconds", round_labels(w), last_success)
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
  for _, rec in ipairs(recs) do account(t, rec, 0, true) end
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

-- ---- the HTTP endpoint's other pages ----------------------------------

-- bh.metrics.render_sd() -> the Prometheus HTTP service-discovery document
-- of the last round's records (design §3.2): JSON, one target group per
-- label set, [{"targets": [manifest...], "labels": {service, namespace,
-- generation, policy}}], sorted; records without a manifest path are not
-- targets. "[]" before the first round ends.
function M.render_sd()
  local groups, order = {}, {}
  local policy = policy_name()
  for _, r in ipairs(last_rows) do
    if r.manifest then
      local key = r.service .. "\0" .. r.namespace .. "\0" .. r.generation
      local g = groups[key]
      if not g then
        g = { targets = {}, labels = { service = r.service, namespace = r.namespace,
          generation = r.generation, policy = policy } }
        groups[key] = g
        order[#order + 1] = key
      end
      g.targets[#g.targets + 1] = r.manifest
    end
  end
  if #order == 0 then return "[]\n" end
  table.sort(order)
  local list = {}
  for i, key in ipairs(order) do
    table.sort(groups[key].targets)
    list[i] = groups[key]
  end
  return bh._json(list) .. "\n"
end

local HTML_ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
  ["'"] = "&#39;" }

-- v as HTML text: capped (row_text) and escaped, quotes included (it may
-- go into an attribute).
local function html(v)
  return (row_text(v):gsub("[&<>\"']", HTML_ESCAPES))
end

-- v percent-encoded for a query string (RFC 3986 unreserved kept).
local function urlencode(v)
  return (text(v):gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- At most this many rows in the front page's table.
local INDEX_ROWS_MAX = 1000

-- bh.metrics.render_index() -> the HTML front page of the HTTP endpoint
-- (GET /): links to the endpoints and the last round's table, each
-- record's manifest linking to its debug probe. Every string from a
-- record is escaped and capped.
function M.render_index()
  local out = {}
  local function add(...) for _, v in ipairs({ ... }) do out[#out + 1] = v end end
  local name = html(policy_name())
  add("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>bhprobe-lua: ", name,
    "</title></head>\n<body>\n<h1>bhprobe-lua: ", name, "</h1>\n<p>", html(bh._VERSION),
    " &middot; <a href=\"/metrics\">/metrics</a> &middot; <a href=\"/sd\">/sd</a>",
    " &middot; <a href=\"/-/healthy\">/-/healthy</a> &middot; /probe?manifest=PATH",
    "[&amp;debug=true]</p>\n")
  if not last then
    add("<p>No round has ended yet.</p>\n</body></html>\n")
    return table.concat(out)
  end
  local parts = {}
  for _, v in ipairs(bh.VERDICTS) do
    if (last.counts[v] or 0) > 0 then parts[#parts + 1] = last.counts[v] .. " " .. v end
  end
  add(string.format("<p>Round %d ended %s%s in %.3f s: %s.</p>\n", round_no,
    os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(last.ended)),
    last.success and "" or " (unsuccessful)", last.duration or 0,
    #parts > 0 and table.concat(parts, ", ") or "no record"))
  add("<table border=\"1\">\n<tr><th>manifest</th><th>service</th><th>namespace</th>",
    "<th>endpoint</th><th>verdict</th><th>code</th><th>ms</th></tr>\n")
  -- in a stable order: by manifest (then service, for rows without one)
  local list = table.move(last_rows, 1, #last_rows, 1, {})
  table.sort(list, function(a, b)
    local ma, mb = a.manifest or "", b.manifest or ""
    if ma ~= mb then return ma < mb end
    return a.service < b.service
  end)
  for i, r in ipairs(list) do
    if i > INDEX_ROWS_MAX then
      add(string.format("<tr><td colspan=\"7\">... %d more</td></tr>\n", #list - i + 1))
      break
    end
    local link = r.manifest and string.format(
      "<a href=\"/probe?manifest=%s&amp;debug=true\">%s</a>", html(urlencode(r.manifest)),
      html(r.manifest)) or ""
    add("<tr><td>", link, "</td><td>", html(r.service), "</td><td>", html(r.namespace),
      "</td><td>", html(r.path), "</td><td>", html(r.verdict), "</td><td>", html(r.code),
      "</td><td>", r.elapsed_ms and string.format("%.3f", r.elapsed_ms) or "", "</td></tr>\n")
  end
  add("</table>\n</body></html>\n")
  return table.concat(out)
end

-- The task behind one GET /probe?manifest=PATH[&debug=true]
-- (lbh_http.c): probe(path, debug) returns a record, a list of records,
-- or nil, message[, http status]. debug: answer with the record's
-- description (bh.describe: its steps, timings, verdict and code) as
-- text instead of metrics.
function M._probe_runner(server, probe, id, path, om, debug)
  local ok, a, b, c = pcall(probe, path, debug)
  if not ok then
    bh.log.error("/probe handler failed: " .. tostring(a))
    return server:_reply(id, 500, "probe handler failed\n")
  end
  if a == nil then
    return server:_reply(id, math.tointeger(c) or 404, tostring(b or "not found") .. "\n")
  end
  local recs = a.verdict and { a } or a
  if debug then
    local texts = {}
    for i, rec in ipairs(recs) do texts[i] = bh.describe(rec) end
    texts[#texts + 1] = "metrics that would have been returned:\n" .. M.render_records(recs)
    return server:_reply(id, 200, table.concat(texts, "\n"), "text/plain; charset=utf-8")
  end
  server:_reply(id, 200, M.render_records(recs, om))
end

-- bh.metrics.serve{listen = "HOST:PORT", probe = fn, max_probes = 8}
-- (C, lbh_http.c): GET /metrics, /-/healthy, /sd, /,
-- /probe?manifest=PATH[&debug=true].
M.serve = bh._http_serve
bh._http_serve = nil

-- The functions the C side calls (each HTTP server's pages and /probe
-- task, the host's first --metrics file), handed over once, here: C never
-- looks them up by name, so replacing bh.metrics.render in a script
-- changes nothing the endpoint serves.
bh._bind_metrics({ render = M.render, render_sd = M.render_sd, render_index = M.render_index,
  probe_runner = M._probe_runner, flush = M.flush })
bh._bind_metrics = nil

return M
