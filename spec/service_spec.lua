-- The host as a service (design §3), end to end with the real binary:
-- signals from start-up, start-up checks of --report/--metrics/--listen,
-- report and metrics files that cannot be turned against the host (a
-- symlink planted by another user), a closed stdout, quiet stops and the
-- journald-friendly log lines. Every wait is bounded.
-- External tools run with `env -u LD_PRELOAD`: in the sanitized tree the
-- ASan runtime is preloaded for lua5.4, and curl hangs under it.
local H = require "helpers"
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local q, slurp, spit = H.q, H.slurp, H.spit
-- The source tree (ctest runs the specs from it), for etc/policies.
local ROOT = assert(io.popen("pwd")):read("l")

local tmp

local function sh(cmd)
  local ok, _, code = os.execute(cmd)
  return ok, code
end

local function sleep(s) os.execute("sleep " .. s) end

-- Waits (up to 20 s) for pattern in the file name of tmp; returns the capture.
local function poll_file(name, pattern)
  for _ = 1, 400 do
    local m = (slurp(tmp .. "/" .. name) or ""):match(pattern)
    if m then return m end
    sleep(0.05)
  end
  error("timed out waiting for " .. pattern .. " in " .. name .. "; stderr: "
    .. tostring(slurp(tmp .. "/err")))
end

-- Waits (up to 20 s) until a file named name exists in tmp.
local function wait_exists(name)
  for _ = 1, 400 do
    if H.exists(tmp .. "/" .. name) then return end
    sleep(0.05)
  end
  error("timed out waiting for " .. name)
end

-- Runs `prefix BIN args` in the background in tmp (SIGINT/SIGTERM at their
-- default disposition); returns {pid(), kill(sig), status()}; status()
-- waits at most 30 s, then kills the process and fails.
local function start(args, prefix)
  sh(string.format("cd %s && (env --default-signal=INT,TERM %s %s %s <%s >out 2>err & "
    .. "echo $! >pid; wait $!; echo $? >rc) >/dev/null 2>&1 &", q(tmp), prefix or "",
    q(BIN), args, "/dev/null"))
  local p = {}
  function p.pid() return poll_file("pid", "(%d+)") end
  function p.kill(sig) sh("kill -" .. sig .. " " .. p.pid()) end
  function p.status()
    for _ = 1, 600 do
      local s = slurp(tmp .. "/rc")
      if s and s:match("%d+") then return tonumber(s:match("%d+")) end
      sleep(0.05)
    end
    p.kill("KILL")
    error("process did not exit")
  end
  return p
end

-- Runs BIN args in tmp to the end; returns exit status, stdout, stderr.
local function run(args, prefix)
  local _, code = sh(string.format("cd %s && %s %s %s </dev/null >out 2>err", q(tmp),
    prefix or "", q(BIN), args))
  return code, slurp(tmp .. "/out"), slurp(tmp .. "/err")
end

local function is_root() return sh("test \"$(id -u)\" = 0") == true end

-- Runs a shell command as nobody (the other user of the attacks).
local function as_nobody(cmd)
  return sh("setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c " .. q(cmd))
end

local function mode_of(path)
  local p = assert(io.popen("stat -c %a " .. q(path)))
  local m = p:read("l")
  p:close()
  return m
end

before_each(function()
  tmp = H.tmpdir()
  sh("chmod 755 " .. q(tmp))
end)
after_each(function() H.rmdir(tmp) end)

