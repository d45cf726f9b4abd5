-- The bhprobe-lua command line (design §3), end to end with the real binary
-- ($BH_BIN, set by scripts/env). Each case runs it through the shell in a
-- fresh temp dir with stdout and stderr captured in files.
-- labels: program task respond probe

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")

local H = require "helpers"
local q, slurp, spit = H.q, H.slurp, H.spit

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  return ok, how, code
end

local tmp -- per-test temp dir

-- Runs bhprobe-lua with the given argument string (already quoted) and
-- optional stdin text; returns exit status, stdout, stderr.
local function run(args, stdin)
  local input = "/dev/null"
  if stdin then
    input = tmp .. "/stdin"
    spit(input, stdin)
  end
  local _, how, code = sh(string.format("cd %s && %s %s <%s >out 2>err", q(tmp), q(BIN), args,
    q(input)))
  assert.are.equal("exit", how)
  return code, slurp(tmp .. "/out"), slurp(tmp .. "/err")
end

local function script(name, text)
  spit(tmp .. "/" .. name, text)
  return name
end

local function sleep(s) sh("sleep " .. s) end

-- Waits (up to 20 s) until the file in tmp matches pattern; returns the capture.
local function poll_file(name, pattern)
  for _ = 1, 400 do
    local m = (slurp(tmp .. "/" .. name) or ""):match(pattern)
    if m then return m end
    sleep(0.05)
  end
  error("timed out waiting for " .. pattern .. " in " .. name)
end

