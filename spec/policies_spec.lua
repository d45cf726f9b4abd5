-- The example policies in etc/policies/, run with the real bhprobe-lua
-- ($BH_BIN): demo.lua on its own, check.lua and watch.lua against a live
-- responder served by a second bhprobe-lua process and against a stale
-- record.
-- labels: policy probe respond program

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local ROOT = assert(io.popen("pwd")):read("l") -- ctest runs specs from the repo root
local POLICIES = ROOT .. "/etc/policies/"

local H = require "helpers"
local q, slurp, spit = H.q, H.slurp, H.spit
local function sh(cmd) return os.execute(cmd) end
local function sleep(s) sh("sleep " .. s) end

local tmp

-- Runs bhprobe-lua to completion (after env assignments `envs`, if any);
-- returns exit status, stdout, stderr.
local function run(args, envs)
  local _, how, code = sh(string.format("cd %s && env %s %s %s </dev/null >out 2>err", q(tmp),
    envs or "", q(BIN), args))
  assert.are.equal("exit", how)
  return code, slurp(tmp .. "/out"), slurp(tmp .. "/err")
end

-- Starts bhprobe-lua in the background with its output in NAME.out and
-- NAME.err; returns wait_for(pattern), kill(sig) and status().
local function start(name, args)
  local f = tmp .. "/" .. name
  sh(string.format("cd %s && (env --default-signal=INT,TERM %s %s </dev/null >%s.out 2>%s.err & "
    .. "echo $! >%s.pid; wait $!; echo $? >%s.rc) >/dev/null 2>&1 &",
    q(tmp), q(BIN), args, q(f), q(f), q(f), q(f)))
  local p = {}
  local function poll(file, pattern, what)
    for _ = 1, 400 do
      local s = slurp(file) or ""
      local m = s:match(pattern)
      if m then return m, s end
      sleep(0.05)
    end
    error(name .. ": timed out waiting for " .. what .. "; stderr: " .. (slurp(f .. ".err") or ""))
  end
  function p.wait_for(pattern)
    local _, s = poll(f .. ".out", pattern, pattern)
    return s
  end
  function p.kill(sig) sh("kill -" .. sig .. " " .. poll(f .. ".pid", "%d+", "pid")) end
  function p.status() return tonumber((poll(f .. ".rc", "%d+", "exit"))) end
  return p
end

-- The script of the daemon simulator: serves its own identity and writes
-- it as JSON to arg 2, then waits to be stopped.
local SERVE = [[
local sock, json = ...
local ep = { namespace_id = "policies-spec", path = sock }
local id = bh.identity.current{ endpoint = ep }
local r = bh.respond(ep, id)
local f = assert(io.open(json, "w"))
f:write(bh.identity.to_json(id))
f:close()
print("ready")
io.stdout:flush()
r:wait()
]]

-- Writes a stale record: the live daemon's identity with a dead pid.
local function write_stale(live_json, stale_json)
  local p = assert(io.popen("sh -c 'echo $$'"))
  local dead = p:read("l")
  p:close()
  local text = assert(slurp(live_json))
  spit(stale_json, (text:gsub('"pid"%s*:%s*%d+', '"pid":' .. dead)))
end

before_each(function()
  tmp = assert(io.popen("mktemp -d /tmp/bhp.XXXXXX")):read("l")
end)

after_each(function()
  sh("rm -rf " .. q(tmp))
end)