describe("signals from start-up", function()
  it("SIGHUP before any report line reopens the report and never stops the process", function()
    local p = start("--report r.jsonl -e " .. q([[
      print("up") io.stdout:flush()
      while not io.open("go") do bh.sleep(0.02) end
      assert(bh.report{ after = "hup" })]]))
    poll_file("out", "()up")
    os.rename(tmp .. "/r.jsonl", tmp .. "/r.jsonl.1")
    p.kill("HUP")
    -- The reopen happens at once, from the loop: logrotate's `create`
    -- finds the new file before any line is written.
    wait_exists("r.jsonl")
    spit(tmp .. "/go", "")
    assert.equal(0, p.status())
    assert.equal('{"after":"hup"}\n', slurp(tmp .. "/r.jsonl"))
    assert.equal("", slurp(tmp .. "/r.jsonl.1"))
  end)

  it("SIGTERM ends a script blocked in io.read() on a pipe, the first time, quietly", function()
    -- The pipe's writer never writes and outlives the test's wait.
    sh(string.format("cd %s && (sh -c 'echo $$ >writer; exec sleep 60' | "
      .. "(env --default-signal=INT,TERM %s -e %s >out 2>err; echo $? >rc)) >/dev/null 2>&1 &",
      q(tmp), q(BIN), q([[print("pid " .. io.open("/proc/self/stat"):read("n")) io.stdout:flush()
          print(io.read())]])))
    local pid = poll_file("out", "pid (%d+)")
    sleep(0.2)
    sh("kill -TERM " .. pid)
    local ok, rc = pcall(poll_file, "rc", "(%d+)")
    if not ok then sh("kill -KILL " .. pid) end
    sh("kill " .. poll_file("writer", "(%d+)"))
    assert.equal("143", rc)
    assert.equal("", slurp(tmp .. "/err"))
  end)

  it("SIGTERM ends os.execute of a child that waits, as systemd's stop would", function()
    -- setsid: the host leads its process group, as under systemd.
    local p = start("-e " .. q([[print("up") io.stdout:flush() os.execute("sleep 60")
      print("not stopped")]]), "setsid")
    poll_file("out", "()up")
    sleep(0.2)
    p.kill("TERM")
    assert.equal(143, p.status())
    assert.is_nil(slurp(tmp .. "/out"):find("not stopped", 1, true))
  end)

  it("two SIGTERMs back to back end a group leader at once, never looping", function()
    -- The copy the first one forwards to the group and the second one
    -- both arrive while the handler runs: neither may re-arm the other.
    local p = start("-e " .. q([[print("up") io.stdout:flush() os.execute("sleep 60")
      bh.sleep(60)]]), "setsid")
    poll_file("out", "()up")
    sleep(0.2)
    sh("kill -TERM " .. p.pid() .. "; kill -TERM " .. p.pid())
    assert.equal(143, p.status())
  end)

  it("a clean stop is quiet: no 'interrupted' line", function()
    local p = start("-e " .. q([[print("up") io.stdout:flush() bh.sleep(60)]]))
    poll_file("out", "()up")
    p.kill("TERM")
    assert.equal(143, p.status())
    assert.equal("", slurp(tmp .. "/err"))
  end)
end)

describe("start-up checks", function()
  local cases = {
    { "--report /nonexistent/dir/r.jsonl",
      "%-%-report: report file /nonexistent/dir/r.jsonl: No such" },
    { "--metrics /nonexistent/dir/m.prom",
      "%-%-metrics: .*/nonexistent" },
    { "--listen 300.1.2.3:9", "%-%-listen: listen address '300.1.2.3:9'" },
    { "--listen 127.0.0.1:99999", "%-%-listen: listen address" },
  }
  for _, c in ipairs(cases) do
    it("exits 2 with the reason before the script runs: " .. c[1], function()
      local rc, out, err = run(c[1] .. " -e " .. q("print('ran')"))
      assert.equal(2, rc)
      assert.equal("", out)
      assert.matches("^bhprobe%-lua: " .. c[2], err)
    end)
  end

  it("exits 2 instead of running forever with --every and an unwritable --report", function()
    local p = start("--report /nonexistent/dir/r.jsonl "
      .. q(ROOT .. "/etc/policies/manifests.lua") .. " " .. q(tmp) .. " --every 0.1")
    assert.equal(2, p.status())
  end)

  it("exits 2 when the --listen port is taken", function()
    local p = start("--listen 127.0.0.1:0 -e " .. q([[
      print("at " .. bh.options.listen_address) io.stdout:flush() bh.sleep(60)]]))
    local addr = poll_file("out", "at (%S+)")
    local rc, _, err = run("--listen " .. addr .. " -e " .. q("print('ran')"))
    p.kill("TERM")
    assert.equal(143, p.status())
    assert.equal(2, rc)
    assert.matches("Address already in use", err)
  end)
end)

