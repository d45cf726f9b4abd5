-- bh.exec on the real loop with real processes.
-- labels: exec task
local bh = require "bh"

describe("bh.exec", function()
  it("returns status, output and env changes", function()
    local r = bh.run(function()
      return bh.exec{ "sh", "-c", 'echo "$A|${HOME-unset}"; echo e >&2; exit 3',
                      env = { A = "x", HOME = false } }
    end)
    assert.equal(3, r.status)
    assert.is_nil(r.signal)
    assert.equal("x|unset\n", r.stdout)
    assert.equal("e\n", r.stderr)
    assert.is_false(r.stdout_truncated)
    assert.is_false(r.timed_out)
  end)

  it("caps output and flags truncation", function()
    local r = bh.run(function() return bh.exec{ "head", "-c", "2000000", "/dev/zero" } end)
    assert.equal(1024 * 1024, #r.stdout)
    assert.is_true(r.stdout_truncated)
    assert.equal(0, r.status)
  end)

  it("kills the whole process group on timeout", function()
    local r = bh.run(function()
      return bh.exec{ "sh", "-c", "sleep 100 & echo $!; wait", timeout = 0.3 }
    end)
    assert.is_true(r.timed_out)
    assert.equal(9, r.signal)
    local gpid = assert(tonumber(r.stdout))
    -- the grandchild was SIGKILLed with its group: gone or a zombie
    -- waiting for init (bounded wait, generous for a loaded machine)
    local gone = false
    for _ = 1, 100 do
      local f = io.open("/proc/" .. gpid .. "/stat")
      local st = f and f:read("a"):match("^%d+ %b() (%a)")
      if f then f:close() end
      if not st or st == "Z" then gone = true break end
      os.execute("sleep 0.05")
    end
    assert.is_true(gone)
  end)

  it("fails with nil, err when the program cannot run", function()
    local r, err = bh.run(function() return bh.exec{ "/nonexistent/prog" } end)
    assert.is_nil(r)
    assert.equal("system", err.code)
    assert.matches("/nonexistent/prog", tostring(err))
  end)

  it("raises on misuse and outside a task, naming the option", function()
    assert.has_error(function() bh.exec{ "true" } end,
      "bh.exec must be called from a task; wrap your code in bh.run")
    local function err_of(t)
      local ok, err = pcall(bh.run, function() bh.exec(t) end)
      assert.is_false(ok)
      return err
    end
    assert.matches("exec_spec.lua:%d+: bad argument #1 to 'bh.exec' %(expected the program as "
      .. "t%[1%]%)", err_of({}))
    assert.matches("bad argument #1 to 'bh.exec' %(table expected, got string%)", err_of("true"))
    assert.matches("bad argument #1 to 'bh.exec' %(t%[2%] must be a string, got number%)",
      err_of({ "echo", 5 }))
    assert.matches("bh.exec: option 'timeout' must be a number in %(0, inf%], got %-1",
      err_of({ "true", timeout = -1 }))
    assert.matches("bh.exec: unknown option 'timout'", err_of({ "true", timout = 1 }))
    assert.matches("bh.exec: option 'max_output' must be an integer in %[1, 1073741824%], got 0",
      err_of({ "true", max_output = 0 }))
    assert.matches("bh.exec: env.A must be a string or false, got number",
      err_of({ "true", env = { A = 1 } }))
  end)

  it("waits for the child under a timeout of 1e19 or math.huge", function()
    for _, t in ipairs({ 1e19, math.huge }) do
      local r = bh.run(function()
        return bh.exec{ "sh", "-c", "sleep 0.2; echo done", timeout = t }
      end)
      assert.is_false(r.timed_out)
      assert.is_nil(r.signal)
      assert.equal(0, r.status)
      assert.equal("done\n", r.stdout)
    end
  end)

  it("raises naming the timeout when it is not a positive number", function()
    for _, t in ipairs({ -1, 0, 0 / 0, "5" }) do
      local ok, msg = pcall(bh.run, function() return bh.exec{ "true", timeout = t } end)
      assert.is_false(ok)
      assert.matches("bh.exec: option 'timeout' must be a number in %(0, inf%], got", msg)
    end
  end)
end)