-- Starts bhprobe-lua in the background (SIGINT/SIGTERM at their default
-- disposition, which a shell's `&` would otherwise ignore for SIGINT);
-- returns a handle with pid, wait_for(pattern) on stdout, and status().
local function start(args)
  sh(string.format("cd %s && (env --default-signal=INT,TERM %s %s </dev/null >out 2>err & "
    .. "echo $! >pid; wait $!; echo $? >rc) >/dev/null 2>&1 &", q(tmp), q(BIN), args))
  local p = {}
  function p.pid() return poll_file("pid", "(%d+)") end
  function p.wait_for(pattern)
    for _ = 1, 400 do
      local s = slurp(tmp .. "/out") or ""
      if s:find(pattern) then return s end
      sleep(0.05)
    end
    error("timed out waiting for " .. pattern .. "; stderr: " .. (slurp(tmp .. "/err") or ""))
  end
  function p.status()
    for _ = 1, 600 do
      local s = slurp(tmp .. "/rc")
      if s and s:match("%d+") then return tonumber(s:match("%d+")) end
      sleep(0.05)
    end
    error("process did not exit")
  end
  function p.kill(sig) sh("kill -" .. sig .. " " .. p.pid()) end
  return p
end

before_each(function()
  tmp = assert(io.popen("mktemp -d /tmp/bhh.XXXXXX")):read("l")
end)

after_each(function()
  sh("rm -rf " .. q(tmp))
end)

describe("bhprobe-lua", function()
  describe("options", function()
    it("-e runs code, as a task (bh.sleep works at top level)", function()
      local rc, out = run([[-e 'bh.sleep(0.01) print("hi", type(bh.run))']])
      assert.are.equal(0, rc)
      assert.are.equal("hi\tfunction\n", out)
    end)

    it("-e may be repeated and runs in order", function()
      local rc, out = run([[-e 'x = 1' -e'print(x + 1)']])
      assert.are.equal(0, rc)
      assert.are.equal("2\n", out)
    end)

    it("-l requires a module into a global, and -l g=mod renames it", function()
      script("mymod.lua", "return { answer = 42 }")
      local rc, out = run([[-l mymod -l m=mymod -e 'print(mymod.answer, m.answer)']])
      assert.are.equal(0, rc)
      assert.are.equal("42\t42\n", out)
    end)

    it("-v prints the version line and goes on", function()
      local rc, out = run([[-v -e 'print("after")']])
      assert.are.equal(0, rc)
      assert.matches("^bhprobe%-lua %d+%.%d+%.%d+ .*Lua 5%.4[^\n]*\nafter\n$", out)
    end)

    it("--version prints the version line and exits", function()
      local rc, out = run("--version -e 'print(1)'")
      assert.are.equal(0, rc)
      assert.matches("^bhprobe%-lua %d+%.%d+%.%d+ [^\n]*\n$", out)
    end)

    for _, opt in ipairs{ "-h", "--help" } do
      it(opt .. " prints a usage listing every option, within 80 columns", function()
        local rc, out = run(opt)
        assert.are.equal(0, rc)
        assert.matches("^usage: bhprobe%-lua %[options%] %[script %[args", out)
        for _, o in ipairs{ "-e CODE", "-l NAME", "-i ", "-v ", "-E ", "-W ", "-h, --help",
          "--version", "--report FILE", "--metrics FILE", "-- ", "- " } do
          assert.is_truthy(out:find("\n  " .. o, 1, true), "missing " .. o)
        end
        for line in out:gmatch("[^\n]*") do assert.is_true(#line <= 79, line) end
      end)
    end

    it("- runs the script from stdin with its arguments", function()
      local rc, out = run("- a b", "print(table.concat({...}, ','), arg[0], arg[1], arg[2], #arg)")
      assert.are.equal(0, rc)
      assert.are.equal("a,b\t-\ta\tb\t2\n", out)
    end)

    it("runs stdin when there is no script and stdin is not a terminal", function()
      local rc, out = run("", "print('from stdin')")
      assert.are.equal(0, rc)
      assert.are.equal("from stdin\n", out)
    end)

    it("-- ends the options: the next word is the script even if it starts with -", function()
      script("-e", "print('script named -e', ...)")
      local rc, out = run("-- -e x")
      assert.are.equal(0, rc)
      assert.are.equal("script named -e\tx\n", out)
    end)

    it("gives the script arg and ... as lua does", function()
      script("args.lua", "print(select('#', ...), ...)\n"
        .. "for i = -3, 3 do io.write(tostring(arg[i]), '|') end print()")
      local rc, out = run("-e 'x=1' args.lua one two")
      assert.are.equal(0, rc)
      assert.are.equal("2\tone\ttwo\n" .. BIN .. "|-e|x=1|args.lua|one|two|nil|\n", out)
    end)

    it("--report and --metrics set bh.options before anything runs", function()
      local rc, out = run("--report r.jsonl --metrics=m.prom "
        .. [[-e 'print(bh.options.report, bh.options.metrics)']])
      assert.are.equal(0, rc)
      assert.are.equal("r.jsonl\tm.prom\n", out)
    end)

    it("-i runs each line as a task and prints expression values", function()
      local rc, out, err = run("-i", table.concat({
        "x = 20",
        "x + 22",
        "bh.sleep(0.01) return 'slept'",
        "for i = 1, 2 do",
        "  print('loop', i)",
        "end",
        "error('oops')",
        "'still', 'here'",
      }, "\n") .. "\n")
      assert.are.equal(0, rc)
      assert.matches("^bhprobe%-lua [^\n]*\n", out) -- the banner
      assert.is_truthy(out:find("> 42\n", 1, true))
      assert.is_truthy(out:find("> slept\n", 1, true))
      assert.is_truthy(out:find(">> >> loop\t1\nloop\t2\n", 1, true))
      assert.is_truthy(out:find("still\there\n", 1, true))
      assert.matches("stdin:1: oops", err)
    end)

    it("-i is one session: what a line starts is served on later lines", function()
      local sock = tmp .. "/repl.sock"
      local rc, out, err = run("-i", table.concat({
        string.format("ep = {namespace_id = 'host-spec', path = %q}", sock),
        "id = bh.identity.current{endpoint = ep}",
        "r = bh.respond(ep, id)",
        "print(bh.probe_response(ep, id))",
        "print(r.served)",
        "n = 0",
        "bg = bh.spawn(function() while true do n = n + 1 bh.sleep(0.01) end end)",
        "error('line error')",
        "bh.sleep(0.2)",
        "print('counted', n > 5, bg:status())",
        string.format("print('sock', os.execute('test -S ' .. %q) == true)", sock),
      }, "\n") .. "\n")
      assert.are.equal(0, rc)
      assert.is_truthy(out:find("> true\n", 1, true))
      assert.is_truthy(out:find("> 1\n", 1, true))
      assert.is_truthy(out:find("counted\ttrue\tsuspended\n", 1, true))
      assert.is_truthy(out:find("sock\ttrue\n", 1, true))
      assert.matches("stdin:1: line error", err)
      assert.is_falsy(sh("test -e " .. q(sock))) -- unlinked at end of input
    end)

    it("-i reads lines from a pipe too, and a last line without newline counts", function()
      spit(tmp .. "/lines", "x = 6\nx * 7")
      local _, how, code = sh(string.format("cd %s && cat lines | %s -i >out 2>err",
        q(tmp), q(BIN)))
      assert.are.equal("exit", how)
      assert.are.equal(0, code)
      assert.is_truthy(slurp(tmp .. "/out"):find("> 42\n", 1, true))
    end)

    it("-i after a script keeps its globals", function()
      script("s.lua", "greeting = 'hello'")
      local rc, out = run("-i s.lua", "greeting\n")
      assert.are.equal(0, rc)
      assert.is_truthy(out:find("> hello\n", 1, true))
    end)
  end)

  describe("exit status", function()
    it("is 0 when the script returns", function()
      script("ok.lua", "return 5")
      assert.are.equal(0, (run("ok.lua")))
    end)

    it("is n for os.exit(n), also from inside a task", function()
      assert.are.equal(7, (run([[-e 'os.exit(7)']])))
      assert.are.equal(3, (run([[-e 'bh.spawn(function() bh.sleep(0.01) os.exit(3) end):wait()']])))
      assert.are.equal(1, (run([[-e 'os.exit(false)']])))
    end)

    it("is n for os.exit(n) with probes in flight, and nothing they held is lost", function()
      -- Under the sanitizers a leak would make the status 1: on the ring,
      -- what the kernel still holds of a probe that timed out (or of one
      -- still waiting) must stay reachable when the process exits.
      script("inflight.lua", string.format([[
local ep = {namespace_id = "t", path = %q}
local id = bh.identity.current{endpoint = ep}
bh.respond(ep, id, {reply = "silent"})
for _ = 1, 3 do bh.spawn(bh.probe_response, ep, id, {timeout = 5}) end
local _, err = bh.probe_response(ep, id, {timeout = 0.05})
io.write(err.code, "\n")
io.stdout:flush()
os.exit(4)
]], tmp .. "/s.sock"))
      local rc, out, err = run("inflight.lua")
      assert.are.equal("timeout\n", out)
      assert.are.equal("", err)
      assert.are.equal(4, rc)
    end)

    it("is 1 with file:line and a traceback naming them when the script raises", function()
      script("boom.lua", "local function f()\n  error('boom')\nend\nf()\n")
      local rc, out, err = run("boom.lua")
      assert.are.equal(1, rc)
      assert.are.equal("", out)
      assert.matches("^bhprobe%-lua: boom%.lua:2: boom\n", err)
      assert.matches("stack traceback:", err)
      assert.matches("boom%.lua:2: in", err)
      assert.matches("boom%.lua:4: in main chunk", err)
    end)

    it("is 1 when an error crosses a yield (the traceback still names the script)", function()
      script("late.lua", "bh.sleep(0.01)\nlocal t = nil\nreturn t.field\n")
      local rc, _, err = run("late.lua")
      assert.are.equal(1, rc)
      assert.matches("^bhprobe%-lua: late%.lua:3: attempt to index a nil value", err)
      assert.matches("late%.lua:3: in main chunk", err)
    end)

    it("is 1 for an error object that is not a string", function()
      local rc, _, err = run([[-e 'error({})']])
      assert.are.equal(1, rc)
      assert.matches("^bhprobe%-lua: %(error object is a table value%)", err)
    end)

    it("is 1 with file:line for a syntax error", function()
      script("syntax.lua", "local x = 1\nlocal = 2\n")
      local rc, _, err = run("syntax.lua")
      assert.are.equal(1, rc)
      assert.matches("^bhprobe%-lua: syntax%.lua:2: ", err)
    end)

    it("is 1 when a task failed and nobody waited for it", function()
      local rc, _, err = run([[-e 'bh.spawn(function() error("lost task") end) bh.sleep(0.05)']])
      assert.are.equal(1, rc)
      assert.matches("lost task", err)
    end)

    it("is 1 when -e or -l fails, and nothing after runs", function()
      local rc, out, err = run([[-e 'error("first")' -e 'print("second")']])
      assert.are.equal(1, rc)
      assert.are.equal("", out)
      assert.matches("^bhprobe%-lua: %(command line%):1: first", err)
      rc, out, err = run([[-l no_such_module_xyz]])
      assert.are.equal("", out)
      assert.are.equal(1, rc)
      assert.matches("module 'no_such_module_xyz' not found", err)
    end)

    it("--name names the instance; the default is the script's base name", function()
      script("my.policy.lua", "print(bh.options.name)")
      local rc, out = run("my.policy.lua")
      assert.are.equal(0, rc)
      assert.are.equal("my.policy\n", out)
      rc, out = run("--name 'web 1' my.policy.lua")
      assert.are.equal(0, rc)
      assert.are.equal("web 1\n", out)
      rc, out = run("--name=" .. ("n"):rep(128) .. " -e 'print(#bh.options.name)'")
      assert.are.equal(0, rc)
      assert.are.equal("128\n", out)
      rc, out = run("-e 'print(bh.options.name)'")
      assert.are.equal(0, rc)
      assert.are.equal("bhprobe-lua\n", out)
      -- the first metrics file already carries it
      rc = run("--name first --metrics m.prom -e 'os.exit(0)'")
      assert.are.equal(0, rc)
      assert.matches('\nbhprobe_build_info{policy="first",', slurp(tmp .. "/m.prom"))
    end)

    local usage_cases = {
      { "-x", "unrecognized option '%-x'" },
      { "--bogus", "unrecognized option '%-%-bogus'" },
      { "-vx", "unrecognized option '%-vx'" },
      { "-e", "'%-e' needs argument" },
      { "-l", "'%-l' needs argument" },
      { "--report", "'%-%-report' needs argument" },
      { "--name", "'%-%-name' needs argument" },
      { "--name=", "'%-%-name=' needs argument" },
      { "--name 'a\nb' -e 1", "'%-%-name' takes a NAME of at most 128 bytes without control "
        .. "characters" },
      { "--name " .. ("n"):rep(129) .. " -e 1", "'%-%-name' takes a NAME of at most 128" },
      { "nosuch.lua", "cannot open nosuch%.lua" },
    }
    for _, c in ipairs(usage_cases) do
      it("is 2 with a one-line hint for a usage error: " .. c[1], function()
        local rc, out, err = run(c[1])
        assert.are.equal(2, rc)
        assert.are.equal("", out)
        assert.matches("^bhprobe%-lua: " .. c[2] .. "[^\n]*\ntry 'bhprobe%-lua %-%-help'\n$", err)
      end)
    end
  end)

  describe("signals", function()
    local SERVE = [[
local dir = ...
local ep = { namespace_id = "host-spec", path = dir .. "/r.sock" }
local r = bh.respond(ep, bh.identity.current{ endpoint = ep })
print("ready " .. ep.path)
io.stdout:flush()
bh.sleep(120)
print("not interrupted")
]]

    it("SIGTERM stops a script with an open responder: exit 143, socket unlinked", function()
      script("serve.lua", SERVE)
      local p = start("serve.lua " .. q(tmp))
      p.wait_for("ready")
      assert.is_truthy(slurp(tmp .. "/out"):find("r.sock", 1, true))
      assert.is_true(sh("test -S " .. q(tmp .. "/r.sock")))
      p.kill("TERM")
      assert.are.equal(143, p.status())
      assert.is_nil(slurp(tmp .. "/out"):find("not interrupted", 1, true))
      assert.is_falsy(sh("test -e " .. q(tmp .. "/r.sock")))
    end)

    it("SIGINT stops it with exit 130, socket unlinked", function()
      script("serve.lua", SERVE)
      local p = start("serve.lua " .. q(tmp))
      p.wait_for("ready")
      p.kill("INT")
      assert.are.equal(130, p.status())
      assert.is_falsy(sh("test -e " .. q(tmp .. "/r.sock")))
    end)

    it("SIGTERM at the -i prompt of a terminal ends the session with 143", function()
      -- script(1) gives the prompt a pseudo-terminal; a sleeping shell keeps
      -- its input open without typing anything (and is killed by pid after).
      local cmd = q(BIN) .. [[ -e "print('pid ' .. io.open('/proc/self/stat'):read('n'))" -i]]
      sh(string.format("cd %s && (sh -c 'echo $$ >feeder; exec sleep 60' | "
        .. "(env -u LD_PRELOAD script -eqfc %s /dev/null >out 2>err; echo $? >rc)) "
        .. ">/dev/null 2>&1 &",
        q(tmp), q(cmd)))
      local pid = poll_file("out", "pid (%d+)")
      poll_file("out", "\n[^\n]*> ()") -- the prompt (after readline escapes)
      sh("kill -TERM " .. pid)
      local rc = poll_file("rc", "(%d+)")
      sh("kill " .. poll_file("feeder", "(%d+)"))
      assert.are.equal("143", rc)
    end)

    it("SIGINT during an -i line interrupts that line and the session goes on", function()
      -- The feeder sends a line that sleeps, then, once the test has sent
      -- SIGINT and created the file go, a last line; end of input ends it.
      local feed = [[printf '%s\n' "print('pid ' .. io.open('/proc/self/stat'):read('n'))" ]]
        .. [["print('sleeping') io.stdout:flush() bh.sleep(100)"; ]]
        .. [[while [ ! -e go ]; do sleep 0.05; done; printf '%s\n' "'after'"]]
      sh(string.format("cd %s && ((%s) | env --default-signal=INT,TERM %s -i >out 2>err; "
        .. "echo $? >rc) >/dev/null 2>&1 &", q(tmp), feed, q(BIN)))
      local pid = poll_file("out", "pid (%d+)")
      poll_file("out", "sleeping\n()")
      sh("kill -INT " .. pid)
      poll_file("err", "()interrupted")
      spit(tmp .. "/go", "")
      assert.are.equal("0", poll_file("rc", "(%d+)"))
      assert.is_truthy(slurp(tmp .. "/out"):find("> after\n", 1, true))
      assert.matches("interrupted\nstack traceback:\n[^\n]*bh%.sleep", slurp(tmp .. "/err"))
    end)

    it("SIGTERM interrupts a Lua loop that never yields", function()
      script("spin.lua", "print('spinning') io.stdout:flush() while true do end")
      local p = start("spin.lua")
      p.wait_for("spinning")
      p.kill("TERM")
      assert.are.equal(143, p.status())
    end)
  end)
end)
