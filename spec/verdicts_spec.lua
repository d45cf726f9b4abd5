-- The verdicts and reactions of design §1.11 end to end: real daemons
-- (lua5.4 processes serving a responder, see helpers.start_daemon; a copy
-- of bhprobe-lua), killed, squatted, succeeded, replaced on disk, and
-- etc/policies/manifests.lua run on them through the real bhprobe-lua:
-- its report lines, exit statuses, log lines and metrics.
-- labels: verdict policy probe respond manifest program
local H = require "helpers"
local json = require "dkjson"
local bh = require "bh"

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local POLICY = assert(io.popen("pwd")):read("l") .. "/etc/policies/manifests.lua"
local q = H.q

local function is_root() return io.popen("id -u"):read("l") == "0" end

-- Runs the policy once over args (a string of shell words, after the
-- script), with extra before the command (env, unshare); returns exit
-- status, the report's records by service, stderr, the metrics text.
local function policy(dir, args, extra, bin, script)
  local rep, met, err = dir .. "/r.jsonl", dir .. "/m.prom", dir .. "/p.err"
  os.remove(rep)
  local _, _, code = os.execute((extra or "") .. " " .. q(bin or BIN) .. " --report " .. q(rep)
    .. " --metrics " .. q(met) .. " " .. q(script or POLICY) .. " " .. args .. " >/dev/null 2>"
    .. q(err))
  local by = {}
  for line in (H.slurp(rep) or ""):gmatch("[^\n]+") do
    local rec = assert(json.decode(line, 1, json.null), "not JSON: " .. line)
    by[rec.service] = rec
  end
  return code, by, H.slurp(err) or "", H.slurp(met) or ""
end

-- The value of one sample of the metrics text (labels exactly as written,
-- after the policy label every series starts with).
local function metric(text, series)
  local name, labels = series:match("^([%w_]+){(.*)}$")
  name = name or series
  local pattern = name:gsub("%p", "%%%0") .. '{policy="[^"]*"'
    .. (labels and ("," .. labels:gsub("%p", "%%%0")) or "") .. "}"
  local v = text:match("\n" .. pattern .. " ([%d.e+-]+)")
  return v and tonumber(v)
end

-- A manifest at root/name/ recording id.
local function record(root, name, id)
  os.execute("mkdir -p " .. q(root .. "/" .. name))
  local path = root .. "/" .. name .. "/" .. bh.manifest.NAME
  assert(bh.manifest.write(path, { service_name = name, current_daemon = id }))
  return path
end