describe("the report file", function()
  it("refuses a symlink planted by another user and never writes through it", function()
    local victim = tmp .. "/victim"
    spit(victim, "root only\n")
    sh("chmod 600 " .. q(victim))
    local drop = tmp .. "/drop"
    sh("mkdir " .. q(drop))
    if is_root() then
      sh("chown nobody " .. q(drop))
      assert.is_true(as_nobody("ln -s " .. q(victim) .. " " .. q(drop .. "/r.jsonl")))
    else
      sh("ln -s " .. q(victim) .. " " .. q(drop .. "/r.jsonl"))
    end
    local rc, out, err = run("--report " .. q(drop .. "/r.jsonl") .. " -e "
      .. q("bh.report{x = 1}"))
    assert.equal(2, rc)
    assert.equal("", out)
    assert.matches("is a symbolic link: refused", err)
    assert.equal("root only\n", slurp(victim))
  end)

  it("refuses a symlink swapped in after start-up (rotation), keeps the victim intact", function()
    local victim = tmp .. "/victim"
    spit(victim, "root only\n")
    local p = start("--report r.jsonl -e " .. q([[
      print("up") io.stdout:flush()
      while not io.open("go") do bh.sleep(0.02) end
      local ok, err = bh.report{ x = 1 }
      print(ok, err and err.code, err and tostring(err))]]))
    poll_file("out", "()up")
    os.remove(tmp .. "/r.jsonl")
    sh("ln -s " .. q(victim) .. " " .. q(tmp .. "/r.jsonl"))
    spit(tmp .. "/go", "")
    assert.equal(0, p.status())
    assert.matches("nil\tsystem\treport file r.jsonl: is a symbolic link: refused",
      slurp(tmp .. "/out"))
    assert.equal("root only\n", slurp(victim))
  end)

  it("is created with mode 0640 whatever the umask", function()
    for _, umask in ipairs({ "000", "077" }) do
      os.remove(tmp .. "/r.jsonl")
      local rc = run("--report r.jsonl -e " .. q("assert(bh.report{ x = 1 })"),
        "umask " .. umask .. ";")
      assert.equal(0, rc)
      assert.equal("640", mode_of(tmp .. "/r.jsonl"), "umask " .. umask)
    end
  end)

  it("to a closed stdout (| head -1) ends the run quietly with 141", function()
    local _, code = sh(string.format("cd %s && (%s -e %s 2>err; echo $? >rc) | head -1 >out",
      q(tmp), q(BIN),
      q("for i = 1, 100000 do assert(bh.report{ i = i }) end print('all written')")))
    assert.is_true(code == 0 or code == nil)
    assert.equal('{"i":1}\n', slurp(tmp .. "/out"))
    assert.equal("", slurp(tmp .. "/err"))
    assert.equal("141", poll_file("rc", "(%d+)"))
  end)
end)

