-- What a local user can put in front of the service (docs/hostile-peers.md,
-- "A local user against the service"): root runs manifests.lua over
-- records user nobody writes; nobody fills the descriptor table, points
-- records at root-only sockets, swaps the registry under the scan, and
-- the service is killed in the middle of a rewrite. Each attack is
-- rebuilt with real processes (runuser/setpriv as nobody, renameat2
-- RENAME_EXCHANGE races, ulimit -n) and must fail.
-- labels: policy manifest fsutil stale http program
-- ctest: serial (races and rounds counted within seconds)
local H = require "helpers"
local json = require "dkjson"
local bh = require "bh"

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local BUILD = assert(os.getenv("BH_BUILD_DIR"), "BH_BUILD_DIR must be set")
local TOOL = BUILD .. "/spec/race_tool"
local SHIM = BUILD .. "/spec/libstop_before_rename.so"
local POLICY = assert(io.popen("pwd")):read("l") .. "/etc/policies/manifests.lua"
local q = H.q

local function is_root() return io.popen("id -u"):read("l") == "0" end

local function sh(cmd) assert(H.system(cmd), "failed: " .. cmd) end

-- Report lines of file, decoded.
local function records(file)
  local out = {}
  for line in (H.slurp(file) or ""):gmatch("[^\n]+") do
    out[#out + 1] = assert(json.decode(line, 1, json.null), "not JSON: " .. line)
  end
  return out
end

-- The value of one sample of the metrics text (labels exactly as written,
-- after the policy label every series starts with).
local function metric(text, series)
  local name, labels = series:match("^([%w_]+){(.*)}$")
  name = name or series
  local pattern = name:gsub("%p", "%%%0") .. '{policy="[^"]*"'
    .. (labels and ("," .. labels:gsub("%p", "%%%0")) or "") .. "}"
  local v = (text or ""):match("\n" .. pattern .. " ([%d.e+-]+)")
  return v and tonumber(v)
end

-- A record of a daemon that is gone, its endpoint at sock.
local function gone(sock)
  local id = assert(bh.identity.current { endpoint = { namespace_id = "atk", path = sock } })
  id.pid = 4194002
  return id
end

-- Runs the policy once as root; returns exit status, records, stderr.
local function policy(dir, args, extra)
  local rep, err = dir .. "/r.jsonl", dir .. "/p.err"
  os.remove(rep)
  local _, _, code = os.execute((extra or "") .. " " .. q(BIN) .. " --report " .. q(rep) .. " "
    .. q(POLICY) .. " " .. args .. " >/dev/null 2>" .. q(err))
  return code, records(rep), H.slurp(err) or ""
end

-- A root process serving its own identity on path (mode 0600) until
-- killed, writing how many connections it has seen to path .. ".count".
local COUNTING = [[
local path = ...
local ep = { namespace_id = "atk", path = path }
local id = assert(bh.identity.current{ endpoint = ep })
local r = assert(bh.respond(ep, id))
local f = assert(io.open(path .. ".json", "w"))
f:write(bh.identity.to_json(id))
f:close()
bh.every(0.02, function()
  local c = assert(io.open(path .. ".count.tmp", "w"))
  c:write(tostring(r.served + r.rejected))
  c:close()
  os.rename(path .. ".count.tmp", path .. ".count")
end)
r:wait()
]]

describe("a local user against the service", function()
  local dir, pids
  before_each(function()
    dir = H.tmpdir()
    sh("chmod 0755 " .. q(dir))
    pids = {}
  end)
  after_each(function()
    for _, p in ipairs(pids) do os.execute("kill -KILL " .. p .. " 2>/dev/null") end
    H.rmdir(dir)
  end)

  local function background(cmd)
    local p = assert(io.popen(cmd .. " & echo $!"))
    local pid = p:read("l")
    p:close()
    pids[#pids + 1] = pid
    return pid
  end

  local function counting_daemon(path)
    H.spit(dir .. "/counting.lua", COUNTING)
    background(q(BIN) .. " " .. q(dir .. "/counting.lua") .. " " .. q(path) .. " >/dev/null 2>&1")
    for _ = 1, 200 do
      if H.exists(path .. ".count") then break end
      os.execute("sleep 0.02")
    end
    return assert(bh.identity.from_json(assert(H.slurp(path .. ".json"))))
  end

  local function connections(path)
    os.execute("sleep 0.1")
    return tonumber(H.slurp(path .. ".count"))
  end

  it("never removes a root-only socket a stale record of another user names #root", function()
    local att, vault = dir .. "/att", dir .. "/vault"
    sh("mkdir -p " .. q(att .. "/rec") .. " " .. q(att .. "/own") .. " " .. q(vault))
    sh("chmod 0700 " .. q(vault))
    sh(q(TOOL) .. " sock " .. q(vault .. "/root.sock")) -- root's, dead, in a root-only dir
    assert(bh.manifest.write(att .. "/rec/" .. bh.manifest.NAME,
      { service_name = "rec", current_daemon = gone(vault .. "/root.sock") }))
    -- the control: a record of nobody's own, its dead socket in its own dir
    assert(bh.manifest.write(att .. "/own/" .. bh.manifest.NAME,
      { service_name = "own", current_daemon = gone(att .. "/own/s.sock") }))
    sh("chown -R nobody:nogroup " .. q(att))
    local stage, tools = H.stage { TOOL } -- what nobody runs, where it may
    sh("runuser -u nobody -- " .. q(tools[1]) .. " sock " .. q(att .. "/own/s.sock"))
    H.rmdir(stage)
    local code, recs = policy(dir, q(att) .. " --apply")
    assert.equal(1, code)
    local by = {}
    for _, r in ipairs(recs) do by[r.service] = r end
    assert.equal("stale", by.rec.verdict)
    assert.is_true(by.rec.action.cleared) -- nobody's own record: cleared
    assert.is_false(by.rec.action.socket_removed)
    assert.matches("the record's owner could not remove it: uid 65534 may not reach its "
      .. "directory", by.rec.action.socket_left)
    assert.is_true(os.execute("test -S " .. q(vault .. "/root.sock")))
    assert.is_true(by.own.action.socket_removed)
    assert.is_false(H.exists(att .. "/own/s.sock"))
  end)

  it("never connects to a socket the record's owner could not connect to #root", function()
    local att, vault = dir .. "/att", dir .. "/vault"
    sh("mkdir -p " .. q(att .. "/live") .. " " .. q(att .. "/dead") .. " " .. q(vault))
    sh("chmod 0700 " .. q(vault))
    local root_id = counting_daemon(vault .. "/d.sock") -- root's, 0600, root-only dir
    -- nobody copies root's daemon's identity into a record of its own, and
    -- writes another naming the same socket with a dead pid
    assert(bh.manifest.write(att .. "/live/" .. bh.manifest.NAME,
      { service_name = "live", current_daemon = root_id }))
    local dead = H.copy(bh, root_id)
    dead.pid = 4194003
    assert(bh.manifest.write(att .. "/dead/" .. bh.manifest.NAME,
      { service_name = "dead", current_daemon = dead }))
    sh("chown -R nobody:nogroup " .. q(att))
    local code, recs = policy(dir, q(att))
    local by = {}
    for _, r in ipairs(recs) do by[r.service] = r end
    assert.equal("unreachable", by.live.verdict)
    assert.equal("owner_cannot_connect", by.live.code)
    assert.matches("uid 65534 may not search directory vault", by.live.message)
    assert.equal("stale", by.dead.verdict)
    assert.matches("not tried", by.dead.message)
    assert.equal(1, code)
    -- on demand too: GET /probe?manifest= of the same record
    local svc = dir .. "/svc"
    sh("mkdir -p " .. q(svc))
    background(string.format("cd %s && exec %s --listen 127.0.0.1:0 %s %s --every 60 "
      .. ">out 2>err", q(svc), q(BIN), q(POLICY), q(att)))
    local addr
    for _ = 1, 200 do
      addr = (H.slurp(svc .. "/err") or ""):match("serving metrics on http://([^/]+)/metrics")
      if addr and (H.slurp(svc .. "/err") or ""):match("round 1:") then break end
      os.execute("sleep 0.05")
    end
    local p = io.popen("env -u LD_PRELOAD curl -s --noproxy '*' --max-time 10 "
      .. q("http://" .. addr .. "/probe?manifest=" .. att .. "/live/" .. bh.manifest.NAME))
    local body = p:read("a")
    p:close()
    assert.matches('bhprobe_probe_verdict{[^}]*verdict="unreachable"} 1', body)
    assert.equal(0, connections(vault .. "/d.sock"))
  end)

  it("reads the registry's records through the directory it checked, never a swapped one #root",
    function()
      local seconds = tonumber(os.getenv("BH_ATTACK_SECONDS")) or 3
      local parent = dir .. "/share"
      local reg, evil = parent .. "/reg", parent .. "/evil"
      sh("mkdir -p " .. q(reg) .. " " .. q(evil) .. " && chmod 0700 " .. q(reg))
      -- the registry: records of a live root daemon (verified, never
      -- cleaned); the look-alike: stale records --apply would clean
      local live = counting_daemon(dir .. "/live.sock")
      for i = 1, 20 do
        local name = "svc" .. i .. "-1.0.pb"
        assert(bh.manifest.write(reg .. "/" .. name, { service_name = "good" .. i,
          current_daemon = live }))
        assert(bh.manifest.write(evil .. "/" .. name,
          { service_name = "evil" .. i, current_daemon = gone(evil .. "/s" .. i .. ".sock") }))
      end
      -- nobody owns the parent and the look-alike (0755), root the registry
      sh("chown nobody:nogroup " .. q(parent) .. " && chown -R nobody:nogroup " .. q(evil)
        .. " && chmod 0755 " .. q(evil))
      -- a swap every 30 ms, as the red team's: many scans open the real
      -- registry and are then raced while they read it
      local stage, tools = H.stage { TOOL }
      sh("runuser -u nobody -- " .. q(tools[1]) .. " swap " .. seconds .. " 30 " .. q(reg) .. " "
        .. q(evil) .. " >" .. q(dir .. "/race.out") .. " 2>&1 &")
      local rounds, good, bad, refused, t0 = 0, 0, 0, 0, bh.now()
      while bh.now() - t0 < seconds do
        local _, recs, err = policy(dir, "--apply --attempts 1",
          "RUNNING_PROCESS_MANIFEST_DIR=" .. q(reg))
        rounds = rounds + 1
        if err:match("belongs to uid 65534") then refused = refused + 1 end
        for _, r in ipairs(recs) do
          if r.service:match("^evil") then bad = bad + 1 else good = good + 1 end
        end
      end
      os.execute("sleep 0.3")
      H.rmdir(stage)
      local swaps = tonumber((H.slurp(dir .. "/race.out") or ""):match("(%d+) swaps"))
      io.stderr:write(("\n  registry swap race: %d rounds, %d refused as insecure, %d records "
        .. "read from the registry, %d from the look-alike, %s swaps\n")
        :format(rounds, refused, good, bad, tostring(swaps)))
      assert.is_true(swaps ~= nil and swaps > 0, "the race did not run")
      assert.is_true(good > 0)
      assert.equal(0, bad)
      -- the look-alike's records were never cleaned by root
      for i = 1, 20 do
        local where = H.exists(evil .. "/svc" .. i .. "-1.0.pb") and evil or reg
        local m = bh.manifest.read(where .. "/svc" .. i .. "-1.0.pb")
        if m and m.service_name:match("^evil") then assert.truthy(m.current_daemon) end
      end
    end)

  it("leaves no temp file behind when killed in the middle of a rewrite", function()
    local root = dir .. "/root"
    sh("mkdir -p " .. q(root .. "/rec"))
    local path = root .. "/rec/" .. bh.manifest.NAME
    assert(bh.manifest.write(path,
      { service_name = "rec", current_daemon = gone(root .. "/s.sock") }))
    local function temps()
      local p = io.popen("ls -A " .. q(root .. "/rec"))
      local n = 0
      for name in p:read("a"):gmatch("[^\n]+") do
        if name:match("%.tmp%.") then n = n + 1 end
      end
      p:close()
      return n
    end
    -- Stops itself at the step named, then is killed with -9.
    local function killed_at(var)
      local pid = background("env LD_PRELOAD=" .. q(SHIM) .. " " .. var .. "=1 " .. q(BIN) .. " "
        .. q(POLICY) .. " " .. q(root) .. " --apply --attempts 1 >/dev/null 2>&1")
      local stopped = false
      for _ = 1, 250 do
        local st = H.slurp("/proc/" .. pid .. "/stat") or ""
        if st:match("^%d+ %b() T") then
          stopped = true
          break
        end
        os.execute("sleep 0.02")
      end
      os.execute("kill -KILL " .. pid)
      os.execute("sleep 0.1")
      return stopped
    end
    -- killed before the temp file has a name: nothing is left
    assert.is_true(killed_at("BH_STOP_BEFORE_LINK"), "never reached linkat")
    assert.equal(0, temps())
    -- killed between naming it and renaming it: the next rewrite there
    -- sweeps it once it is older than a live writer's could be
    assert.is_true(killed_at("BH_STOP_BEFORE_RENAME"))
    assert.equal(1, temps())
    sh("touch -d '1 minute ago' " .. q(root .. "/rec") .. "/.*.tmp.*")
    -- someone else's look-alike is never taken: another owner, another name
    H.spit(root .. "/rec/." .. bh.manifest.NAME .. ".tmp.0badc0de", "theirs")
    H.spit(root .. "/rec/." .. bh.manifest.NAME .. ".tmp.keep", "not ours")
    if is_root() then
      sh("chown nobody " .. q(root .. "/rec/." .. bh.manifest.NAME .. ".tmp.0badc0de"))
    end
    sh("touch -d '1 minute ago' " .. q(root .. "/rec") .. "/.*.tmp.*")
    local code = policy(dir, q(root) .. " --apply --attempts 1")
    assert.equal(1, code)
    assert.is_nil(assert(bh.manifest.read(path)).current_daemon) -- the rewrite happened
    -- left: the look-alikes only (nobody's when we are root; a name
    -- that is not our pattern)
    local left = io.popen("ls -A " .. q(root .. "/rec")):read("a")
    local want = { ["." .. bh.manifest.NAME .. ".tmp.keep"] = true }
    if is_root() then want["." .. bh.manifest.NAME .. ".tmp.0badc0de"] = true end
    for name in left:gmatch("[^\n]+") do
      if name:match("%.tmp%.") then
        assert.is_true(want[name] == true, "left behind: " .. name)
        want[name] = nil
      end
    end
    assert.is_nil(next(want), left)
  end)

  it("keeps reporting, or says it could not, with its descriptor table full (ulimit -n)",
    function()
      local root = dir .. "/root"
      sh("mkdir -p " .. q(root))
      -- a live daemon recorded under the root
      local sock = dir .. "/live.sock"
      local id = counting_daemon(sock)
      sh("mkdir -p " .. q(root .. "/live"))
      assert(bh.manifest.write(root .. "/live/" .. bh.manifest.NAME,
        { service_name = "live", current_daemon = id }))
      local svc = dir .. "/svc"
      sh("mkdir -p " .. q(svc))
      -- soft limit 40, hard 4096: the host raises the soft one at start
      local pid = background(string.format("cd %s && ulimit -S -n 40 && ulimit -H -n 4096 && "
        .. "exec %s --listen 127.0.0.1:0 --report r.jsonl --metrics m.prom %s %s --every 0.2 "
        .. ">out 2>err", q(svc), q(BIN), q(POLICY), q(root)))
      local addr
      for _ = 1, 200 do
        addr = (H.slurp(svc .. "/err") or ""):match("serving metrics on http://([^/]+)/metrics")
        if addr then break end
        os.execute("sleep 0.05")
      end
      assert.truthy(addr)
      local limits = H.slurp("/proc/" .. pid .. "/limits") or ""
      assert.matches("Max open files%s+4096%s+4096", limits)
      -- and with both at 40: fill the table from outside
      os.execute("kill -TERM " .. pid)
      os.execute("sleep 0.2")
      pid = background(string.format("cd %s && rm -f r.jsonl m.prom && ulimit -n 40 && "
        .. "exec %s --listen 127.0.0.1:0 --report r.jsonl --metrics m.prom %s %s --every 0.2 "
        .. ">out 2>err", q(svc), q(BIN), q(POLICY), q(root)))
      for _ = 1, 200 do
        addr = (H.slurp(svc .. "/err") or ""):match("serving metrics on http://([^/]+)/metrics")
        if addr and #records(svc .. "/r.jsonl") >= 1 then break end
        os.execute("sleep 0.05")
      end
      background(q(TOOL) .. " hold " .. addr .. " 200 6 >" .. q(dir .. "/hold.out"))
      os.execute("sleep 0.5")
      local before = #records(svc .. "/r.jsonl")
      local m0 = H.slurp(svc .. "/m.prom")
      os.execute("sleep 3")
      local recs = records(svc .. "/r.jsonl")
      local m1 = H.slurp(svc .. "/m.prom")
      local err = H.slurp(svc .. "/err") or ""
      os.execute("kill -TERM " .. pid)
      local lines = #recs - before
      local rounds = (metric(m1, "bhprobe_rounds_total") or 0)
        - (metric(m0, "bhprobe_rounds_total") or 0)
      local unreadable = (metric(m1, 'bhprobe_round_errors_total{reason="unreadable"}') or 0)
      io.stderr:write(("\n  descriptor table full: %d rounds in 3 s, %d report lines, %d rounds "
        .. "counted unreadable\n"):format(rounds, lines, unreadable))
      assert.is_true(rounds >= 1, err)
      -- every round reported its record, or said it could not read it
      -- (counted, logged, not a success); never a silent round
      assert.is_true(lines + unreadable >= rounds, err)
      for i = before + 1, #recs do
        assert.are_not.equal("invalid", recs[i].verdict, "a record blamed for our limit")
      end
      if unreadable > 0 then assert.matches("Too many open files", err) end
    end)
end)
