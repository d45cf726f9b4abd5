-- etc/policies/manifests.lua end to end: real manifests in a temp dir, a
-- fixture process serving real responders, the real bhprobe-lua binary.
-- Every verdict is produced for real; report lines are parsed as JSON and
-- checked against the schema; the metrics file is parsed as Prometheus
-- text by a small parser of the exposition format (not a regex match).
-- External tools run with `env -u LD_PRELOAD`: in the sanitized tree the
-- ASan runtime is preloaded for lua5.4, and curl hangs under it.
-- labels: policy manifest probe respond http metrics verdict program
local H = require "helpers"
local json = require "dkjson"
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local q = H.q
local POLICY = assert(io.popen("pwd")):read("l") .. "/etc/policies/manifests.lua"

local FIXTURE = [=[
local root = ...
os.execute("mkdir -p " .. root)
local function ep(name) return { namespace_id = "spec", path = root .. "/" .. name .. ".sock" } end
local function manifest(dir, service, daemon, host)
  os.execute("mkdir -p " .. root .. "/" .. dir)
  assert(bh.manifest.write(root .. "/" .. dir .. "/" .. bh.manifest.NAME,
    { service_name = service, current_daemon = daemon, host = host }))
end
local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = type(v) == "table" and copy(v) or v end
  return c
end
-- verified: a live responder answering with our own identity
local live = assert(bh.identity.current{ endpoint = ep("live") })
local r1 = assert(bh.respond(live.ipc_endpoint, live))
manifest("live", "live", live)
-- impostor: the endpoint answers with another identity
local imp = assert(bh.identity.current{ endpoint = ep("imp") })
local liar = copy(imp); liar.boot_id = "someone-else"
local r2 = assert(bh.respond(imp.ipc_endpoint, imp, { on_request = function() return liar end }))
manifest("imp", "imp", imp)
-- stale: a pid that does not exist
local dead = copy(assert(bh.identity.current{ endpoint = ep("dead") })); dead.pid = 4194000
manifest("dead", "dead", dead)
-- stale: recorded before a reboot
local reboot = copy(assert(bh.identity.current{ endpoint = ep("reboot") }))
reboot.boot_id = "old-boot"
manifest("reboot", "reboot", reboot)
-- stale: a pid reused since the record was written
local reused = copy(assert(bh.identity.current{ endpoint = ep("reused") }))
reused.started_at_unix_ms = 1000
manifest("reused", "reused", reused)
-- stale: the pid runs another program now
local other = copy(assert(bh.identity.current{ endpoint = ep("other") }))
other.exe_path, other.exe_sha256, other.exe_hash = "/usr/bin/gone", ("0"):rep(64), ("1"):rep(64)
manifest("other", "other", other)
-- unreachable: our own pid, alive and verified, but nothing answers on its
-- socket (moved away, a private /tmp): proves nothing, never cleaned
local quiet = assert(bh.identity.current{ endpoint = ep("quiet") })
local r3 = assert(bh.respond(quiet.ipc_endpoint, quiet))
manifest("quiet", "quiet", quiet)
-- foreign: recorded by another machine sharing the disk
local far = copy(dead)
far.ipc_endpoint = ep("far")
manifest("far", "far", far, { hostname = "elsewhere", machine_id = ("f"):rep(32) })
-- invalid: a sealed manifest with one byte changed
manifest("corrupt", "corrupt", dead)
local cpath = root .. "/corrupt/" .. bh.manifest.NAME
local f = assert(io.open(cpath, "rb"))
local bytes = f:read("a")
f:close()
local i = bytes:find("corrupt", 1, true)
f = assert(io.open(cpath, "wb"))
f:write(bytes:sub(1, i - 1) .. "C" .. bytes:sub(i + 1))
f:close()
-- invalid: garbage
os.execute("mkdir -p " .. root .. "/bad && printf '\\377\\377' > "
  .. root .. "/bad/" .. bh.manifest.NAME)
-- no daemon: skipped
manifest("empty", "empty", nil)
io.open(root .. "/ready", "w"):close()
r3:close()
bh.sleep(120)
]=]

