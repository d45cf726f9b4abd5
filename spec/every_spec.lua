-- bh.every (lua/bh/every.lua): checked options and a quiet overrun log.
-- labels: task helpers
local bh = require "bh"
local H = require "helpers"

describe("bh.every", function()
  local function err_of(f)
    local ok, err = pcall(bh.run, f)
    assert.is_false(ok)
    return err
  end

  it("checks the period and its options at the call", function()
    assert.matches("every_spec.lua:%d+: bad argument #1 to 'bh.every' %(period must be a number "
      .. "in %(0, 1000000000%], got 10000000000%)", err_of(function() bh.every(1e10, print) end))
    assert.matches("bad argument #1 to 'bh.every' %(period must be a number in %(0, 1000000000%], "
      .. "got 0%)", err_of(function() bh.every(0, print) end))
    assert.matches("bad argument #2 to 'bh.every' %(function expected, got nil%)",
      err_of(function() bh.every(1) end))
    assert.matches("bh.every: option 'jitter' must be a number in %[0, 1%], got nan",
      err_of(function() bh.every(1, print, { jitter = 0 / 0 }) end))
    assert.matches("bh.every: unknown option 'jiter'",
      err_of(function() bh.every(1, print, { jiter = 0.5 }) end))
    assert.matches("bh.every: option 'count' must be an integer in %[1, 9007199254740992%], got 0",
      err_of(function() bh.every(1, print, { count = 0 }) end))
    assert.matches("bh.every: option 'name' must be a string, got number",
      err_of(function() bh.every(1, print, { name = 1 }) end))
  end)

  it("logs overrunning runs at most once a minute, counting the others", function()
    local dir = H.tmpdir()
    local ok, out, err = H.lua(dir, [[
      local bh = require "bh"
      print(bh.run(function()
        return bh.every(0.001, function()
          local t = bh.now()
          while bh.now() - t < 0.003 do end
        end, { count = 20, jitter = 0, name = "busy" }):wait()
      end))
    ]])
    H.rmdir(dir)
    assert.is_true(ok)
    assert.equal("20\n", out)
    local _, lines = err:gsub("took", "")
    assert.equal(1, lines, err)
    assert.matches("^bhprobe%-lua: busy: run 1 took %d+%.%d+s, longer than the 0%.001s period", err)
  end)

  it("logs failing runs at most once a minute too, counting the others", function()
    local dir = H.tmpdir()
    local ok, out, err = H.lua(dir, [[
      local bh = require "bh"
      print(bh.run(function()
        return bh.every(0.01, function(n) error("boom " .. n) end,
          { count = 30, jitter = 0, name = "failing" }):wait()
      end))
    ]])
    H.rmdir(dir)
    assert.is_true(ok)
    assert.equal("30\n", out) -- the job went on after each failure
    local _, lines = err:gsub("failing: run %d+ failed", "")
    assert.equal(1, lines, err) -- 30 failures in 0.3 s: one line
    assert.matches("^bhprobe%-lua: failing: run 1 failed: [^\n]*boom 1", err)
  end)
end)
