-- What a local user can put in front of the service (docs/hostile-peers.md,
-- "A local user against the service"): user nobody writes a record, owns a
-- directory on a path root uses, or plants files in root's $HOME; root
-- runs the real bhprobe-lua. Each test reproduces one attack and asserts
-- the figure of the table; each failed on the code before its fix.
-- External tools run with `env -u LD_PRELOAD` (the ASan runtime preloaded
-- for lua5.4 in the sanitized tree is not for them).
-- labels: report fsutil manifest http policy program
local H = require "helpers"
local bh = require "bh"
local R = require("hostrun")()

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local TOOL = assert(os.getenv("BH_BUILD_DIR"), "BH_BUILD_DIR must be set") .. "/spec/race_tool"
local ROOT = assert(io.popen("pwd")):read("l") -- the source tree (ctest runs specs there)
local SANITIZED = os.getenv("BH_SANITIZE") == "ON"
local q, slurp, spit = H.q, H.slurp, H.spit

local function sh(cmd)
  local ok, _, code = H.system(cmd)
  return ok, code
end

local function sleep(s) os.execute("sleep " .. s) end

-- Runs a shell command as nobody.
local function as_nobody(cmd)
  return sh("env -u LD_PRELOAD setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c "
    .. q(cmd))
end

local mode_of, poll_file, start, run = R.mode_of, R.poll_file, R.start, R.run

local tmp

-- Waits (up to 60 s) until tmp/name holds n lines.
local function wait_lines(name, n)
  for _ = 1, 1200 do
    local _, lines = (slurp(tmp .. "/" .. name) or ""):gsub("\n", "")
    if lines >= n then return end
    sleep(0.05)
  end
  error("timed out waiting for " .. n .. " lines in " .. name)
end

-- The peak resident set of process pid in KiB (VmHWM).
local function peak_kib(pid)
  local status = slurp("/proc/" .. pid .. "/status") or ""
  return tonumber(status:match("VmHWM:%s*(%d+) kB"))
end

before_each(function() tmp = R.enter() end)
after_each(R.leave)

