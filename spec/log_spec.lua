-- bh.log and the runtime's error lines: journald priority prefixes when
-- stderr is the journal, and bh.log's argument checks.
-- External tools run with `env -u LD_PRELOAD`: in the sanitized tree the
-- labels: log program
local H = require "helpers"
local R = require("hostrun")()
local q, slurp = H.q, H.slurp
local sh, run = R.sh, R.run
local BIN = R.BIN

local tmp
before_each(function() tmp = R.enter() end)
after_each(R.leave)

describe("bh.log", function()
  it("writes journald priority prefixes when stderr is the journal", function()
    local code = [[bh.log.error("e", 1) bh.log.warn("w") bh.log.info("i\nsecond")
      bh.log.debug("hidden") bh.log.level("debug") bh.log.debug("d") error("boom")]]
    -- JOURNAL_STREAM names the file stderr goes to, as systemd does.
    sh(string.format("cd %s && : >err && JOURNAL_STREAM=$(stat -c %%d:%%i err) %s -e %s 2>>err",
      q(tmp), q(BIN), q(code)))
    local err = slurp(tmp .. "/err")
    assert.matches("^<3>e 1\n<4>w\n<6>i\n<6>second\n<7>d\n"
      .. "<3>%(command line%):2: boom\n<3>stack traceback:\n", err)
    local _, _, plain = run("-e " .. q(code))
    assert.matches("^bhprobe%-lua: e 1\nbhprobe%-lua: warning: w\nbhprobe%-lua: i\nsecond\n"
      .. "bhprobe%-lua: debug: d\nbhprobe%-lua: %(command line%):2: boom\n", plain)
  end)

  it("gives the runtime's own error lines their priority too", function()
    local code = [[bh.every(1, function() error("run boom") end, { count = 1, name = "job" }):wait()
      local ep = { namespace_id = "s", path = ]] .. string.format("%q", tmp .. "/sock") .. [[ }
      local r = assert(bh.respond(ep, assert(bh.identity.current { endpoint = ep }),
        { on_request = function() error("hook boom") end }))
      bh.probe_response(ep, assert(bh.identity.current { endpoint = ep }))
      r:close()
      bh.spawn(function() error("lost") end)]]
    sh(string.format("cd %s && : >err && JOURNAL_STREAM=$(stat -c %%d:%%i err) %s -e %s 2>>err",
      q(tmp), q(BIN), q(code)))
    local err = slurp(tmp .. "/err")
    assert.matches("^<3>job: run 1 failed: %(command line%):1: run boom\n", err)
    assert.matches("\n<3>on_request: %(command line%):4: hook boom\n<3>stack traceback:\n", err)
    assert.matches("\n<3>a task failed and nobody waited for it: %(command line%):7: lost\n", err)
    assert.not_matches("bhprobe%-lua", err)
  end)

  it("checks its arguments", function()
    local rc, _, err = run("-e " .. q("bh.log.level('loud')"))
    assert.equal(1, rc)
    assert.matches("bad argument #1 to 'bh.log.level' %(\"error\", .* expected, got \"loud\"%)",
      err)
  end)
end)
