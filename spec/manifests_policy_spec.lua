-- etc/policies/manifests.lua end to end: real manifests in a temp dir, a
-- fixture process serving real responders, the real bhprobe-lua binary.
-- Every verdict is produced for real; report lines are parsed as JSON and
-- checked against the schema; the metrics file is parsed as Prometheus
-- text by a small parser of the exposition format (not a regex match).
local H = require "helpers"
local json = require "dkjson"
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local q = H.q

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
    assert.is_true(ok)
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

  it("with --apply cleans only stale records", function()
    local keep = {}
    for _, name in ipairs { "imp", "live", "quiet", "far", "corrupt", "bad" } do
      keep[name] = H.slurp(root .. "/" .. name .. "/" .. bh.manifest.NAME)
    end
    local ok, by = run_policy("--apply")
    assert.is_true(ok)
    assert.is_true(by.dead.action.cleared)
    for _, name in ipairs { "dead", "reboot", "reused", "other" } do
      assert.is_nil(manifest_of(name).current_daemon, name)
    end
    -- impostors, the unreachable, other machines' and broken records: not
    -- one byte changed
    for name, bytes in pairs(keep) do
      assert.equal(bytes, H.slurp(root .. "/" .. name .. "/" .. bh.manifest.NAME), name)
    end
    assert.is_nil(by.imp.action)
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
    assert.matches("not private to its owner", err)
  end)

  it("rejects bad usage with status 2", function()
    local ok, _, code = os.execute(BIN .. " etc/policies/manifests.lua --bogus 2>/dev/null")
    assert.is_nil(ok)
    assert.equal(2, code)
  end)
end)