-- Parses Prometheus text exposition (format 0.0.4): HELP/TYPE comments,
-- samples `name{label="value",...} value [timestamp]` with escapes in label
-- values. Returns {types = {name = type}, samples = {{name, labels, value}}}
-- or raises naming the line.
local function parse_prometheus(text)
  local types, samples, n = {}, {}, 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    local function fail(why) error(("line %d: %s: %q"):format(n, why, line)) end
    if line:sub(1, 1) == "#" then
      local kw, name, rest = line:match("^# (%u+) ([%a_:][%w_:]*) ?(.*)$")
      if kw == "TYPE" then
        if types[name] then fail("second TYPE") end
        local kinds = { counter = 1, gauge = 1, histogram = 1, summary = 1, untyped = 1 }
        if not kinds[rest] then fail("bad type") end
        types[name] = rest
      elseif kw ~= "HELP" then fail("bad comment") end
    elseif line ~= "" then
      local name, i = line:match("^([%a_:][%w_:]*)()")
      if not name then fail("bad metric name") end
      local labels = {}
      if line:sub(i, i) == "{" then
        i = i + 1
        while line:sub(i, i) ~= "}" do
          local lname, j = line:match('^([%a_][%w_]*)="()', i)
          if not lname then fail("bad label") end
          local v, k = {}, j
          while true do
            local c = line:sub(k, k)
            if c == "" then fail("unterminated label value") end
            if c == '"' then break end
            if c == "\\" then
              local e = line:sub(k + 1, k + 1)
              v[#v + 1] = ({ n = "\n", ["\\"] = "\\", ['"'] = '"' })[e] or fail("bad escape")
              k = k + 2
            else
              v[#v + 1] = c
              k = k + 1
            end
          end
          if labels[lname] then fail("duplicate label") end
          labels[lname] = table.concat(v)
          i = k + 1
          if line:sub(i, i) == "," then i = i + 1 end
        end
        i = i + 1
      end
      local value = line:sub(i):match("^ (%S+) ?%d*$")
      local special = { ["+Inf"] = math.huge, ["-Inf"] = -math.huge, NaN = 0 / 0 }
      local num = tonumber(value) or special[value]
      if not num then fail("bad value") end
      local family = name:gsub("_total$", "")
      if not types[name] and not types[family] then fail("sample before its TYPE") end
      samples[#samples + 1] = { name = name, labels = labels, value = num }
    end
  end
  return { types = types, samples = samples }
end

local function sample(m, name, want)
  for _, s in ipairs(m.samples) do
    if s.name == name then
      local ok = true
      for k, v in pairs(want) do ok = ok and s.labels[k] == v end
      if ok then return s.value end
    end
  end
end

local SCHEMA = { ts = "string", service = "string", endpoint = "table", verdict = "string",
  elapsed_ms = "number", pid = "number", manifest = "string" }

describe("etc/policies/manifests.lua", function()
  local dir, root, fixture_pid

  setup(function()
    dir = H.tmpdir()
    root = dir .. "/root"
    H.spit(dir .. "/fixture.lua", FIXTURE)
    local p = assert(io.popen(BIN .. " " .. q(dir .. "/fixture.lua") .. " " .. q(root)
      .. " >" .. q(dir .. "/fixture.out") .. " 2>&1 & echo $!"))
    fixture_pid = p:read("l")
    p:close()
    for _ = 1, 100 do
      if H.exists(root .. "/ready") then break end
      os.execute("sleep 0.1")
    end
    assert(H.exists(root .. "/ready"),
      "fixture did not start: " .. tostring(H.slurp(dir .. "/fixture.out")))
  end)

  teardown(function()
    if fixture_pid then os.execute("kill " .. fixture_pid .. " 2>/dev/null") end
    H.rmdir(dir)
  end)

  local function run_policy(extra)
    local rep, met = dir .. "/r.jsonl", dir .. "/m.prom"
    os.remove(rep)
    local ok = os.execute(BIN .. " --report " .. q(rep) .. " --metrics " .. q(met) .. " "
      .. q("etc/policies/manifests.lua") .. " " .. q(root) .. " " .. (extra or "")
      .. " >" .. q(dir .. "/p.out") .. " 2>" .. q(dir .. "/p.err"))
    local by = {}
    for line in (H.slurp(rep) or ""):gmatch("[^\n]+") do
      local rec = assert(json.decode(line, 1, json.null), "not JSON: " .. line)
      -- keyed by the record's directory under root (its service name too)
      by[rec.manifest:match("([^/]+)/[^/]+$")] = rec
    end
    return ok, by, H.slurp(met), H.slurp(dir .. "/p.err")
  end

  local function manifest_of(name)
    return bh.manifest.read(root .. "/" .. name .. "/" .. bh.manifest.NAME)
  end

  setup(function() _G.bh = require "bh" end)

  it("classifies each record for real (dry run changes nothing)", function()
    local ok, by, _, err = run_policy()
    assert.is_nil(ok) -- exit 2: an impostor and an invalid record were found
    assert.equal("verified", by.live.verdict)
    assert.equal("impostor", by.imp.verdict)
    assert.equal("identity_mismatch", by.imp.code)
    assert.equal("boot_id", by.imp.field)
    assert.equal("stale", by.dead.verdict)
    assert.equal("pid_not_found", by.dead.code)
    assert.equal("stale", by.reboot.verdict)
    assert.equal("boot_id_mismatch", by.reboot.code)
    assert.equal("stale", by.reused.verdict)
    assert.equal("pid_reused", by.reused.code)
    assert.equal("stale", by.other.verdict)
    assert.equal("exe_path_mismatch", by.other.code)
    assert.equal("unreachable", by.quiet.verdict)
    assert.equal("connect", by.quiet.code)
    assert.equal("foreign", by.far.verdict)
    assert.equal("foreign_host", by.far.code)
    assert.equal("invalid", by.bad.verdict)
    assert.equal("manifest_decode", by.bad.code)
    assert.equal("invalid", by.corrupt.verdict)
    assert.equal("manifest_corrupt", by.corrupt.code)
    assert.is_nil(by.empty)
    assert.matches("IMPOSTOR", err)
    assert.truthy(manifest_of("dead").current_daemon)
    assert.truthy(manifest_of("quiet").current_daemon)
  end)

  it("writes report lines that match the schema", function()
    local _, by = run_policy()
    for name, rec in pairs(by) do
      if rec.verdict ~= "invalid" and rec.verdict ~= "foreign" then -- not probed
        for k, t in pairs(SCHEMA) do assert.equal(t, type(rec[k]), name .. "." .. k) end
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", rec.ts)
        assert.equal("spec", rec.endpoint.namespace_id)
        assert.equal("string", type(rec.endpoint.path))
      end
    end
    assert.equal(json.null, by.live.code)
    assert.equal("number", type(by.live.peer_pid))
  end)

  it("keeps a metrics file that parses as Prometheus text", function()
    local _, by, text = run_policy()
    local m = parse_prometheus(text)
    assert.equal("gauge", m.types.bhprobe_probe_success)
    assert.equal("counter", m.types.bhprobe_probe_failures_total)
    assert.equal(1, sample(m, "bhprobe_probe_success",
      { service = "live", path = by.live.endpoint.path }))
    assert.equal(0, sample(m, "bhprobe_probe_success", { service = "imp" }))
    assert.equal(1, sample(m, "bhprobe_probe_failures_total",
      { service = "dead", code = "pid_not_found" }))
    assert.is_true(sample(m, "bhprobe_probe_duration_seconds", { service = "live" }) >= 0)
    assert.has_error(function() parse_prometheus('x{a="b} 1\n') end)
  end)

  -- Exit status of one record's directory (a root holding only it).
  local function status_of(sub, extra)
    local _, _, code = os.execute(BIN .. " " .. q("etc/policies/manifests.lua") .. " "
      .. q(root .. "/" .. sub) .. " " .. (extra or "") .. " >/dev/null 2>&1")
    return code
  end

  it("exits like a Nagios plugin: 0 verified, 1 stale, 2 impostor or invalid, 3 no root",
    function()
      assert.equal(0, status_of("live"))
      assert.equal(1, status_of("dead"))
      assert.equal(1, status_of("quiet"))
      assert.equal(2, status_of("imp"))
      assert.equal(2, status_of("bad"))
      assert.equal(3, status_of("no-such-dir"))
      -- a manifest naming no daemon is no record: a scan of nothing is
      -- UNKNOWN, unless --allow-empty says it may be so
      assert.equal(3, status_of("empty"))
      assert.equal(0, status_of("empty", "--allow-empty"))
      -- CRITICAL outranks an incomplete scan; WARNING does not
      assert.equal(2, status_of("imp", "--allow-empty " .. q(root .. "/no-such-dir")))
      assert.equal(3, status_of("dead", q(root .. "/no-such-dir")))
    end)

  -- The policy as a service in the background, in its own directory d:
  -- returns {metrics() -> parsed file or nil, addr() -> the --listen
  -- address, stop() -> exit status}. Every wait is bounded.
  local function service(d, args, host_args)
    os.execute("rm -rf " .. q(d) .. " && mkdir -p " .. q(d))
    os.execute(string.format("cd %s && (env --default-signal=INT,TERM %s --metrics m.prom "
      .. "--report r.jsonl %s %s %s >out 2>err & echo $! >pid; wait $!; echo $? >rc) "
      .. ">/dev/null 2>&1 &", q(d), q(BIN), host_args or "", q(POLICY), args))
    local s = {}
    local function poll(file, pattern)
      for _ = 1, 600 do
        local m = (H.slurp(d .. "/" .. file) or ""):match(pattern)
        if m then return m end
        os.execute("sleep 0.05")
      end
      error("timed out waiting for " .. pattern .. " in " .. file .. "; stderr: "
        .. tostring(H.slurp(d .. "/err")))
    end
    s.poll = poll
    function s.metrics()
      local text = H.slurp(d .. "/m.prom")
      return text and parse_prometheus(text), text
    end
    function s.addr() return poll("err", "serving metrics on http://([^/]+)/metrics") end
    -- Waits until the metrics file says at least n rounds ended.
    function s.rounds(n)
      for _ = 1, 600 do
        local m = s.metrics()
        local r = m and sample(m, "bhprobe_rounds_total", {})
        if r and r >= n then return m, r end
        os.execute("sleep 0.05")
      end
      error("fewer than " .. n .. " rounds; stderr: " .. tostring(H.slurp(d .. "/err")))
    end
    function s.stop()
      os.execute("kill -TERM " .. poll("pid", "(%d+)") .. " 2>/dev/null")
      return tonumber(poll("rc", "(%d+)"))
    end
    return s
  end

  local function curl(url, headers)
    local p = assert(io.popen("env -u LD_PRELOAD curl -s --noproxy '*' --max-time 20 "
      .. (headers or "")
      .. " -w '\n%{http_code} %{content_type}' " .. q(url)))
    local out = p:read("a")
    p:close()
    local body, code, ctype = out:match("^(.-)\n?(%d+) ([^\n]*)$")
    return tonumber(code), body, ctype
  end

  it("forgets a deleted manifest's daemon within two rounds", function()
    local r2 = dir .. "/root2"
    os.execute("rm -rf " .. q(r2) .. " && mkdir " .. q(r2) .. " && cp -a " .. q(root .. "/live")
      .. " " .. q(root .. "/dead") .. " " .. q(r2))
    local s = service(dir .. "/svc1", q(r2) .. " --every 0.2")
    local ok, err = pcall(function()
      local m, n = s.rounds(1)
      assert.equal(0, sample(m, "bhprobe_probe_success", { service = "dead" }))
      os.execute("rm -rf " .. q(r2 .. "/dead"))
      -- The round in progress may have scanned before the removal: two more.
      m = s.rounds(n + 2)
      assert.is_nil(sample(m, "bhprobe_probe_success", { service = "dead" }))
      assert.is_nil(sample(m, "bhprobe_probe_verdict", { service = "dead" }))
      assert.is_nil(sample(m, "bhprobe_probe_failures_total", { service = "dead" }))
      assert.equal(1, sample(m, "bhprobe_probe_success", { service = "live" }))
      assert.equal(1, sample(m, "bhprobe_round_targets", { verdict = "verified" }))
      assert.equal(0, sample(m, "bhprobe_round_targets", { verdict = "stale" }))
    end)
    assert.equal(143, s.stop())
    assert(ok, err)
  end)

  it("forgets a record cleaned by --apply once it names no daemon", function()
    local r3 = dir .. "/root3"
    os.execute("rm -rf " .. q(r3) .. " && mkdir " .. q(r3) .. " && cp -a " .. q(root .. "/dead")
      .. " " .. q(r3))
    local s = service(dir .. "/svc2", q(r3) .. " --every 0.2 --apply")
    local ok, err = pcall(function()
      local m = s.rounds(3)
      assert.is_nil(sample(m, "bhprobe_probe_verdict", { service = "dead", verdict = "stale" }))
      assert.matches('"cleared":true', H.slurp(dir .. "/svc2/r.jsonl"))
    end)
    assert.equal(143, s.stop())
    assert(ok, err)
  end)

  it("serves /metrics and /probe?manifest= on --listen, refusing hostile paths", function()
    local s = service(dir .. "/svc3", q(root) .. " --every 0.3", "--listen 127.0.0.1:0")
    local ok, err = pcall(function()
      local base = "http://" .. s.addr()
      s.rounds(1)
      local code, body, ctype = curl(base .. "/metrics")
      assert.equal(200, code)
      assert.equal("text/plain; version=0.0.4; charset=utf-8", ctype)
      local m = parse_prometheus(body .. "\n")
      assert.equal(1, sample(m, "bhprobe_probe_success", { service = "live" }))
      assert.equal(1, sample(m, "bhprobe_build_info", {}))
      code, body, ctype = curl(base .. "/metrics", "-H 'Accept: application/openmetrics-text'")
      assert.equal(200, code)
      assert.matches("^application/openmetrics%-text; version=1%.0%.0", ctype)
      assert.matches("# EOF\n$", body)
      assert.equal(200, (curl(base .. "/-/healthy")))
      local live = root .. "/live/" .. bh.manifest.NAME
      code, body = curl(base .. "/probe?manifest=" .. live)
      assert.equal(200, code)
      m = parse_prometheus(body .. "\n")
      assert.equal(1, sample(m, "bhprobe_probe_success", { service = "live" }))
      code, body = curl(base .. "/probe?manifest=" .. root .. "/imp/" .. bh.manifest.NAME)
      assert.equal(200, code)
      assert.equal(1, sample(parse_prometheus(body .. "\n"), "bhprobe_probe_verdict",
        { service = "imp", verdict = "impostor" }))
      -- Well-formed, but not a record the scan found: never read.
      assert.equal(404, (curl(base .. "/probe?manifest=/etc/shadow-1.pb")))
      for _, bad in ipairs({ "etc/x-1.pb", root .. "/live/../live/" .. bh.manifest.NAME,
        "/etc/passwd", live .. "%00.pb", "", live .. "&manifest=" .. live }) do
        assert.equal(400, (curl(base .. "/probe?manifest=" .. bad)), bad)
      end
      assert.equal(404, (curl(base .. "/nothing")))
    end)
    assert.equal(143, s.stop())
    assert(ok, err)
  end)

  it("answers /probe for a record cleared by --apply (no daemon) and with its debug view",
    function()
      local r4 = dir .. "/root4"
      os.execute("rm -rf " .. q(r4) .. " && mkdir " .. q(r4) .. " && cp -a " .. q(root .. "/live")
        .. " " .. q(root .. "/dead") .. " " .. q(r4))
      local s = service(dir .. "/svc6", q(r4) .. " --every 0.3 --apply", "--name edge "
        .. "--listen 127.0.0.1:0")
      local ok, err = pcall(function()
        local base = "http://" .. s.addr()
        s.rounds(2) -- the first round cleared the dead one; the second no longer sees it
        local dead = r4 .. "/dead/" .. bh.manifest.NAME
        local code, body = curl(base .. "/probe?manifest=" .. dead)
        assert.equal(200, code)
        local m = parse_prometheus(body .. "\n")
        assert.equal(0, sample(m, "bhprobe_probe_success", { service = "dead", policy = "edge" }))
        assert.equal(1, sample(m, "bhprobe_probe_verdict", { service = "dead", verdict = "stale" }))
        assert.equal(1, sample(m, "bhprobe_probe_failed_code",
          { service = "dead", code = "no_daemon" }))
        -- /sd lists what names a daemon: the cleared record is no target any more
        local _, sd = curl(base .. "/sd")
        assert.is_nil(sd:find(dead, 1, true))
        assert.truthy(sd:find(r4 .. "/live/" .. bh.manifest.NAME, 1, true))
        local ctype
        code, body, ctype = curl(base .. "/probe?manifest=" .. r4 .. "/live/" .. bh.manifest.NAME
          .. "&debug=true")
        assert.equal(200, code)
        assert.equal("text/plain; charset=utf-8", ctype)
        assert.matches("^manifest   " .. r4:gsub("%p", "%%%0") .. "/live/", body)
        assert.matches("\nsteps:\n +[%d.]+ ms  read the record: ok %(owner uid %d+, mode 0644%)\n"
          .. " +[%d.]+ ms  check the host: this machine\n"
          .. " +[%d.]+ ms  probe attempt 1: verified, pid %d+ %(verify_pid [%d.]+ ms, "
          .. "connect [%d.]+ ms, exchange [%d.]+ ms%)\nverdict    verified\n", body)
        assert.matches("\nmetrics that would have been returned:\n", body)
        -- a scrape with debug reports nothing and cleans nothing
        assert.is_nil(H.slurp(dir .. "/svc6/r.jsonl"):find('"steps"', 1, true))
      end)
      assert.equal(143, s.stop())
      assert(ok, err)
    end)

  it("writes metrics that promtool check metrics accepts", function()
    local s = service(dir .. "/svc4", q(root) .. " --every 0.3", "--listen 127.0.0.1:0")
    local ok, err = pcall(function()
      local base = "http://" .. s.addr()
      s.rounds(1)
      local out = dir .. "/promtool.out"
      for _, cmd in ipairs({
        "env -u LD_PRELOAD promtool check metrics <" .. q(dir .. "/svc4/m.prom"),
        "env -u LD_PRELOAD curl -s --noproxy '*' --max-time 20 " .. q(base .. "/metrics")
          .. " | env -u LD_PRELOAD promtool check metrics" }) do
        local okc = os.execute(cmd .. " >" .. q(out) .. " 2>&1")
        assert(okc, cmd .. ": " .. tostring(H.slurp(out)))
        assert.equal("", H.slurp(out))
      end
    end)
    assert.equal(143, s.stop())
    assert(ok, err)
  end)

  -- A free TCP port on 127.0.0.1 (bound once by the host, then released).
  local function free_addr()
    local p = assert(io.popen(q(BIN) .. " --listen 127.0.0.1:0 -e "
      .. q("print(bh.options.listen_address)") .. " 2>/dev/null"))
    local a = p:read("l")
    p:close()
    return assert(a and a:match("^127%.0%.0%.1:%d+$") and a, "no free port")
  end

  -- Starts a real Prometheus server (Debian's prometheus) scraping the
  -- targets, with its own config and storage in pd; returns its address
  -- and a stop function that kills it (bounded) on every path.
  local function prometheus(pd, addr, manifest)
    os.execute("rm -rf " .. q(pd) .. " && mkdir -p " .. q(pd))
    local web = free_addr()
    H.spit(pd .. "/prometheus.yml", table.concat({
      "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}",
      "scrape_configs:",
      "  - job_name: bhprobe",
      "    static_configs: [{targets: ['" .. addr .. "']}]",
      "  - job_name: bhprobe_manifest",
      "    metrics_path: /probe",
      "    params: {manifest: ['" .. manifest .. "']}",
      "    static_configs: [{targets: ['" .. addr .. "']}]", "" }, "\n"))
    os.execute(string.format("cd %s && (env -u LD_PRELOAD prometheus --config.file=prometheus.yml "
      .. "--storage.tsdb.path=data --web.listen-address=%s >log 2>&1 & echo $! >pid)",
      q(pd), web))
    local pid = assert(H.slurp(pd .. "/pid")):match("%d+")
    local function stop()
      os.execute("kill -TERM " .. pid .. " 2>/dev/null")
      for _ = 1, 200 do
        if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then return end
        os.execute("sleep 0.05")
      end
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    end
    return web, stop
  end

  -- Polls Prometheus's HTTP API until query returns one series with value
  -- want (at most 60 s); returns the API's answer.
  local function query_until(web, query, want)
    local last
    for _ = 1, 120 do
      local code, body = curl("http://" .. web .. "/api/v1/query?query=" .. query)
      if code == 200 then
        last = body
        local r = json.decode(body)
        local res = r and r.data and r.data.result
        if res and #res == 1 and res[1].value[2] == want then return body end
      end
      os.execute("sleep 0.5")
    end
    error("Prometheus never answered " .. want .. " to " .. query .. ": " .. tostring(last))
  end

  it("is scraped by a real Prometheus server: bhprobe_probe_success read back", function()
    local s = service(dir .. "/svc5", q(root) .. " --every 0.5", "--listen 127.0.0.1:0")
    local stop_prom = function() end
    local ok, err = pcall(function()
      local addr = s.addr()
      local web
      web, stop_prom = prometheus(dir .. "/prom", addr, root .. "/live/" .. bh.manifest.NAME)
      local got = query_until(web,
        "bhprobe_probe_success%7Bjob%3D%22bhprobe%22%2Cservice%3D%22live%22%7D", "1")
      assert.matches('"instance":"' .. addr:gsub("%p", "%%%0") .. '"', got)
      query_until(web, "bhprobe_probe_success%7Bjob%3D%22bhprobe%22%2Cservice%3D%22imp%22%7D", "0")
      got = query_until(web,
        "bhprobe_probe_success%7Bjob%3D%22bhprobe_manifest%22%7D", "1")
      H.spit(dir .. "/prometheus-answer.json", got) -- kept for the record
      assert.matches('"service":"live"', got)
    end)
    stop_prom()
    assert.equal(143, s.stop())
    assert(ok, err)
  end)

  it("with --apply cleans only stale records", function()
    local keep = {}
    for _, name in ipairs { "imp", "live", "quiet", "far", "corrupt", "bad" } do
      keep[name] = H.slurp(root .. "/" .. name .. "/" .. bh.manifest.NAME)
    end
    local ok, by = run_policy("--apply")
    assert.is_nil(ok)
    assert.is_true(by.dead.action.cleared)
    for _, name in ipairs { "dead", "reboot", "reused", "other" } do
      assert.is_nil(manifest_of(name).current_daemon, name)
    end
    -- impostors, the unreachable, other machines' and broken records: not
    -- one byte changed
    for name, bytes in pairs(keep) do
      assert.equal(bytes, H.slurp(root .. "/" .. name .. "/" .. bh.manifest.NAME), name)
    end
    -- every line of an --apply run says what was done, or why not
    assert.same({ skipped = "impostor" }, by.imp.action)
    assert.same({ skipped = "verified" }, by.live.action)
    assert.same({ skipped = "unreachable" }, by.quiet.action)
    assert.same({ skipped = "foreign" }, by.far.action)
    assert.same({ skipped = "invalid" }, by.bad.action)
    assert.same({ skipped = "invalid" }, by.corrupt.action)
    assert.is_true(os.execute("test -S " .. q(root .. "/imp.sock")))
    assert.is_true(os.execute("test -S " .. q(root .. "/live.sock")))
    assert.equal("dead", manifest_of("dead").service_name)
  end)

  it("with no ROOT scans the central registry, refusing an insecure one", function()
    local reg = dir .. "/registry"
    os.execute("mkdir -m 0700 " .. q(reg))
    os.execute("cp " .. q(root .. "/live/" .. bh.manifest.NAME) .. " " .. q(reg .. "/live-1.0.pb"))
    local dead = assert(bh.identity.current { endpoint = { path = reg .. "/dead.sock" } })
    dead.pid = 4194000
    assert(bh.manifest.write(reg .. "/dead-1.0.pb",
      { service_name = "dead", current_daemon = dead }))
    local function run(mode)
      os.execute("chmod " .. mode .. " " .. q(reg))
      local rep = dir .. "/central.jsonl"
      os.remove(rep)
      local ok = os.execute("RUNNING_PROCESS_MANIFEST_DIR=" .. q(reg) .. " " .. BIN ..
        " --report " .. q(rep) .. " etc/policies/manifests.lua >/dev/null 2>" .. q(dir .. "/c.err"))
      local by = {}
      for line in (H.slurp(rep) or ""):gmatch("[^\n]+") do
        local rec = json.decode(line, 1, json.null)
        by[rec.service] = rec
      end
      return ok, by, H.slurp(dir .. "/c.err")
    end
    local _, by = run("0700")
    assert.equal("verified", by.live.verdict)
    assert.equal("stale", by.dead.verdict)
    local ok, none, err = run("0755")
    assert.is_nil(ok)
    assert.is_nil(next(none))
    -- the message says what is wrong: here the mode, not the owner
    assert.matches("manifest registry [^\n]*/registry has mode 0755: its group or others "
      .. "may reach it %(expected 0700%)", err)
    assert.is_nil(err:find("belongs to", 1, true))
  end)

  it("rejects bad usage with status 3 (UNKNOWN)", function()
    local ok, _, code = os.execute(BIN .. " etc/policies/manifests.lua --bogus 2>/dev/null")
    assert.is_nil(ok)
    assert.equal(3, code)
  end)
end)
