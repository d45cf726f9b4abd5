-- A fleet on one machine: three manifests policies standing for three
-- hosts (each its own cache root, --name and --listen port, loopback
-- only), real daemons (our responders: running-process's probe, byte for
-- byte), one impostor on one host; one real Prometheus (Debian's) loads
-- the shipped alerting rules (etc/prometheus/) and scrapes the three as
-- docs/operations.md's fleet configuration does. The impostor's alert
-- must reach "firing" with its service label, and no alert may name a
-- verified service, read through Prometheus's /api/v1/alerts.
-- labels: http metrics policy prometheus
-- ctest: serial (three instances and a Prometheus scraping every second)
local H = require "helpers"
local P = require "prom"
local json = require "dkjson"
local q = H.q

local HOSTS = {
  ["host-a"] = { { service = "web" }, { service = "db" } },
  ["host-b"] = { { service = "web" }, { service = "cache", kind = "impostor" } },
  ["host-c"] = { { service = "queue" } },
}

describe("a fleet of three hosts behind one Prometheus", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function()
    P.cleanup()
    H.rmdir(dir)
  end)

  it("fires the impostor's alert from the shipped rules, and nothing for the verified",
    function()
      P.daemons(dir, HOSTS)
      local targets = {}
      for _, host in ipairs({ "host-a", "host-b", "host-c" }) do
        local svc = P.policy(dir .. "/svc-" .. host, "--name " .. host
          .. " --listen 127.0.0.1:0", q(dir .. "/" .. host) .. " --every 2")
        targets[#targets + 1] = svc.addr()
      end
      -- the shipped rules, as they are (only the intervals are the test's)
      local prom = P.prometheus(dir .. "/prom", table.concat({
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}",
        "rule_files: [" .. P.yaml_list({ P.RULES }):sub(2, -2) .. "]",
        "scrape_configs:",
        "  - job_name: bhprobe",
        "    static_configs:",
        "      - targets: " .. P.yaml_list(targets),
        "" }, "\n"))
      local function firing()
        local alerts = prom.alerts() or {}
        for _, a in ipairs(alerts) do
          if a.labels.alertname == "BhprobeImpostor" and a.state == "firing" then
            return a, alerts
          end
        end
      end
      local alert = P.wait(60, 0.5, firing, function()
        return json.encode(prom.alerts() or {}) .. "\n" .. prom.log()
      end)
      assert.equal("cache", alert.labels.service)
      assert.equal("host-b", alert.labels.policy)
      assert.equal("host-b", alert.labels.namespace)
      assert.equal(dir .. "/host-b-cache.sock", alert.labels.path)
      assert.equal("critical", alert.labels.severity)
      assert.equal(targets[2], alert.labels.instance)
      -- every host's records were scraped and judged: four verified (the
      -- impostor's host may be scraped before another host's first round
      -- has ended: wait for the others' scrapes, not only for the alert) ...
      local verified = function()
        local r = prom.query('bhprobe_probe_verdict{verdict="verified"} == 1')
        return r and r.data and #r.data.result == 4 and r
      end
      local r = P.wait(30, 0.5, verified, function()
        return json.encode(prom.query('bhprobe_probe_verdict{verdict="verified"} == 1'))
      end)
      assert.equal(4, #r.data.result, json.encode(r))
      local alerts = prom.alerts() or {}
      -- ... and no alert, firing or pending, names one of them
      for _, a in ipairs(alerts) do
        local key = a.labels.policy .. "/" .. tostring(a.labels.service)
        assert.equal("host-b/cache", key, json.encode(a))
      end
      -- Prometheus read the very rules that are shipped
      local code, body = P.curl("http://" .. prom.web .. "/api/v1/rules")
      assert.equal(200, code)
      for name in H.slurp(P.RULES):gmatch("%- alert: (%w+)") do
        assert.truthy(body:find('"name":"' .. name .. '"', 1, true), name)
      end
    end)
end)
