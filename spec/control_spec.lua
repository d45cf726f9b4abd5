-- Task control (docs/lua-api.md §3): task:cancel, bh.timeout, bh.select,
-- bh.all, and <close> on tasks. Cancelling reaches the pending operation
-- through its cleanup: timers, child processes, waits, probes.
-- labels: task probe respond exec
local bh = require "bh"
local H = require "helpers"

-- True while a process with this pid exists.
local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

describe("task:cancel", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  it("stops a sleeping task, closes its <close> variables, wakes its waiters", function()
    local closed, after = false, false
    bh.run(function()
      local t = bh.spawn(function()
        local _ <close> = setmetatable({}, { __close = function() closed = true end })
        bh.sleep(30)
        after = true
      end)
      bh.sleep(0.01)
      local waiter = bh.spawn(function() return pcall(t.wait, t) end)
      bh.sleep(0)
      assert.is_true(t:cancel())
      assert.equal("cancelled", t:status())
      assert.is_false(t:cancel()) -- finished: nothing to do
      local ok, err = waiter:wait()
      assert.is_false(ok)
      assert.matches("the task was cancelled", err)
    end)
    assert.is_true(closed)
    assert.is_false(after)
  end)

  it("kills the process group of a bh.exec the task waits on", function()
    local pidfile = dir .. "/pid"
    bh.run(function()
      local t = bh.spawn(function()
        return bh.exec { "sh", "-c", "echo $$ > " .. pidfile .. "; exec sleep 30" }
      end)
      local pid
      for _ = 1, 200 do
        pid = tonumber(H.slurp(pidfile) or "")
        if pid then break end
        bh.sleep(0.01)
      end
      assert.is_number(pid)
      assert.is_true(alive(pid))
      assert.is_true(t:cancel())
      assert.is_false(alive(pid)) -- killed and reaped by the cleanup
    end)
  end)

  it("takes a task out of the queue it waits in: no late wake-up", function()
    local order = {}
    bh.run(function()
      local slow = bh.spawn(function() bh.sleep(0.05); order[#order + 1] = "slow" end)
      local w = bh.spawn(function() slow:wait(); order[#order + 1] = "woken" end)
      bh.sleep(0.01)
      w:cancel()
      slow:wait()
      bh.sleep(0.02)
    end)
    assert.same({ "slow" }, order)
  end)

  it("cancels a probe: the connection is closed at once", function()
    local ep = H.endpoint(dir)
    bh.run(function()
      local id = assert(bh.identity.current { endpoint = ep })
      local r <close> = assert(bh.respond(ep, id, { delay = 30, timeout = 60 }))
      local t = bh.spawn(bh.probe_response, ep, id, { timeout = 30 })
      bh.sleep(0.05)
      assert.equal(0, r.rejected)
      t:cancel()
      for _ = 1, 200 do
        if r.rejected == 1 then break end
        bh.sleep(0.01)
      end
      assert.equal(1, r.rejected)
      assert.equal(0, r.served)
    end)
  end)

  it("refuses to cancel the running task", function()
    local ok, err = pcall(bh.run, function()
      local t
      t = bh.spawn(function() t:cancel() end)
      t:wait()
    end)
    assert.is_false(ok)
    assert.matches("task:cancel: a task cannot cancel itself", err)
  end)

  it("is what <close> does to a task still live when its scope ends", function()
    local ran = false
    bh.run(function()
      local t
      do
        local inner <close> = bh.spawn(function() bh.sleep(30); ran = true end)
        t = inner
        bh.sleep(0.01)
      end
      assert.equal("cancelled", t:status())
      local done <close> = bh.spawn(function() return 1 end)
      assert.equal(1, done:wait())
    end)
    assert.is_false(ran)
  end)
end)

describe("bh.timeout", function()
  it("returns every result of a function that finishes in time", function()
    local a, b, c = bh.run(function()
      return bh.timeout(5, function(x) bh.sleep(0.01); return x, nil, "z" end, "x")
    end)
    assert.equal("x", a)
    assert.is_nil(b)
    assert.equal("z", c)
  end)

  it("cancels a function that runs too long and returns nil, err", function()
    local closed = false
    local t0, t1
    local res, err = bh.run(function()
      t0 = bh.now()
      local r, e = bh.timeout(0.05, function()
        local _ <close> = setmetatable({}, { __close = function() closed = true end })
        bh.sleep(30)
        return "late"
      end)
      t1 = bh.now()
      return r, e
    end)
    assert.is_nil(res)
    assert.equal("timeout", err.code)
    assert.equal("task", err.stage)
    assert.matches("not finished within 0.050 s", err.message)
    assert.is_true(closed)
    assert.is_true(t1 - t0 >= 0.05, "returned after " .. (t1 - t0))
  end)

  it("raises the function's error", function()
    local ok, err = pcall(bh.run, function()
      return bh.timeout(1, function() error("inner failure") end)
    end)
    assert.is_false(ok)
    assert.matches("control_spec.lua:%d+: inner failure", err)
  end)

  it("nests, and cancelling the caller cancels the function", function()
    local inner_closed = false
    bh.run(function()
      local r, e = bh.timeout(0.05, function()
        return bh.timeout(10, function()
          local _ <close> = setmetatable({}, { __close = function() inner_closed = true end })
          bh.sleep(30)
        end)
      end)
      assert.is_nil(r)
      assert.equal("timeout", e.code)
    end)
    assert.is_true(inner_closed)
  end)

  it("checks its arguments at the caller's line", function()
    local ok, err = pcall(bh.run, function() bh.timeout(-1, print) end)
    assert.is_false(ok)
    assert.matches("control_spec.lua:%d+: bad argument #1 to 'bh.timeout' %(seconds must be a "
      .. "number in %[0, 1000000000%], got %-1%)", err)
    ok, err = pcall(bh.run, function() bh.timeout(1, "f") end)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'bh.timeout' %(function expected, got string%)", err)
    assert.has_error(function() bh.timeout(1, print) end,
      "bh.timeout must be called from a task; wrap your code in bh.run")
  end)
end)

describe("bh.select", function()
  it("returns the first task to finish and its position; the others go on", function()
    bh.run(function()
      local slow = bh.spawn(function() bh.sleep(0.2); return "slow" end)
      local fast = bh.spawn(function() bh.sleep(0.01); return "fast" end)
      local t, i = bh.select(slow, fast)
      assert.equal(fast, t)
      assert.equal(2, i)
      assert.equal("fast", t:wait())
      assert.equal("suspended", slow:status())
      assert.equal(slow, (bh.select(slow)))
      assert.equal("slow", slow:wait())
    end)
  end)

  it("returns at once for a task already finished, a failed one too", function()
    bh.run(function()
      local failed = bh.spawn(function() error("oops") end)
      local sleeper = bh.spawn(function() bh.sleep(30) end)
      bh.sleep(0.01)
      local t, i = bh.select(sleeper, failed)
      assert.equal(failed, t)
      assert.equal(2, i)
      assert.equal("failed", t:status())
      sleeper:cancel()
    end)
  end)

  it("checks its arguments", function()
    local ok, err = pcall(bh.run, function() bh.select() end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'bh.select' %(task expected, got no value%)", err)
    ok, err = pcall(bh.run, function() bh.select(bh.spawn(print), print) end)
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'bh.select' %(task expected, got function%)", err)
  end)
end)

describe("bh.all", function()
  it("waits for every task; results and errs in order, like bh.map", function()
    local results, errs = bh.run(function()
      local a = bh.spawn(function() bh.sleep(0.02); return "a" end)
      local b = bh.spawn(function() return nil, { code = "io" } end)
      local c = bh.spawn(function() bh.sleep(0.01); return "c", "extra" end)
      return bh.all(a, b, c)
    end)
    assert.equal(3, results.n)
    assert.equal("a", results[1])
    assert.is_nil(results[2])
    assert.equal("c", results[3])
    assert.equal("io", errs[2].code)
    assert.is_nil(errs[1])
    assert.is_nil(errs[3])
  end)

  it("raises the error of the first task (in argument order) that failed", function()
    local ok, err = pcall(bh.run, function()
      local a = bh.spawn(function() bh.sleep(0.02); error("a failed last") end)
      local b = bh.spawn(function() error("b failed first") end)
      return bh.all(a, b)
    end)
    assert.is_false(ok)
    assert.matches("a failed last", err) -- argument order, not time order
  end)
end)
