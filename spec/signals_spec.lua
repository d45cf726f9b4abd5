-- The host's signals from start-up, end to end with the real binary: SIGHUP
-- reopens the report, SIGTERM ends a script blocked in a C call or waiting
-- for a child, two SIGTERMs end a group leader at once, a clean stop is
-- quiet.
-- External tools run with `env -u LD_PRELOAD`: in the sanitized tree the
-- labels: program report task
local H = require "helpers"
local R = require("hostrun")()
local q, slurp, spit = H.q, H.slurp, H.spit
local sh, sleep, poll_file, wait_exists, start = R.sh, R.sleep, R.poll_file, R.wait_exists, R.start
local BIN = R.BIN

local tmp
before_each(function() tmp = R.enter() end)
after_each(R.leave)

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
