-- Service discovery for real: a manifests policy with --listen, and
-- Debian's real Prometheus that finds its records through GET /sd
-- (http_sd_configs, as docs/operations.md configures it) and scrapes each
-- one through /probe with the blackbox exporter's relabelling, reading
-- bhprobe_probe_success (and the failure code) back through its HTTP API.
-- labels: http metrics policy prometheus
-- ctest: serial (a Prometheus scraping every second)
local H = require "helpers"
local P = require "prom"
local q = H.q

-- The scrape configuration of docs/operations.md ("Discovering records"),
-- for the policy at addr: the target address comes from the URL the
-- record was discovered at (__meta_url), so one job can list many hosts.
local function config(addr)
  return table.concat({
    "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}",
    "scrape_configs:",
    "  - job_name: bhprobe_manifest",
    "    metrics_path: /probe",
    "    honor_labels: true",
    "    http_sd_configs:",
    "      - url: http://" .. addr .. "/sd",
    "        refresh_interval: 1s",
    "    relabel_configs:",
    "      - source_labels: [__address__]",
    "        target_label: __param_manifest",
    "      - source_labels: [__address__]",
    "        target_label: instance",
    "      - source_labels: [__meta_url]",
    "        regex: 'https?://([^/]+)/.*'",
    "        target_label: __address__",
    "" }, "\n")
end

describe("GET /sd", function()
  local dir
  before_each(function()
    dir = H.tmpdir()
    P.daemons(dir, { h = { { service = "web" }, { service = "evil", kind = "impostor" },
      { service = "gone", kind = "stale" } } })
  end)
  after_each(function()
    P.cleanup()
    H.rmdir(dir)
  end)

  it("lets a real Prometheus discover every record and read each through /probe", function()
    local svc = P.policy(dir .. "/svc", "--name edge --listen 127.0.0.1:0",
      q(dir .. "/h") .. " --every 0.5")
    local addr = svc.addr()
    local manifest = function(s) return dir .. "/h/" .. s .. "/.running-process-manifest.pb" end
    -- what Prometheus will read: the records of the last round
    local sd = P.wait(20, 0.1, function()
      local code, body = P.curl("http://" .. addr .. "/sd")
      return code == 200 and body ~= "[]\n" and body
    end, svc.log)
    assert.truthy(sd:find('"targets":["' .. manifest("evil") .. '"]', 1, true), sd)
    local prom = P.prometheus(dir .. "/prom", config(addr))
    local by = P.wait(60, 0.5, function()
      local r = prom.query('bhprobe_probe_success{job="bhprobe_manifest"}')
      local res = r and r.data and r.data.result or {}
      if #res ~= 3 then return nil end
      local t = {}
      for _, s in ipairs(res) do t[s.metric.service] = s end
      return t
    end, function()
      return "targets: " .. require("dkjson").encode(prom.targets() or {}) .. "\n" .. prom.log()
    end)
    assert.equal("1", by.web.value[2])
    assert.equal("0", by.evil.value[2])
    assert.equal("0", by.gone.value[2])
    for name, s in pairs(by) do
      -- the target's labels from /sd, and the series' own (honor_labels)
      assert.equal(manifest(name), s.metric.instance)
      assert.equal("edge", s.metric.policy)
      assert.equal("h", s.metric.namespace)
      assert.equal("2", s.metric.generation)
      assert.equal(dir .. "/h-" .. name .. ".sock", s.metric.path)
      assert.is_nil(s.metric.exported_service)
    end
    local r = prom.query('bhprobe_probe_failed_code{job="bhprobe_manifest"}')
    local codes = {}
    for _, s in ipairs(r.data.result) do codes[s.metric.service] = s.metric.code end
    assert.same({ evil = "identity_mismatch", gone = "pid_not_found" }, codes)
    r = prom.query('bhprobe_probe_verdict{job="bhprobe_manifest"} == 1')
    local verdicts = {}
    for _, s in ipairs(r.data.result) do verdicts[s.metric.service] = s.metric.verdict end
    assert.same({ web = "verified", evil = "impostor", gone = "stale" }, verdicts)
  end)
end)
