-- etc/policies/check.lua as a monitoring plugin (design §3.4), with the
-- real binary against real daemons (our responders, processes of their
-- own): for every verdict the exact status line and exit status, a usage
-- error and an unreadable target as UNKNOWN with the status line first,
-- targets told apart by content, and the 1 s bound of the defaults
-- against a daemon that never answers and one that is stopped.
-- labels: policy probe respond manifest verdict program
-- ctest: serial (a case holds the whole check under 1 s of wall clock)
local H = require "helpers"
local P = require "prom"
local bh = require "bh"
local q = H.q
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local CHECK = P.ROOT .. "/etc/policies/check.lua"

-- Runs check.lua args; returns the exit status, stdout, stderr, seconds.
local function check(dir, args, exe)
  local t0 = bh.now()
  local _, _, code = os.execute(string.format("%s %s %s >%s 2>%s", q(exe or BIN), q(CHECK), args,
    q(dir .. "/out"), q(dir .. "/err")))
  return code, H.slurp(dir .. "/out"), H.slurp(dir .. "/err"), bh.now() - t0
end

-- The status line of out, with its parts: state, text, seconds.
local function status_line(out)
  local line = out:match("^([^\n]*)\n")
  local state, text, secs = line:match("^BHPROBE (%u+) %- (.-) | time=(%d+%.%d%d%d%d%d%d)s;;;0$")
  assert(state, "not a status line: " .. line)
  return state, text, tonumber(secs)
end

-- A manifest at root/name recording id (nil: none), with host when given.
local function record(root, name, id, host, file)
  os.execute("mkdir -p " .. q(root .. "/" .. name))
  local path = root .. "/" .. name .. "/" .. (file or bh.manifest.NAME)
  assert(bh.manifest.write(path, { service_name = name, current_daemon = id, host = host }))
  return path
end

local function wait_gone(pid)
  for _ = 1, 200 do
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then return end
    os.execute("sleep 0.02")
  end
  error("pid " .. pid .. " did not exit")
end