describe("etc/policies", function()
  it("demo.lua prints the four expected verdicts and exits 0", function()
    local rc, out, err = run(q(POLICIES .. "demo.lua"), "TMPDIR=" .. q(tmp))
    assert.are.equal("", err)
    assert.are.equal(0, rc)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(4, #lines)
    assert.matches("^verified%s+self%s+pid %d+ in [%d.]+ ms$", lines[1])
    assert.matches("^REJECTED%s+squatter%s+identity_mismatch %(exe_path%): ", lines[2])
    assert.matches("^REJECTED%s+stale%s+pid_not_found: ", lines[3])
    assert.matches("^REJECTED%s+replaced%s+exe_sha256_mismatch: ", lines[4])
    assert.is_nil(out:find("UNEXPECTED", 1, true))
    -- it cleaned up its temp dir (made under $TMPDIR, here the test's dir)
    assert.are.equal("", assert(io.popen("ls " .. q(tmp) .. " | grep bhdemo")):read("a"))
  end)

  describe("with a live daemon", function()
    local daemon, sock, live, stale

    before_each(function()
      sock, live, stale = tmp .. "/d.sock", tmp .. "/live.json", tmp .. "/stale.json"
      spit(tmp .. "/serve.lua", SERVE)
      daemon = start("daemon", "serve.lua " .. q(sock) .. " " .. q(live))
      daemon.wait_for("ready")
      write_stale(live, stale)
    end)

    after_each(function()
      daemon.kill("TERM")
      assert.are.equal(143, daemon.status())
      assert.is_falsy(sh("test -e " .. q(sock)))
    end)

    it("check.lua verifies it (exit 0) and says a stale record (exit 1)", function()
      local rc, out, err = run(q(POLICIES .. "check.lua") .. " live.json")
      assert.are.equal("", err)
      assert.are.equal(0, rc)
      local where = sock:gsub("%p", "%%%0")
      assert.matches("^BHPROBE OK %- verified " .. where .. ", pid %d+ | time=[%d.]+s;;;0\n$",
        out)
      rc, out = run(q(POLICIES .. "check.lua") .. " --timeout 2 stale.json")
      assert.are.equal(1, rc)
      assert.matches("^BHPROBE WARNING %- stale " .. where .. ": pid_not_found %(", out)
    end)

    it("watch.lua reports each state change until SIGTERM", function()
      local w = start("watch", q(POLICIES .. "watch.lua")
        .. " --every 0.1 --failure 2 live.json stale.json")
      w.wait_for("unhealthy [^\n]*stale%.json")
      w.wait_for(" healthy [^\n]*live%.json")
      sleep(0.5) -- a few more periods: no state changes, so no new lines
      w.kill("TERM")
      assert.are.equal(143, w.status())
      local out = slurp(tmp .. "/watch.out")
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.are.equal(3, #lines, out)
      assert.matches("^watching 2 file%(s%) every 0%.1 s %(success 1, failure 2%)$", lines[1])
      assert.matches("Z healthy%s+live%.json %(pid %d+, [%d.]+ ms%)", out)
      assert.matches("Z unhealthy%s+stale%.json %(pid_not_found: ", out)
    end)
  end)

  it("check.lua exits 3 (UNKNOWN) for an unreadable file and without an argument", function()
    local rc, out = run(q(POLICIES .. "check.lua") .. " nosuch.json")
    assert.are.equal(3, rc)
    assert.matches("^BHPROBE UNKNOWN %- unreadable nosuch%.json: No such file", out)
    local err
    rc, out, err = run(q(POLICIES .. "check.lua"))
    assert.are.equal(3, rc)
    assert.are.equal("", err)
    assert.matches("^BHPROBE UNKNOWN %- usage: missing TARGET | time=[%d.]+s;;;0\n"
      .. "usage: bhprobe%-lua ", out)
  end)

  -- Every shipped policy parses and checks all its options (bh.cli)
  -- before it does anything: --help and -h on stdout with exit 0, a bad
  -- option exit 3 with the reason and the usage on stderr.
  describe("options, checked before anything runs", function()
    local ALL = { "manifests.lua", "watch.lua", "demo.lua", "check.lua" }

    it("--help and -h print the usage on stdout and exit 0", function()
      for _, p in ipairs(ALL) do
        for _, flag in ipairs { "--help", "-h" } do
          local rc, out, err = run(q(POLICIES .. p) .. " " .. flag)
          assert.are.equal(0, rc, p .. " " .. flag)
          assert.are.equal("", err, p)
          assert.matches("^usage: bhprobe%-lua [^\n]*" .. p:gsub("%.", "%%.") .. "", out, p)
          assert.matches("\n  %-%-help ", out, p)
        end
      end
    end)

    it("a bad option is exit 3 with the reason and the usage on stderr", function()
      for _, p in ipairs(ALL) do
        local rc, out, err = run(q(POLICIES .. p) .. " --bogus x")
        assert.are.equal(3, rc, p)
        if p == "check.lua" then -- a monitoring plugin: its status line, on stdout
          assert.are.equal("", err, p)
          assert.matches("^BHPROBE UNKNOWN %- usage: unknown option '%-%-bogus' | [^\n]*\n"
            .. "usage: ", out, p)
        else
          assert.are.equal("", out, p)
          assert.matches("^" .. p:gsub("%.", "%%.") .. ": unknown option '%-%-bogus'\nusage: ",
            err, p)
        end
      end
      local cases = {
        { "manifests.lua --timeout 100000 --every 1 /nonexistent",
          "%-%-timeout 100000: must be in" },
        { "manifests.lua --every", "%-%-every needs a value" },
        { "manifests.lua --every 1.5m", "%-%-every 1%.5m: expected seconds" },
        { "manifests.lua --every 1s1m", "largest first" },
        { "manifests.lua --attempts 0", "%-%-attempts 0: must be in %[1, 100%]" },
        { "manifests.lua --max-depth 2.5", "%-%-max%-depth 2%.5: expected an integer" },
        { "manifests.lua --apply=yes", "%-%-apply takes no value" },
        { "watch.lua --every -1 x.json", "%-%-every %-1: must be in %(0, 86400%]" },
        { "watch.lua --success 0 x.json", "%-%-success 0: must be in" },
        { "demo.lua extra", "unexpected argument 'extra'" },
      }
      for _, c in ipairs(cases) do
        local rc, out, err = run(q(POLICIES) .. c[1])
        assert.are.equal(3, rc, c[1])
        assert.are.equal("", out, c[1])
        assert.matches(c[2], err, 1)
      end
    end)

    it("takes durations in seconds or the Prometheus forms", function()
      local cli = { "0.5", "30", "500ms", "30s", "1m", "1h", "1h30m", "2d", "1w" }
      local want = { 0.5, 30, 0.5, 30, 60, 3600, 5400, 172800, 604800 }
      spit(tmp .. "/d.lua", [[
        for _, a in ipairs{...} do print(assert(bh.cli.duration(a))) end
        for _, a in ipairs{ "", "1.5m", "m", "1x", "1s1m", "-1s", "1ms1s" } do
          assert(bh.cli.duration(a) == nil, a)
        end]])
      local rc, out, err = run("d.lua " .. table.concat(cli, " "))
      assert.are.equal(0, rc, err)
      local i = 0
      for line in out:gmatch("[^\n]+") do
        i = i + 1
        assert.are.equal(want[i], tonumber(line), cli[i])
      end
      assert.are.equal(#want, i)
      -- and a policy takes them: a round every minute, checked and run once
      local rc2, _, err2 = run(q(POLICIES .. "manifests.lua") .. " --every 1m --timeout 500ms "
        .. "--allow-empty --help")
      assert.are.equal(0, rc2, err2)
    end)

    it("says where an option of the other side belongs", function()
      -- a host option after the script: the policy says to put it before
      local rc, out, err = run(q(POLICIES .. "manifests.lua") .. " /tmp --report r.jsonl")
      assert.are.equal(3, rc)
      assert.are.equal("", out)
      assert.matches("'%-%-report' is an option of bhprobe%-lua, not of manifests%.lua: put "
        .. "it before the script: bhprobe%-lua %-%-report FILE manifests%.lua", err)
      assert.is_nil(io.open(tmp .. "/r.jsonl"))
      rc, out, err = run(q(POLICIES .. "watch.lua") .. " --listen 127.0.0.1:0 x.json")
      assert.are.equal(3, rc)
      assert.are.equal("", out)
      assert.matches("'%-%-listen' is an option of bhprobe%-lua", err)
      -- a policy option before the script: the host says to put it after
      rc, out, err = run("--every 1 " .. q(POLICIES .. "manifests.lua") .. " /tmp")
      assert.are.equal(2, rc)
      assert.are.equal("", out)
      assert.matches("unrecognized option '%-%-every'; if it is the policy's, put it after "
        .. "the script", err)
    end)
  end)
end)
