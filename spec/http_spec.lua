-- The HTTP endpoint (bh.metrics.serve, --listen; design §3.2), end to end
-- with the real binary and curl: /metrics while /probe requests are in
-- flight, 503 past max_probes and at the end of the run, /sd, the front
-- page and /probe's debug view, and the options' checks.
-- External tools run with `env -u LD_PRELOAD`: in the sanitized tree the
-- ASan runtime is preloaded for lua5.4, and curl hangs under it.
-- labels: http metrics program
local H = require "helpers"
local R = require("hostrun")()
local q, slurp, spit = H.q, H.slurp, H.spit
local sh, poll_file, wait_exists, start, run = R.sh, R.poll_file, R.wait_exists, R.start, R.run

local tmp
before_each(function() tmp = R.enter() end)
after_each(R.leave)

describe("the HTTP endpoint (bh.metrics.serve)", function()
  local function curl(url, opts)
    local p = assert(io.popen("env -u LD_PRELOAD curl -s --noproxy '*' --max-time 20 "
      .. (opts or "")
      .. " -w '\\n%{http_code} %{content_type}' " .. q(url)))
    local out = p:read("a")
    p:close()
    local body, code, ctype = out:match("^(.-)\n?(%d+) ([^\n]*)$")
    return tonumber(code), body, ctype
  end

  -- A script serving with a slow probe handler; "go" ends it.
  local SERVE = [[
    local s = bh.metrics.serve{ listen = "127.0.0.1:0", max_probes = 2, probe = function(path)
      io.open(path:match("([^/]+)$") .. ".started", "w"):close()
      while not io.open("release") do bh.sleep(0.02) end
      return { service = "s", endpoint = { namespace_id = "n", path = path }, verdict = "stale",
        code = "pid_not_found", elapsed_ms = 1 }
    end }
    print("at " .. s.address) io.stdout:flush()
    while not io.open("go") do bh.sleep(0.02) end
    s:close()
    print("closed", s.closed)]]

  it("answers /metrics while /probe requests are in flight, and 503 past max_probes", function()
    local p = start("-e " .. q(SERVE))
    local base = "http://" .. poll_file("out", "at (%S+)")
    for _, name in ipairs({ "a-1.pb", "b-1.pb" }) do
      sh(string.format("cd %s && env -u LD_PRELOAD curl -s --noproxy '*' --max-time 20 "
        .. "-o %s %s &", q(tmp),
        q(name .. ".out"), q(base .. "/probe?manifest=/r/" .. name)))
    end
    wait_exists("a-1.pb.started")
    wait_exists("b-1.pb.started")
    local code, body, ctype = curl(base .. "/metrics")
    assert.equal(200, code)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", ctype)
    assert.matches("bhprobe_build_info{", body)
    code, body = curl(base .. "/probe?manifest=/r/c-1.pb")
    assert.equal(503, code)
    assert.equal("too many probes in flight\n", body)
    spit(tmp .. "/release", "")
    assert.matches('bhprobe_probe_success{policy="bhprobe%-lua",service="s",namespace="n",'
      .. 'path="/r/a%-1%.pb"} 0',
      poll_file("a-1.pb.out", "(.*verdict.*)"))
    poll_file("b-1.pb.out", "()stale")
    assert.equal(501, (curl(base .. "/metrics", "-X POST")))
    spit(tmp .. "/go", "")
    assert.equal(0, p.status())
    assert.matches("closed\ttrue", slurp(tmp .. "/out"))
  end)

  it("answers a pending /probe with 503 when the run ends", function()
    local p = start("-e " .. q(SERVE))
    local base = "http://" .. poll_file("out", "at (%S+)")
    sh(string.format("cd %s && env -u LD_PRELOAD curl -s --noproxy '*' --max-time 20 "
      .. "-w ' %%{http_code}' -o a.out %s"
      .. " >a.code &", q(tmp), q(base .. "/probe?manifest=/r/a-1.pb")))
    wait_exists("a-1.pb.started")
    spit(tmp .. "/go", "")
    assert.equal("503", poll_file("a.code", "(%d+)"))
    spit(tmp .. "/release", "") -- the handler's task ends, then the run
    assert.equal(0, p.status())
  end)

  it("--listen PORT serves /metrics on loopback in any script, from its first run", function()
    local p = start("--listen 0 -e " .. q([[
      print("at " .. bh.options.listen_address) io.stdout:flush()
      while not io.open("go") do bh.sleep(0.02) end]]))
    local addr = poll_file("out", "at (%S+)")
    assert.matches("^127%.0%.0%.1:%d+$", addr)
    local code, body = curl("http://" .. addr .. "/metrics")
    assert.equal(200, code)
    assert.matches("bhprobe_build_info{", body)
    assert.equal(200, (curl("http://" .. addr .. "/-/healthy")))
    assert.equal(404, (curl("http://" .. addr .. "/probe?manifest=/r/a-1.pb")))
    spit(tmp .. "/go", "")
    assert.equal(0, p.status())
    assert.matches("serving metrics on http://127%.0%.0%.1:%d+/metrics", slurp(tmp .. "/err"))
  end)

  it("serves /sd, the front page and /probe's debug view, under the --name", function()
    local p = start("--name edge --listen 0 -e " .. q([[
      local function rec(name, verdict, code)
        return { service = name, endpoint = { namespace_id = "n", path = "/r/" .. name .. ".sock" },
          verdict = verdict, code = code, elapsed_ms = 0.5, manifest = "/r/" .. name .. "-1.pb",
          generation = 2, pid = 7 }
      end
      bh.metrics.observe(rec("a", "verified", bh.null))
      bh.metrics.observe(rec("b", "impostor", "identity_mismatch"))
      bh.metrics.end_round{ duration = 0.01, period = 10 }
      bh.metrics.serve{ probe = function(path, debug)
        local r = rec(path:match("/r/(%w+)%-1%.pb$"), "stale", "pid_not_found")
        if debug then r.steps = { { step = "attempt 1", ms = 0.25, result = "pid_not_found" } } end
        return r
      end }
      print("at " .. bh.options.listen_address) io.stdout:flush()
      while not io.open("go") do bh.sleep(0.02) end]]))
    local base = "http://" .. poll_file("out", "at (%S+)")
    local code, body, ctype = curl(base .. "/sd")
    assert.equal(200, code)
    assert.equal("application/json", ctype)
    local json = require "dkjson"
    assert.same({
      { targets = { "/r/a-1.pb" },
        labels = { service = "a", namespace = "n", generation = "2", policy = "edge" } },
      { targets = { "/r/b-1.pb" },
        labels = { service = "b", namespace = "n", generation = "2", policy = "edge" } },
    }, json.decode(body))
    code, body, ctype = curl(base .. "/")
    assert.equal(200, code)
    assert.equal("text/html; charset=utf-8", ctype)
    assert.matches("<title>bhprobe%-lua: edge</title>", body)
    assert.truthy(body:find("<td>b</td><td>n</td><td>/r/b.sock</td><td>impostor</td>"
      .. "<td>identity_mismatch</td>", 1, true))
    code, body, ctype = curl(base .. "/probe?manifest=/r/a-1.pb&debug=true")
    assert.equal(200, code)
    assert.equal("text/plain; charset=utf-8", ctype)
    assert.matches("^manifest   /r/a%-1%.pb\nservice    a\n", body)
    assert.truthy(body:find("\nsteps:\n       0.250 ms  attempt 1: pid_not_found\n"
      .. "verdict    stale\ncode       pid_not_found\n", 1, true))
    assert.truthy(body:find('\nbhprobe_probe_failed_code{policy="edge",service="a",namespace="n",'
      .. 'path="/r/a.sock",code="pid_not_found"} 1\n', 1, true))
    code, body, ctype = curl(base .. "/probe?manifest=/r/a-1.pb&debug=false")
    assert.equal(200, code)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", ctype)
    assert.matches('\nbhprobe_probe_verdict{policy="edge",service="a",namespace="n",'
      .. 'path="/r/a.sock",verdict="stale"} 1\n', body, 1, true)
    assert.is_nil(body:find("steps:", 1, true))
    code, body = curl(base .. "/probe?manifest=/r/a-1.pb&debug=yes")
    assert.equal(400, code)
    assert.equal("bad query: debug must be true or false\n", body)
    code, body = curl(base .. "/probe?manifest=/r/a-1.pb&debug=true&debug=true")
    assert.equal(400, code)
    assert.equal("bad query: a query parameter given twice\n", body)
    assert.equal(404, (curl(base .. "/index.html")))
    code, body = curl(base .. "/metrics")
    assert.equal(200, code)
    assert.truthy(body:find('\nbhprobe_round_period_seconds{policy="edge"} 10\n', 1, true))
    spit(tmp .. "/go", "")
    assert.equal(0, p.status())
  end)

  it("checks its options", function()
    local cases = {
      { "bh.metrics.serve{ lisen = ':1' }", "bh.metrics.serve: unknown option 'lisen'" },
      { "bh.metrics.serve{ listen = '127.0.0.1:0', max_probes = 0 }", "'max_probes'" },
      { "bh.metrics.serve{ listen = '127.0.0.1:0', probe = 1 }", "'probe' must be a function" },
      { "bh.metrics.serve{}", "option 'listen' is required" },
      { "bh.metrics.serve{ listen = 'x:y' }", "listen address 'x:y'" },
    }
    for _, c in ipairs(cases) do
      local rc, _, err = run("-e " .. q(c[1]))
      assert.equal(1, rc, c[1])
      assert.matches(c[2], err, 1, true)
    end
  end)
end)