describe("check.lua", function()
  local dir, root, daemons
  setup(function()
    dir = H.tmpdir()
    root = dir .. "/h"
    P.daemons(dir, { h = { { service = "web" }, { service = "evil", kind = "impostor" },
      { service = "gone", kind = "stale" }, { service = "mute", kind = "silent" } } })
    daemons = {}
  end)
  teardown(function()
    for _, d in ipairs(daemons) do d.kill("KILL") end
    P.cleanup()
    H.rmdir(dir)
  end)
  local function daemon(name, opts)
    local d = H.start_daemon(bh, dir, name, opts)
    daemons[#daemons + 1] = d
    return d
  end
  local function manifest(name) return root .. "/" .. name .. "/" .. bh.manifest.NAME end
  local fixture_pid = function()
    return math.tointeger(tonumber(H.slurp(dir .. "/fixture/pid"):match("%d+")))
  end

  it("says OK for a verified daemon, exit 0", function()
    local code, out = check(dir, q(manifest("web")))
    assert.equal(0, code)
    local state, text, secs = status_line(out)
    assert.equal("OK", state)
    assert.equal("verified web, pid " .. fixture_pid(), text)
    assert.is_true(secs > 0 and secs < 0.5)
    assert.equal(out:match("^[^\n]*\n"), out) -- nothing more without --verbose
  end)

  it("says CRITICAL for an impostor, exit 2", function()
    local code, out = check(dir, q(manifest("evil")))
    assert.equal(2, code)
    local state, text = status_line(out)
    assert.equal("CRITICAL", state)
    assert.matches("^impostor evil: identity_mismatch %(identity mismatch on boot_id", text)
    assert.matches("\nidentity mismatch on boot_id", out) -- the whole reason after it
  end)

  it("says WARNING for a stale record, exit 1", function()
    local code, out = check(dir, q(manifest("gone")))
    assert.equal(1, code)
    local state, text = status_line(out)
    assert.equal("WARNING", state)
    assert.equal("stale gone: pid_not_found (pid 4194000 is not a running process "
      .. "(pidfd_open: No such process))", text)
  end)

  it("says WARNING for a record that names no daemon (cleared), exit 1", function()
    local path = record(dir .. "/extra", "cleared", nil)
    local code, out = check(dir, q(path))
    assert.equal(1, code)
    local state, text = status_line(out)
    assert.equal("WARNING", state)
    assert.matches("^stale cleared: no_daemon %(the record names no daemon", text)
  end)

  it("says WARNING for an unreachable daemon (alive, its socket gone), exit 1", function()
    local d = daemon("lost")
    local path = record(dir .. "/extra", "lost", d.identity)
    os.remove(d.endpoint.path)
    local code, out = check(dir, q(path))
    assert.equal(1, code)
    local state, text = status_line(out)
    assert.equal("WARNING", state)
    assert.matches("^unreachable lost: connect %(", text)
  end)

  it("says CRITICAL for a squatted endpoint, exit 2", function()
    local d = daemon("sq")
    local path = record(dir .. "/extra", "sq", d.identity)
    d.kill("KILL")
    wait_gone(d.pid)
    daemon("squatter", { serve = d.identity })
    local code, out = check(dir, q(path))
    assert.equal(2, code)
    local state, text = status_line(out)
    assert.equal("CRITICAL", state)
    assert.matches("^squatted sq: pid_not_found %(pid " .. d.pid .. " is not a running process",
      text)
  end)

  it("says WARNING for an outdated daemon (its executable replaced), exit 1", function()
    local exe = dir .. "/bhcopy"
    assert(H.system("cp " .. q(BIN) .. " " .. q(exe)))
    local script = dir .. "/up.lua"
    H.spit(script, [[
local ep = { namespace_id = "spec", path = ... }
local id = assert(bh.identity.current{ endpoint = ep })
local r = assert(bh.respond(ep, id))
assert(bh.manifest.write(select(2, ...), { service_name = "up", current_daemon = id }))
r:wait()]])
    os.execute("mkdir -p " .. q(dir .. "/extra/up"))
    local path = dir .. "/extra/up/" .. bh.manifest.NAME
    local p = P.background(dir .. "/extra/up", q(exe) .. " " .. q(script) .. " "
      .. q(dir .. "/up.sock") .. " " .. q(path))
    daemons[#daemons + 1] = { kill = function() p.stop() end }
    P.wait(10, 0.05, function() return H.exists(path) end, p.log)
    assert.equal(0, (check(dir, q(path))))
    assert(H.system("cp /bin/true " .. q(exe .. ".new") .. " && mv " .. q(exe .. ".new") .. " "
      .. q(exe)))
    local code, out = check(dir, q(path))
    assert.equal(1, code)
    local state, text = status_line(out)
    assert.equal("WARNING", state)
    assert.matches("^outdated up: exe_deleted %(", text)
  end)

  it("says CRITICAL for an invalid record, exit 2", function()
    local path = record(dir .. "/extra", "bad", nil)
    local bytes = H.slurp(path)
    H.spit(path, bytes:sub(1, -2) .. string.char((bytes:byte(-1) + 1) % 256))
    local code, out = check(dir, q(path))
    assert.equal(2, code)
    local state, text = status_line(out)
    assert.equal("CRITICAL", state)
    assert.matches("^invalid .-: manifest_corrupt %(", text)
  end)

  it("says UNKNOWN for another machine's record: nothing was checked, exit 3", function()
    local d = daemon("far")
    local path = record(dir .. "/extra", "far", d.identity,
      { hostname = "elsewhere", machine_id = ("f"):rep(32) })
    local code, out = check(dir, q(path))
    assert.equal(3, code)
    local state, text = status_line(out)
    assert.equal("UNKNOWN", state)
    assert.matches("^foreign far: foreign_host %(", text)
  end)

  it("tells an identity JSON and a registry file from a manifest by content", function()
    local d = daemon("byjson")
    -- an identity JSON under a manifest's name, a manifest under a .json name
    local json_path = dir .. "/extra/id.pb"
    os.execute("mkdir -p " .. q(dir .. "/extra"))
    H.spit(json_path, "\n  " .. bh.identity.to_json(d.identity))
    local code, out = check(dir, "--verbose " .. q(json_path))
    assert.equal(0, code, out)
    local state, text = status_line(out)
    assert.equal("OK", state)
    assert.equal("verified " .. d.endpoint.path .. ", pid " .. d.pid, text)
    assert.matches("\ntarget     .-id%.pb %(identity JSON%)\n", out)
    local as_json = dir .. "/extra/m.json"
    assert(H.system("cp " .. q(manifest("web")) .. " " .. q(as_json)))
    code, out = check(dir, "--verbose " .. q(as_json))
    assert.equal(0, code, out)
    assert.matches("%(manifest%)\n", out)
    local reg = record(dir .. "/reg", "svc", d.identity, nil, "svc-1.2.pb")
    code, out = check(dir, "--verbose " .. q(reg))
    assert.equal(0, code, out)
    assert.equal("verified svc, pid " .. d.pid, (select(2, status_line(out))))
    assert.matches("%(registry file%)\n", out)
    -- a JSON that is not an identity: an invalid record
    H.spit(dir .. "/extra/bad.json", '{"pid": "x"}')
    code, out = check(dir, q(dir .. "/extra/bad.json"))
    assert.equal(2, code)
    assert.matches("^invalid ", (select(2, status_line(out))))
  end)

  it("--verbose shows the steps with their timings after the status line", function()
    local code, out = check(dir, "--verbose --attempts 2 --timeout 200ms " .. q(manifest("mute")))
    assert.equal(1, code)
    local state, text = status_line(out)
    assert.equal("WARNING", state)
    assert.matches("^unreachable mute: timeout %(", text)
    assert.matches("\nsteps:\n +%d+%.%d+ ms  read the record: ok %(owner uid %d+, mode 0%d+%)\n"
      .. " +%d+%.%d+ ms  check the host: this machine\n"
      .. " +%d+%.%d+ ms  probe attempt 1: timeout %(verify_pid %d+%.%d+ ms, connect %d+%.%d+ ms, "
      .. "exchange %d+%.%d+ ms%)\n"
      .. " +%d+%.%d+ ms  probe attempt 2: timeout", out)
    assert.matches("\nverdict    unreachable\ncode       timeout\n", out)
  end)

  it("says a usage error as UNKNOWN, its status line first, exit 3", function()
    for _, c in ipairs({
      { "--bogus " .. q(manifest("web")), "usage: unknown option '--bogus'" },
      { "", "usage: missing TARGET" },
      { "a b", "usage: one TARGET at a time" },
      { "--timeout 0 x", "usage: --timeout 0: must be in (0, 60] seconds" },
      { "--attempts 11 x", "usage: --attempts 11: must be in [1, 10]" },
      { "--listen 1 x", "usage: '--listen' is an option of bhprobe-lua, not of check.lua" },
    }) do
      local code, out, err = check(dir, c[1])
      assert.equal(3, code, c[1])
      local state, text = status_line(out)
      assert.equal("UNKNOWN", state)
      assert.equal(c[2], text:sub(1, #c[2]), c[1])
      assert.matches("\nusage: bhprobe%-lua ", out) -- the usage after it, on stdout
      assert.equal("", err)
    end
    local code, out = check(dir, "--help")
    assert.equal(0, code)
    assert.matches("^usage: ", out)
  end)

  it("says a target it cannot read as UNKNOWN, exit 3", function()
    for _, target in ipairs({ dir .. "/nope.pb", dir }) do
      local code, out = check(dir, q(target))
      assert.equal(3, code, target)
      local state, text = status_line(out)
      assert.equal("UNKNOWN", state)
      assert.matches("^unreadable " .. target:gsub("%p", "%%%0"), text)
    end
  end)

  it("answers within 1 s with its defaults, a daemon silent or stopped", function()
    local code, out, _, secs = check(dir, q(manifest("mute")))
    assert.equal(1, code)
    assert.matches("^unreachable mute: timeout", (select(2, status_line(out))))
    assert.is_true(secs < 1, "took " .. secs .. " s")
    local d = daemon("stopped")
    local path = record(dir .. "/extra", "stopped", d.identity)
    d.kill("STOP")
    code, out, _, secs = check(dir, q(path))
    d.kill("CONT")
    assert.equal(1, code)
    assert.matches("^unreachable stopped: timeout", (select(2, status_line(out))))
    assert.is_true(secs < 1, "took " .. secs .. " s")
  end)
end)
