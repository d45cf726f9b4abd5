-- The --report and --metrics files, which cannot be turned against the
-- host: a symlink planted by another user is refused and never written
-- through, modes are fixed whatever the umask, a closed stdout ends the run
-- quietly.
-- External tools run with `env -u LD_PRELOAD`: in the sanitized tree the
-- labels: report fsutil metrics program
local H = require "helpers"
local R = require("hostrun")()
local q, slurp, spit = H.q, H.slurp, H.spit
local sh, poll_file, start, run = R.sh, R.poll_file, R.start, R.run
local is_root, as_nobody, mode_of = R.is_root, R.as_nobody, R.mode_of
local BIN = R.BIN

local tmp
before_each(function() tmp = R.enter() end)
after_each(R.leave)

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