describe("strings from records are cut where they are copied", function()
  -- A record whose process is gone: stale, reported with its service name.
  local function record(dir, service, namespace)
    local id = assert(bh.identity.current { endpoint = { namespace_id = namespace,
      path = dir .. ".sock" } })
    id.pid = 4194001
    sh("mkdir -p " .. q(dir))
    assert(bh.manifest.write(dir .. "/.running-process-manifest.pb",
      { service_name = service, current_daemon = id }))
  end

  it("service names of 15 MB and 1 MB: report, metrics and round memory stay small", function()
    local root = tmp .. "/root"
    -- the attack as found (a manifest of 15 MB), four of the largest a
    -- manifest may now hold (1 MiB), and 64 KiB strings in a small one
    record(root .. "/huge", string.rep("h", 15000000), "ns")
    for i = 1, 4 do record(root .. "/big" .. i, string.rep("s", 1000000), "ns") end
    record(root .. "/wide", string.rep("w", 65536), string.rep("n", 65536))
    local p = start("--report r.jsonl --metrics m.prom " .. q(ROOT .. "/etc/policies/manifests.lua")
      .. " " .. q(root) .. " --every 60")
    wait_lines("r.jsonl", 6) -- the first round's
    poll_file("m.prom", '()bhprobe_rounds_total{policy="manifests"} 1')
    local kib = peak_kib(p.pid())
    p.kill("TERM")
    assert.equal(143, p.status())
    local report, metrics = slurp(tmp .. "/r.jsonl"), slurp(tmp .. "/m.prom")
    print(string.format("\n  round peak RSS %.1f MiB, report %d bytes, metrics %d bytes",
      kib / 1024, #report, #metrics))
    for line in report:gmatch("[^\n]+") do
      assert.is_true(#line <= 16384, "a report line of " .. #line .. " bytes")
    end
    local _, big = report:gsub('"service":"s+%.%.%.%[cut, 1000000 bytes in all%]"', "")
    assert.equal(4, big)
    assert.matches('"service":"w+%.%.%.%[cut, 65536 bytes in all%]"', report)
    assert.matches('"namespace_id":"n+%.%.%.%[cut, 65536 bytes in all%]"', report)
    assert.is_true(#metrics <= 1024 * 1024, "metrics file of " .. #metrics .. " bytes")
    assert.matches('service="w+%.%.%.%[cut, 65536 bytes in all%]",namespace="n+%.%.%.%[cut',
      metrics)
    for value in metrics:gmatch('="([^"]*)"') do
      assert.is_true(#value <= 256, "a label value of " .. #value .. " bytes")
    end
    assert.is_true(kib <= (SANITIZED and 128 or 64) * 1024,
      string.format("round peak RSS %.1f MiB", kib / 1024))
  end)

  it("a 15 MB string in a log message is one cut line, and so is a message of newlines", function()
    local code, _, err = run("-e " .. q([[
      bh.log.error("service " .. string.rep("s", 15000000) .. " is gone")
      bh.log.warn(string.rep("\n", 15000000))]]))
    assert.equal(0, code)
    print(string.format("\n  stderr %d bytes", #err))
    assert.is_true(#err <= 2 * 16384 + 512, "stderr of " .. #err .. " bytes")
    assert.matches("^bhprobe%-lua: service s+%.%.%.%[cut, 15000016 bytes in all%]\n", err)
    for line in err:gmatch("[^\n]+") do assert.is_true(#line <= 4096 + 64) end
  end)
end)

describe("a SIGHUP before the signal handlers exist", function()
  -- The shim raises SIGHUP in the host when main makes the Lua state, or
  -- right before the first handler is installed (logrotate's HUP of a
  -- service that is just starting).
  local shim = os.getenv("BH_BUILD_DIR") .. "/spec/libhup_at_start.so"
  for _, where in ipairs { "newstate", "install" } do
    it("is ignored: at " .. where .. " the host lives on and runs the script", function()
      local preload = ((os.getenv("LD_PRELOAD") or "") .. " " .. shim):gsub("^ ", "")
      local code, out = run("-e " .. q("print('alive')"),
        "LD_PRELOAD=" .. q(preload) .. " BH_HUP_AT=" .. where)
      assert.equal(0, code) -- 129 when SIGHUP ended it
      assert.equal("alive\n", out)
    end)
  end
end)

describe("--listen takes only literal addresses", function()
  -- inet_aton's shorthands: "0" is 0.0.0.0 (every interface), "127.1"
  -- is 127.0.0.1, "0x7f.1" too; an unbracketed IPv6 address is ambiguous.
  for _, spec in ipairs { "0:0", "0.0:0", "127.1:0", "0x7f.0.0.1:0", "1:0", " 127.0.0.1:0",
                          "::1:0", "[127.0.0.1]:0", "127.0.0.1: 0", "127.0.0.1:+0" } do
    it("refuses '" .. spec .. "' (exit 2, naming it)", function()
      local code, out, err = run("--listen " .. q(spec) .. " -e " .. q("print('ran')"))
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("%-%-listen: listen address '" .. spec:gsub("%p", "%%%0") .. "'", err)
    end)
  end

  local loopback = "^127%.0%.0%.1:%d+$"
  for spec, bound in pairs { ["0"] = loopback, ["localhost:0"] = loopback,
                             ["127.0.0.1:0"] = loopback, ["[::1]:0"] = "^%[::1%]:%d+$" } do
    it("binds '" .. spec .. "'", function()
      local code, out, err = run("--listen " .. q(spec) .. " -e "
        .. q("print(bh.options.listen_address)"))
      if code ~= 0 and spec == "[::1]:0" and err:match("Cannot assign") then
        pending("no IPv6 loopback here")
        return
      end
      assert.equal(0, code, err)
      assert.matches(bound, out:match("[^\n]+"))
    end)
  end
end)

describe("the --report file's directory swapped for a symlink", function()
  it("is never followed: the reopen after SIGHUP refuses it, creates nothing #root", function()
    -- tmp/home is nobody's; root reports into tmp/home/logs/bh.jsonl.
    sh("mkdir -p " .. q(tmp .. "/home/logs") .. " " .. q(tmp .. "/rootonly")
      .. " && chmod 700 " .. q(tmp .. "/rootonly") .. " && chown nobody " .. q(tmp .. "/home"))
    spit(tmp .. "/reporter.lua", [[
      local n = 0
      while not io.open("stop") do
        n = n + 1
        local ok, err = bh.report{ n = n }
        if not ok then io.stderr:write("report: ", tostring(err), "\n") end
        bh.sleep(0.02)
      end]])
    local p = start("--report home/logs/bh.jsonl reporter.lua")
    poll_file("home/logs/bh.jsonl", '()"n":3')
    assert.is_true(as_nobody("cd " .. q(tmp .. "/home") .. " && mv logs logs.old && ln -s "
      .. q(tmp .. "/rootonly") .. " logs"))
    sleep(0.2)
    p.kill("HUP")
    sleep(0.5)
    spit(tmp .. "/stop", "")
    assert.equal(0, p.status())
    assert.is_false(H.exists(tmp .. "/rootonly/bh.jsonl"), "a report file was made in rootonly")
    assert.matches('"n":4', slurp(tmp .. "/home/logs.old/bh.jsonl")) -- kept on until the HUP
    assert.matches('home/logs/bh.jsonl: its directory component "logs" is a symbolic link',
      slurp(tmp .. "/err"))
  end)
end)

describe("bh.respond in a directory another user can write", function()
  it("never changes the mode of a file a symlink swapped in for it points at #root", function()
    local rounds = tonumber(os.getenv("BH_RESPOND_RACE_ROUNDS")) or 1500
    -- A deep path (the lookup after bind was slower, the race easier) ending
    -- in a directory nobody owns; the victim: a root file, 0600.
    local deep = tmp .. "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x"
    sh("mkdir -p " .. q(deep) .. " && chown nobody " .. q(deep) .. " && cp " .. q(TOOL) .. " "
      .. q(tmp))
    local victim = tmp .. "/victim"
    spit(victim, "root's\n")
    sh("chmod 600 " .. q(victim))
    -- nobody swaps a symlink to the victim in for the socket whenever
    -- there is one, as fast as it can
    sh(string.format("cd %s && env -u LD_PRELOAD setpriv --reuid=nobody --regid=nogroup "
      .. "--clear-groups %s plant 300 s.sock %s >%s 2>&1 & echo $! >%s", q(deep),
      q(tmp .. "/race_tool"), q(victim), q(tmp .. "/race.out"), q(tmp .. "/race.pid")))
    local ok, out, err = H.lua(tmp, string.format([[
      local bh = require "bh"
      local sock, rounds = %q, %d
      local ep = { namespace_id = "race", path = sock }
      local refused = 0
      bh.run(function()
        local id = assert(bh.identity.current { endpoint = ep })
        for _ = 1, rounds do
          local r = bh.respond(ep, id, { mode = 438 }) -- 0666
          if r then r:close() else refused = refused + 1 end
          os.remove(sock)
        end
      end)
      print("refused " .. refused)]], deep .. "/s.sock", rounds))
    sh("kill " .. assert(slurp(tmp .. "/race.pid")):match("%d+"))
    assert.is_true(ok, err)
    -- refused: rounds where the attacker's symlink was found right after bind
    print(string.format("\n  %d rounds, %s", rounds, out:match("refused %d+")))
    assert.equal("600", mode_of(victim))
    assert.equal("root's\n", slurp(victim))
  end)
end)

-- Runs `bhprobe-lua -i` on a pseudo-terminal (script(1)) with HOME=home,
-- typing lines; returns the terminal's output (bounded by 20 s).
local function prompt_session(home, lines)
  local feed = tmp .. "/feed"
  spit(feed, table.concat(lines, "\n") .. "\n")
  local cmd = string.format("HOME=%s %s -i", q(home), q(BIN))
  sh(string.format("cd %s && umask 000 && (cat %s; sleep 1) | "
    .. "env -u LD_PRELOAD timeout 20 script -eqfc %s "
    .. "/dev/null >tty.out 2>&1; echo $? >tty.rc", q(tmp), q(feed), q(cmd)))
  return slurp(tmp .. "/tty.out") or "", tonumber(slurp(tmp .. "/tty.rc"))
end

describe("the -i prompt's history file in a $HOME another user controls", function()
  local home, victim
  before_each(function()
    home, victim = tmp .. "/home", tmp .. "/victim"
    sh("mkdir -p " .. q(home))
    spit(victim, "root's\n")
    sh("chmod 600 " .. q(victim))
  end)

  local function check_victim()
    assert.equal("root's\n", slurp(victim))
    assert.equal("600", mode_of(victim))
    assert.equal("0", io.popen("stat -c %u " .. q(victim)):read("l"))
  end

  it("a symlink to a root file: not followed, a warning, no history #root", function()
    sh("chown nobody " .. q(home))
    assert.is_true(as_nobody("ln -s " .. q(victim) .. " " .. q(home .. "/.bhprobe_history")))
    local out, rc = prompt_session(home, { "print('typed ' .. 6 * 7)" })
    assert.equal(0, rc, out)
    assert.matches("typed 42", out)
    check_victim()
    assert.matches("warning: history " .. home:gsub("%p", "%%%0")
      .. "/%.bhprobe_history is a symbolic link, not a regular file: no history is kept", out)
  end)

  it("a file nobody owns, with 1,100 entries and readline's temp names planted #root", function()
    sh("chown nobody " .. q(home))
    local entries = {}
    for i = 1, 1100 do entries[i] = "#1700000000\nprint(" .. i .. ")" end
    local hist = home .. "/.bhprobe_history"
    spit(hist, table.concat(entries, "\n") .. "\n")
    sh("chown nobody " .. q(hist))
    -- readline's history_truncate_file writes HISTORY-PID.tmp and then
    -- chowns it to the history's owner: plant that name for the next pids
    local last = tonumber(slurp("/proc/sys/kernel/ns_last_pid"))
    assert.is_true(as_nobody(string.format("i=%d; while [ $i -le %d ]; do "
      .. "ln -s %s %s-$i.tmp; i=$((i+1)); done", last + 1, last + 600, q(victim), q(hist))))
    local before = slurp(hist)
    local out, rc = prompt_session(home, { "print('typed ' .. 6 * 7)" })
    assert.equal(0, rc, out)
    assert.matches("typed 42", out)
    check_victim()
    assert.equal(before, slurp(hist))
    assert.matches("history .* is owned by uid 65534, not by uid 0 %(us%): no history is kept", out)
  end)

  it("a FIFO: refused at once, the prompt answers", function()
    sh("mkfifo " .. q(home .. "/.bhprobe_history"))
    local out, rc = prompt_session(home, { "print('typed ' .. 6 * 7)" })
    assert.equal(0, rc, "the prompt did not end (status " .. tostring(rc) .. "): " .. out)
    assert.matches("typed 42", out)
    assert.matches("history .* is a FIFO, not a regular file: no history is kept", out)
  end)

  it("is created 0600 (umask 000) and keeps whole chunks, read back by the next session", function()
    local out = prompt_session(home, { "for i = 1, 2 do", "print('loop ' .. i) end" })
    assert.matches("loop 2", out)
    local hist = home .. "/.bhprobe_history"
    assert.equal("600", mode_of(hist))
    assert.matches("^#%d+\nfor i = 1, 2 do\nprint%('loop ' .. i%) end\n$", slurp(hist))
    -- the up arrow recalls the loaded entry
    out = prompt_session(home, { "\27[A" })
    assert.matches("loop 2", out)
  end)
end)
