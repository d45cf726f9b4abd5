-- bh.metrics: Prometheus text-format metrics of probe records, in the
-- naming style of the blackbox exporter, rewritten atomically (for
-- node_exporter's textfile collector) by bh.metrics.flush():
--   bhprobe_probe_success{service,namespace,path}            gauge 0/1
--   bhprobe_probe_duration_seconds{service,namespace,path}   gauge
--   bhprobe_probe_failures_total{service,namespace,path,code} counter
--   bhprobe_probe_verdict{service,namespace,path,verdict}    gauge 0/1
--   bhprobe_last_flush_timestamp_seconds                     gauge
-- A module (require "bh.metrics"), also bh.metrics.
local bh = require "bh"

local M = {}

local series = {}   -- key -> {labels = {...}, success, duration, verdict, failures = {code = n}}

local function text(v)
  if v == nil or v == bh.null then return "" end
  return tostring(v)
end

-- Label values escape backslash, double quote and newline (exposition
-- format); everything else is literal UTF-8.
local function escape(v)
  return (text(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function labels(l, extra_name, extra_value)
  local s = string.format('service="%s",namespace="%s",path="%s"',
    escape(l.service), escape(l.namespace), escape(l.path))
  if extra_name then s = s .. string.format(',%s="%s"', extra_name, escape(extra_value)) end
  return "{" .. s .. "}"
end

-- bh.metrics.observe(record): account a standard probe record
-- (bh.probe_record) in the metrics; records without endpoint are skipped.
function M.observe(rec)
  if type(rec) ~= "table" then
    error("bad argument #1 to 'bh.metrics.observe' (record table expected)", 2)
  end
  local ep = rec.endpoint or {}
  -- A record without an endpoint (an unreadable manifest) names no series.
  if ep.path == nil or ep.path == bh.null then return end
  local l = { service = text(rec.service), namespace = text(ep.namespace_id), path = text(ep.path) }
  local key = l.service .. "\0" .. l.namespace .. "\0" .. l.path
  local s = series[key]
  if not s then
    s = { labels = l, failures = {} }
    series[key] = s
  end
  s.success = rec.verdict == "verified" and 1 or 0
  s.verdict = rec.verdict
  s.duration = type(rec.elapsed_ms) == "number" and rec.elapsed_ms / 1000 or nil
  if rec.verdict ~= "verified" then
    local code = text(rec.code)
    if code == "" then code = rec.verdict or "unknown" end
    s.failures[code] = (s.failures[code] or 0) + 1
  end
end

-- Forget everything (tests; a policy that wants per-round metrics only).
function M.reset() series = {} end

local function sorted_series()
  local list = {}
  for k, s in pairs(series) do list[#list + 1] = { key = k, s = s } end
  table.sort(list, function(a, b) return a.key < b.key end)
  return list
end

local function fmt(v)
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%.17g", v)
end

-- bh.metrics.render() -> the Prometheus text exposition of what was
-- observed (families in a fixed order, series sorted).
function M.render()
  local out, list = {}, sorted_series()
  local function family(name, kind, help, each)
    out[#out + 1] = "# HELP " .. name .. " " .. help
    out[#out + 1] = "# TYPE " .. name .. " " .. kind
    for _, e in ipairs(list) do each(name, e.s) end
  end
  family("bhprobe_probe_success", "gauge",
    "Whether the last probe verified the recorded daemon (1) or not (0).",
    function(n, s) out[#out + 1] = n .. labels(s.labels) .. " " .. s.success end)
  family("bhprobe_probe_duration_seconds", "gauge",
    "Duration of the last probe in seconds.",
    function(n, s)
      if s.duration then out[#out + 1] = n .. labels(s.labels) .. " " .. fmt(s.duration) end
    end)
  family("bhprobe_probe_failures_total", "counter",
    "Failed probes by error code since the service started.",
    function(n, s)
      local codes = {}
      for c in pairs(s.failures) do codes[#codes + 1] = c end
      table.sort(codes)
      for _, c in ipairs(codes) do
        out[#out + 1] = n .. labels(s.labels, "code", c) .. " " .. s.failures[c]
      end
    end)
  family("bhprobe_probe_verdict", "gauge",
    "The verdict of the last probe (1 for the current one).",
    function(n, s)
      for _, v in ipairs(bh.VERDICTS) do
        out[#out + 1] = n .. labels(s.labels, "verdict", v) .. " " .. (s.verdict == v and 1 or 0)
      end
    end)
  out[#out + 1] = "# HELP bhprobe_last_flush_timestamp_seconds When these metrics were written."
  out[#out + 1] = "# TYPE bhprobe_last_flush_timestamp_seconds gauge"
  out[#out + 1] = "bhprobe_last_flush_timestamp_seconds " .. fmt(bh.wallclock())
  return table.concat(out, "\n") .. "\n"
end

-- bh.metrics.flush([path]) -> true | nil, err: atomically rewrite path
-- (default bh.options.metrics; with neither, nothing to do: true).
function M.flush(path)
  path = path or (bh.options and bh.options.metrics)
  if path == nil then return true end
  return bh.fs.write_atomic(path, M.render())
end

return M
