-- Two instances of the manifests policy writing their --metrics files side
-- by side in one textfile directory, read by Debian's real node_exporter
-- (prometheus-node-exporter, textfile collector only) on a free loopback
-- port: with a --name each, node_exporter serves both instances' series
-- and no "collected before" error; with the same name (two instances of
-- one policy without --name) it reports the collision, so this test can
-- tell them apart. As root, the same in Debian's own textfile directory
-- with node_exporter running as its user (prometheus), as its unit runs it.
-- labels: metrics policy program
local H = require "helpers"
local P = require "prom"
local q = H.q
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")

local DEBIAN_TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"

describe("two instances in node_exporter's textfile directory", function()
  local dir

  setup(function()
    dir = H.tmpdir()
    os.execute("chmod 0755 " .. q(dir))
    P.daemons(dir, { h = { { service = "web" }, { service = "db" } } })
  end)
  teardown(function()
    P.cleanup()
    H.rmdir(dir)
  end)

  -- One round of the policy over the fixture's root, its metrics in file,
  -- named name (nil: the default, the policy's base name).
  local function round(file, name)
    local ok, _, code = os.execute(string.format("%s %s --metrics %s %s %s >/dev/null 2>&1",
      q(BIN), name and ("--name " .. q(name)) or "", q(file), q(P.POLICY), q(dir .. "/h")))
    assert.equal(0, code, tostring(ok))
    assert.matches("bhprobe_rounds_total", H.slurp(file))
  end

  -- node_exporter reading textdir only; returns its /metrics and its log.
  local function node_exporter(d, textdir, as_user)
    local addr = P.free_addr()
    local cmd = "env -u LD_PRELOAD prometheus-node-exporter --web.listen-address=" .. addr
      .. " --collector.disable-defaults --collector.textfile"
      .. " --collector.textfile.directory=" .. q(textdir)
    if as_user then
      cmd = "setpriv --reuid=" .. as_user .. " --regid=" .. as_user .. " --clear-groups " .. cmd
    end
    os.execute("rm -rf " .. q(d) .. " && mkdir -p " .. q(d))
    local p = P.background(d, cmd)
    local body = P.wait(20, 0.1, function()
      local code, b = P.curl("http://" .. addr .. "/metrics")
      return code == 200 and b:find("node_textfile_scrape_error", 1, true) and b
    end, p.log)
    p.stop()
    return body, p.log()
  end

  local function has(body, line)
    return body:find("\n" .. line, 1, true) ~= nil
  end

  it("serves both instances' series, each named, without a collision", function()
    local textdir = dir .. "/textfile"
    os.execute("mkdir -p " .. q(textdir))
    round(textdir .. "/bhprobe-web.prom", "web-a")
    round(textdir .. "/bhprobe-db.prom", "web-b")
    local body, log = node_exporter(dir .. "/ne", textdir)
    for _, name in ipairs({ "web-a", "web-b" }) do
      assert.is_true(has(body, 'bhprobe_rounds_total{policy="' .. name .. '"} 1'), body)
      assert.is_true(has(body, 'bhprobe_probe_success{namespace="h",path="' .. dir
        .. '/h-web.sock",policy="' .. name .. '",service="web"} 1'), body)
      assert.is_true(has(body, 'bhprobe_build_info{lua="Lua 5.4",policy="' .. name .. '",'))
    end
    assert.is_true(has(body, "node_textfile_scrape_error 0"), body)
    assert.is_nil(log:find("collected before", 1, true), log)
  end)

  it("reports the collision when two instances share a name", function()
    local textdir = dir .. "/clash"
    os.execute("mkdir -p " .. q(textdir))
    round(textdir .. "/bhprobe-one.prom")
    round(textdir .. "/bhprobe-two.prom")
    local body, log = node_exporter(dir .. "/ne2", textdir)
    assert.truthy(log:find("collected before with the same name and label values", 1, true)
      or body:find("collected before with the same name and label values", 1, true), log)
  end)

  it("lie side by side in Debian's own directory, read by node_exporter as its user #root",
    function()
      assert.is_true(H.exists(DEBIAN_TEXTFILE_DIR), "prometheus-node-exporter is not installed")
      local tag = dir:match("bhs%.(%w+)$")
      local files = { DEBIAN_TEXTFILE_DIR .. "/bhprobe-spec-" .. tag .. "-a.prom",
        DEBIAN_TEXTFILE_DIR .. "/bhprobe-spec-" .. tag .. "-b.prom" }
      local ok, err = pcall(function()
        round(files[1], "spec-" .. tag .. "-a")
        round(files[2], "spec-" .. tag .. "-b")
        local body, log = node_exporter(dir .. "/ne3", DEBIAN_TEXTFILE_DIR, "prometheus")
        for _, s in ipairs({ "a", "b" }) do
          assert.is_true(has(body, 'bhprobe_rounds_total{policy="spec-' .. tag .. "-" .. s
            .. '"} 1'), body)
        end
        assert.is_nil(log:find("collected before", 1, true), log)
        assert.is_nil(body:find('node_textfile_mtime_seconds{file="bhprobe-spec-' .. tag
          .. '-a.prom"} 0', 1, true))
      end)
      for _, f in ipairs(files) do os.remove(f) end
      assert(ok, err)
    end)
end)