describe("the metrics file", function()
  it("refuses a symlink planted at the path, never copying its target's mode", function()
    local victim = tmp .. "/victim"
    spit(victim, "#!/bin/sh\n")
    sh("chmod 4755 " .. q(victim))
    local drop = tmp .. "/drop"
    sh("mkdir " .. q(drop))
    if is_root() then
      sh("chown nobody " .. q(drop))
      assert.is_true(as_nobody("ln -s " .. q(victim) .. " " .. q(drop .. "/m.prom")))
    else
      sh("ln -s " .. q(victim) .. " " .. q(drop .. "/m.prom"))
    end
    local rc, _, err = run("--metrics " .. q(drop .. "/m.prom") .. " -e " .. q("print('ran')"))
    assert.equal(2, rc)
    assert.matches("^bhprobe%-lua: %-%-metrics: .*m%.prom is a symbolic link; it is never", err)
    assert.equal("4755", mode_of(victim))
    assert.equal("#!/bin/sh\n", slurp(victim))
    -- bh.fs.write_atomic (which bh.metrics.flush uses) says the same.
    local code, out = run("-e " .. q("print(bh.fs.write_atomic("
      .. string.format("%q", drop .. "/m.prom") .. ", 'x'))"))
    assert.equal(0, code)
    assert.matches("nil\t.*is a symbolic link; it is never replaced", out)
    assert.equal("#!/bin/sh\n", slurp(victim))
  end)

  it("gets mode 0644 and no set-id bits, whatever mode the old file had", function()
    spit(tmp .. "/m.prom", "old\n")
    sh("chmod 6777 " .. q(tmp .. "/m.prom"))
    local rc = run("--metrics m.prom -e " .. q("assert(bh.metrics.flush())"), "umask 000;")
    assert.equal(0, rc)
    assert.equal("644", mode_of(tmp .. "/m.prom"))
    assert.matches("bhprobe_build_info{", slurp(tmp .. "/m.prom"))
  end)
end)

describe("bh.log", function()
  it("writes journald priority prefixes when stderr is the journal", function()
    local code = [[bh.log.error("e", 1) bh.log.warn("w") bh.log.info("i\nsecond")
      bh.log.debug("hidden") bh.log.level("debug") bh.log.debug("d") error("boom")]]
    -- JOURNAL_STREAM names the file stderr goes to, as systemd does.
    sh(string.format("cd %s && : >err && JOURNAL_STREAM=$(stat -c %%d:%%i err) %s -e %s 2>>err",
      q(tmp), q(BIN), q(code)))
    local err = slurp(tmp .. "/err")
    assert.matches("^<3>e 1\n<4>w\n<6>i\n<6>second\n<7>d\n"
      .. "<3>%(command line%):2: boom\n<3>stack traceback:\n", err)
    local _, _, plain = run("-e " .. q(code))
    assert.matches("^bhprobe%-lua: e 1\nbhprobe%-lua: warning: w\nbhprobe%-lua: i\nsecond\n"
      .. "bhprobe%-lua: debug: d\nbhprobe%-lua: %(command line%):2: boom\n", plain)
  end)

  it("gives the runtime's own error lines their priority too", function()
    local code = [[bh.every(1, function() error("run boom") end, { count = 1, name = "job" }):wait()
      local ep = { namespace_id = "s", path = ]] .. string.format("%q", tmp .. "/sock") .. [[ }
      local r = assert(bh.respond(ep, assert(bh.identity.current { endpoint = ep }),
        { on_request = function() error("hook boom") end }))
      bh.probe_response(ep, assert(bh.identity.current { endpoint = ep }))
      r:close()
      bh.spawn(function() error("lost") end)]]
    sh(string.format("cd %s && : >err && JOURNAL_STREAM=$(stat -c %%d:%%i err) %s -e %s 2>>err",
      q(tmp), q(BIN), q(code)))
    local err = slurp(tmp .. "/err")
    assert.matches("^<3>job: run 1 failed: %(command line%):1: run boom\n", err)
    assert.matches("\n<3>on_request: %(command line%):4: hook boom\n<3>stack traceback:\n", err)
    assert.matches("\n<3>a task failed and nobody waited for it: %(command line%):7: lost\n", err)
    assert.not_matches("bhprobe%-lua", err)
  end)

  it("checks its arguments", function()
    local rc, _, err = run("-e " .. q("bh.log.level('loud')"))
    assert.equal(1, rc)
    assert.matches("bad argument #1 to 'bh.log.level' %(\"error\", .* expected, got \"loud\"%)",
      err)
  end)
end)

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