-- Waits until pid has exited (a killed daemon's socket file stays).
local function wait_gone(pid)
  for _ = 1, 200 do
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then return end
    os.execute("sleep 0.02")
  end
  error("pid " .. pid .. " did not exit")
end

-- bhprobe-lua (or a copy of it, exe) serving its own identity on path
-- until killed; returns {pid, identity, kill}.
local SELF_SERVE = [[
local path, out = ...
local ep = { namespace_id = "spec", path = path }
local id = assert(bh.identity.current{ endpoint = ep })
local r = assert(bh.respond(ep, id))
local f = assert(io.open(out .. ".tmp", "w"))
f:write(bh.identity.to_json(id))
f:close()
assert(os.rename(out .. ".tmp", out))
r:wait()
]]
local function serve_self(dir, exe, path)
  local script, out = dir .. "/self-serve.lua", path .. ".self.json"
  H.spit(script, SELF_SERVE)
  local p = assert(io.popen(q(exe) .. " " .. q(script) .. " " .. q(path) .. " " .. q(out)
    .. " >/dev/null 2>" .. q(path .. ".err") .. " & echo $!"))
  local pid = math.tointeger(tonumber(p:read("l")))
  p:close()
  for _ = 1, 200 do
    if H.exists(out) then break end
    os.execute("sleep 0.05")
  end
  local text = assert(H.slurp(out), "did not start: " .. tostring(H.slurp(path .. ".err")))
  return { pid = pid, identity = assert(bh.identity.from_json(text)),
    kill = function(sig)
      os.execute("kill -" .. (sig or "KILL") .. " " .. pid .. " 2>/dev/null")
    end }
end

describe("verdicts of manifests.lua (design §1.11)", function()
  local dir, root, daemons
  before_each(function()
    dir = H.tmpdir()
    root = dir .. "/root"
    os.execute("mkdir -p " .. q(root))
    daemons = {}
  end)
  after_each(function()
    for _, d in ipairs(daemons) do d.kill("KILL") end
    H.rmdir(dir)
  end)
  local function daemon(name, opts)
    local d = H.start_daemon(bh, dir, name, opts)
    daemons[#daemons + 1] = d
    return d
  end

  it("calls a killed daemon's socket held by a squatter replaying its identity squatted, "
    .. "and never cleans it", function()
    local d = daemon("sq")
    local recorded = d.identity
    local path = record(root, "victim", recorded)
    d.kill("KILL")
    wait_gone(d.pid)
    local sq = daemon("squatter", { serve = recorded }) -- listens on sq.sock, answers as d
    local before = H.slurp(path)
    local code, by, err = policy(dir, q(root))
    assert.equal(2, code) -- CRITICAL
    local rec = by.victim
    assert.equal("squatted", rec.verdict)
    assert.equal("pid_not_found", rec.code)
    assert.equal(sq.pid, rec.peer.pid)
    assert.equal(tonumber(io.popen("id -u"):read("l")), rec.peer.uid)
    assert.matches("lua5%.4", rec.peer.exe)
    -- what it claimed: the recorded identity, replayed
    assert.equal(recorded.pid, rec.got.pid)
    assert.equal(recorded.exe_path, rec.got.exe_path)
    assert.is_nil(rec.successor)
    assert.matches("SQUATTED at " .. recorded.ipc_endpoint.path:gsub("%p", "%%%0")
      .. " held by pid " .. sq.pid, err)
    -- --apply leaves the record and the socket alone, and says so
    code, by, err = policy(dir, q(root) .. " --apply")
    assert.equal(2, code)
    assert.same({ skipped = "squatted" }, by.victim.action)
    assert.equal(before, H.slurp(path))
    assert.is_true(os.execute("test -S " .. q(recorded.ipc_endpoint.path)))
    assert.is_nil(err:find("cleared", 1, true))
  end)

  it("calls a socket held by another program answering its own identity squatted", function()
    local d = daemon("own")
    local recorded = d.identity
    record(root, "victim", recorded)
    d.kill("KILL")
    wait_gone(d.pid)
    os.remove(recorded.ipc_endpoint.path)
    -- bhprobe-lua is not the recorded program (lua5.4): no successor
    local other = serve_self(dir, BIN, recorded.ipc_endpoint.path)
    daemons[#daemons + 1] = other
    local code, by = policy(dir, q(root) .. " --apply")
    assert.equal(2, code)
    assert.equal("squatted", by.victim.verdict)
    assert.equal(other.pid, by.victim.peer.pid)
    assert.equal(BIN:match("[^/]+$"), by.victim.peer.exe:match("[^/]+$"))
    assert.same({ skipped = "squatted" }, by.victim.action)
  end)

  it("calls a record whose successor listens stale, clears it and leaves the socket", function()
    local d = daemon("svc")
    local recorded = d.identity
    local path = record(root, "svc", recorded)
    d.kill("KILL")
    wait_gone(d.pid)
    os.remove(d.endpoint.path .. ".json") -- what the successor writes when it listens
    local succ = daemon("svc") -- the same program, re-bound on the same path
    assert.are_not.equal(recorded.pid, succ.identity.pid)
    local code, by, err = policy(dir, q(root) .. " --apply")
    assert.equal(1, code) -- WARNING
    local rec = by.svc
    assert.equal("stale", rec.verdict)
    assert.equal("pid_not_found", rec.code)
    assert.equal(succ.pid, rec.successor)
    assert.is_true(rec.action.cleared)
    assert.is_false(rec.action.socket_removed)
    assert.matches("successor", rec.action.socket_left)
    assert.is_nil(assert(bh.manifest.read(path)).current_daemon)
    -- the successor still serves on its socket
    local h = assert(bh.run(function()
      return bh.probe(succ.endpoint, succ.identity, { timeout = 2 })
    end))
    h:close()
    assert.matches("cleared the stale record " .. path:gsub("%p", "%%%0"), err)
  end)

  it("calls a daemon whose executable was replaced on disk outdated, never stale", function()
    local exe = dir .. "/bhcopy"
    assert(H.system("cp " .. q(BIN) .. " " .. q(exe)))
    local d = serve_self(dir, exe, dir .. "/up.sock")
    daemons[#daemons + 1] = d
    local path = record(root, "up", d.identity)
    local code, by = policy(dir, q(root))
    assert.equal(0, code)
    assert.equal("verified", by.up.verdict)
    -- an upgrade: a new file renamed over the one the daemon runs
    assert(H.system("cp /bin/true " .. q(exe .. ".new") .. " && mv " .. q(exe .. ".new") .. " "
      .. q(exe)))
    local before = H.slurp(path)
    local err, met
    code, by, err, met = policy(dir, q(root) .. " --apply")
    assert.equal(1, code) -- WARNING
    assert.equal("outdated", by.up.verdict)
    assert.equal("exe_deleted", by.up.code)
    assert.matches("restart is due", by.up.message)
    assert.same({ skipped = "outdated" }, by.up.action)
    assert.equal(before, H.slurp(path))
    assert.is_true(os.execute("test -S " .. q(dir .. "/up.sock")))
    assert.matches("up/" .. bh.manifest.NAME:gsub("%p", "%%%0") .. ": outdated %(exe_deleted", err)
    assert.equal(1, metric(met, 'bhprobe_round_targets{verdict="outdated"}'))
  end)

  it("says a scan that found no record is UNKNOWN (3), naming what was scanned", function()
    os.execute("mkdir -p " .. q(root .. "/a/b"))
    record(root, "nodaemon", nil) -- a manifest naming no daemon: no record
    local code, by, err = policy(dir, q(root))
    assert.equal(3, code)
    assert.is_nil(next(by))
    assert.matches("no record found under " .. root:gsub("%p", "%%%0")
      .. " %(1 manifest%(s%) read, none names a daemon%): nothing was checked", err)
    code = policy(dir, q(root) .. " --allow-empty")
    assert.equal(0, code)
  end)

  it("says a missing registry is UNKNOWN (3)", function()
    local code, by, err = policy(dir, "", "RUNNING_PROCESS_MANIFEST_DIR=" .. q(dir .. "/nope"))
    assert.equal(3, code)
    assert.is_nil(next(by))
    assert.matches("the central registry " .. (dir .. "/nope"):gsub("%p", "%%%0")
      .. " does not exist", err)
  end)

  it("names a directory it cannot read and exits 3, probing the rest", function()
    local d = daemon("live")
    record(root, "live", d.identity)
    os.execute("mkdir -p " .. q(root .. "/closed/inner"))
    record(root .. "/closed", "inner", d.identity)
    local extra, bin, script, stage
    if is_root() then -- root reads everything: the policy runs as nobody
      -- what nobody runs, staged where it may (the checkout may be closed
      -- to it); everything else nobody's but the closed directory
      local staged
      stage, staged = H.stage { BIN, POLICY }
      bin, script = staged[1], staged[2]
      assert(H.system("chown -R nobody:nogroup " .. q(dir) .. " && chown root "
        .. q(root .. "/closed") .. " && chmod 0700 " .. q(root .. "/closed")))
      extra = "setpriv --reuid=nobody --regid=nogroup --clear-groups"
    else
      os.execute("chmod 0000 " .. q(root .. "/closed"))
    end
    local code, by, err = policy(dir, q(root), extra, bin, script)
    H.rmdir(stage)
    if not is_root() then os.execute("chmod 0755 " .. q(root .. "/closed")) end
    assert.equal(3, code, err)
    assert.truthy(by.live, err) -- the rest was probed
    assert.matches("cannot open directory " .. (root .. "/closed"):gsub("%p", "%%%0")
      .. ": Permission denied", err)
    assert.matches("1 unreadable", err)
  end)

  it("logs, counts and reports every reaction done", function()
    -- done: a stale record and its dead socket
    local d = daemon("gone")
    local path = record(root, "gone", d.identity)
    d.kill("KILL")
    wait_gone(d.pid)
    assert.is_true(os.execute("test -S " .. q(d.endpoint.path)))
    local code, by, err, met = policy(dir, q(root) .. " --apply")
    assert.equal(1, code)
    assert.is_true(by.gone.action.cleared)
    assert.is_true(by.gone.action.socket_removed)
    assert.matches("cleared the stale record " .. path:gsub("%p", "%%%0"), err)
    assert.matches("removed the stale socket " .. d.endpoint.path:gsub("%p", "%%%0"), err)
    assert.equal(1, metric(met, 'bhprobe_reactions_total{action="clear_record",result="done"}'))
    assert.equal(1, metric(met, 'bhprobe_reactions_total{action="remove_socket",result="done"}'))
    assert.equal(0, metric(met, 'bhprobe_reactions_total{action="clear_record",result="failed"}'))
  end)

  it("logs, counts and reports a failed reaction (a read-only bind mount) #root", function()
    local d = daemon("gone")
    d.kill("KILL")
    wait_gone(d.pid)
    local path2 = record(root, "ro", d.identity)
    local before = H.slurp(path2)
    local code, by, err, met = policy(dir, q(root) .. " --apply",
      "unshare -m sh -c 'mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" && "
      .. "exec \"$@\"' " .. q(root))
    assert.equal(1, code, err)
    assert.is_false(by.ro.action.cleared)
    assert.matches("^manifest_io: .*Read%-only file system", by.ro.action.error)
    assert.matches("could not clear the stale record " .. path2:gsub("%p", "%%%0")
      .. ": manifest_io: [^\n]*Read%-only file system", err)
    assert.equal(1, metric(met, 'bhprobe_reactions_total{action="clear_record",result="failed"}'))
    assert.equal(0, metric(met, 'bhprobe_reactions_total{action="clear_record",result="done"}'))
    assert.equal(before, H.slurp(path2))
  end)

  it("logs a verdict when it changes, a summary per round, and counts rounds that found "
    .. "nothing", function()
    local d = daemon("live")
    local path = record(root, "rec", { pid = 4194000, exe_path = d.identity.exe_path,
      exe_sha256 = d.identity.exe_sha256, boot_id = d.identity.boot_id,
      ipc_endpoint = { namespace_id = "spec", path = dir .. "/none.sock" },
      started_at_unix_ms = 1 })
    local svc = dir .. "/svc"
    os.execute("mkdir -p " .. q(svc))
    local cmd = string.format("cd %s && (%s --metrics m.prom --report r.jsonl %s %s --every 0.15 "
      .. ">out 2>err & echo $! >pid) >/dev/null 2>&1", q(svc), q(BIN), q(POLICY), q(root))
    os.execute(cmd)
    local pid = assert(H.slurp(svc .. "/pid")):match("%d+")
    local function rounds(n)
      for _ = 1, 400 do
        local m = H.slurp(svc .. "/m.prom") or ""
        local r = metric(m, "bhprobe_rounds_total")
        if r and r >= n then return m end
        os.execute("sleep 0.05")
      end
      error("fewer than " .. n .. " rounds: " .. tostring(H.slurp(svc .. "/err")))
    end
    local ok, e = pcall(function()
      rounds(4)
      -- the record becomes another daemon's: verified now
      assert(bh.manifest.write(path, { service_name = "rec", current_daemon = d.identity }))
      local m = rounds(8)
      -- and then nothing is left to check
      os.execute("rm -rf " .. q(root .. "/rec"))
      local r0 = metric(m, "bhprobe_rounds_total")
      m = rounds(r0 + 3)
      assert.is_true(metric(m, 'bhprobe_round_errors_total{reason="empty"}') >= 2)
      local t = metric(m, "bhprobe_last_round_success_timestamp_seconds")
      local m2 = rounds(metric(m, "bhprobe_rounds_total") + 2)
      assert.equal(t, metric(m2, "bhprobe_last_round_success_timestamp_seconds"))
    end)
    os.execute("kill -TERM " .. pid)
    os.execute("sleep 0.3")
    assert(ok, e)
    local err = H.slurp(svc .. "/err")
    local _, stale_lines = err:gsub(": stale %(pid_not_found", "")
    assert.equal(1, stale_lines, err) -- said once, not every round
    local _, verified_lines = err:gsub("rec/" .. bh.manifest.NAME:gsub("%p", "%%%0")
      .. ": verified", "")
    assert.equal(1, verified_lines, err)
    local _, summaries = err:gsub("round %d+: %d+ record%(s%) in [%d.]+ s: ", "")
    assert.is_true(summaries >= 10, err)
    assert.matches("round %d+: 1 record%(s%) in [%d.]+ s: 1 stale\n", err)
    assert.matches("round %d+: 1 record%(s%) in [%d.]+ s: 1 verified\n", err)
    assert.matches("no record found under " .. root:gsub("%p", "%%%0"), err)
  end)
end)
