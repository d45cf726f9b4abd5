-- Tasks on the loop (design §2): bh.run, bh.spawn, task:wait,
-- bh.sleep, bh.now, bh.map. Timings use generous slack (loaded 2-core CI).
-- labels: task respond
local bh = require "bh"
local H = require "helpers"

describe("bh.run", function()
  it("returns the main task's results and passes its arguments", function()
    local a, b, c = bh.run(function(x, y) return x + y, "ok", nil end, 1, 2)
    assert.equal(3, a)
    assert.equal("ok", b)
    assert.is_nil(c)
    assert.equal(3, select("#", bh.run(function() return 1, nil, 3 end)))
  end)

  it("re-raises the main task's error with the task's traceback", function()
    local ok, err = pcall(bh.run, function()
      local function inner() error("boom") end
      inner()
    end)
    assert.is_false(ok)
    assert.matches("task_spec.lua:%d+: boom", err)
    assert.matches("stack traceback:", err)
    assert.matches("in %a* ?%a* ?'?inner'?", err)
  end)

  it("re-raises non-string errors unchanged", function()
    local e = { code = "x" }
    local ok, err = pcall(bh.run, function() error(e) end)
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  it("is an error inside a task, and callable again afterwards", function()
    local ok, err = pcall(bh.run, function() bh.run(function() end) end)
    assert.is_false(ok)
    assert.matches("bh.run cannot be called inside bh.run", err)
    assert.equal(42, bh.run(function() return 42 end))
    assert.equal(43, bh.run(function() return 43 end))
  end)

  it("checks its argument", function()
    assert.has_error(function() bh.run(42) end,
      "bad argument #1 to 'bh.run' (function expected, got number)")
  end)

  it("waits for every spawned task before returning", function()
    local done = {}
    bh.run(function()
      for i = 1, 3 do
        bh.spawn(function() bh.sleep(0.01 * i); done[#done + 1] = i end)
      end
    end)
    assert.same({ 1, 2, 3 }, done)
  end)

  it("reports a deadlock instead of hanging", function()
    local ok, err = pcall(bh.run, function()
      local t1, t2
      t1 = bh.spawn(function() bh.sleep(0); t2:wait() end)
      t2 = bh.spawn(function() bh.sleep(0); t1:wait() end)
      t1:wait()
    end)
    assert.is_false(ok)
    assert.matches("deadlock", err)
  end)

  -- An event source no task waits on (a responder here; the watchdog, an
  -- HTTP server) never keeps a deadlocked run turning.
  it("reports a deadlock while a responder serves that nobody waits on", function()
    local dir = H.tmpdir()
    local ep = H.endpoint(dir)
    local ok, err = pcall(bh.run, function()
      assert(bh.respond(ep, assert(bh.identity.current { endpoint = ep })))
      local t1, t2
      t1 = bh.spawn(function() bh.sleep(0); t2:wait() end)
      t2 = bh.spawn(function() bh.sleep(0); t1:wait() end)
      t1:wait()
    end)
    H.rmdir(dir)
    assert.is_false(ok)
    assert.matches("deadlock", err)
  end)

  -- ... but a responder's waiters are woken by the loop: r:wait with
  -- nothing else in the run is not a deadlock, a peer outside ends it.
  it("is not deadlocked while a task waits on a responder a peer outside the run probes", function()
    local dir = H.tmpdir()
    local ep = H.endpoint(dir)
    local served = bh.run(function()
      local id = assert(bh.identity.current { endpoint = ep })
      local r = assert(bh.respond(ep, id, { count = 1 }))
      H.spit(dir .. "/id.json", bh.identity.to_json(id))
      local peer = string.format([[local bh = require "bh"
        local f = io.open(%q) local id = bh.identity.from_json(f:read("a")) f:close()
        bh.run(function() bh.sleep(0.2) assert(bh.probe_response(id.ipc_endpoint, id)) end)]],
        dir .. "/id.json")
      H.spit(dir .. "/peer.lua", peer)
      os.execute("lua5.4 '" .. dir .. "/peer.lua' >/dev/null 2>&1 &")
      assert.is_true(r:wait())
      return r.served
    end)
    H.rmdir(dir)
    assert.equal(1, served)
  end)
end)

describe("bh.spawn and task:wait", function()
  it("starts tasks in spawn order once the spawner yields", function()
    local order = {}
    bh.run(function()
      local a = bh.spawn(function() order[#order + 1] = "a" end)
      local b = bh.spawn(function() order[#order + 1] = "b" end)
      order[#order + 1] = "main"
      a:wait()
      b:wait()
    end)
    assert.same({ "main", "a", "b" }, order)
  end)

  it("returns the task's results, also to several waiters and after the end", function()
    local t
    local got = bh.run(function()
      t = bh.spawn(function(x) bh.sleep(0.01); return x, x * 2 end, 21)
      local w = bh.spawn(function() return select(2, t:wait()) end)
      local first = { t:wait() }
      assert.same({ 21, 42 }, first)
      return w:wait()
    end)
    assert.equal(42, got)
    assert.equal("done", t:status())
    assert.same({ 21, 42 }, { t:wait() })
  end)

  it("raises the task's error through wait", function()
    local ok, err = bh.run(function()
      local t = bh.spawn(function() error("task failed here") end)
      return pcall(t.wait, t)
    end)
    assert.is_false(ok)
    assert.matches("task_spec.lua:%d+: task failed here", err)
    assert.matches("stack traceback:", err)
  end)

  it("keeps the error object of a failed task", function()
    local e = { code = "mine" }
    local err = bh.run(function()
      local t = bh.spawn(function() error(e) end)
      return select(2, pcall(t.wait, t))
    end)
    assert.equal(e, err)
  end)

  it("refuses a task waiting for itself", function()
    local ok, err = pcall(bh.run, function()
      local t
      t = bh.spawn(function() bh.sleep(0); return t:wait() end)
      return t:wait()
    end)
    assert.is_false(ok)
    assert.matches("a task cannot wait for itself", err)
  end)

  it("treats a bare coroutine.yield as a turn of the loop", function()
    local order = {}
    bh.run(function()
      local t = bh.spawn(function() order[#order + 1] = "t" end)
      coroutine.yield()
      order[#order + 1] = "main"
      t:wait()
    end)
    assert.same({ "t", "main" }, order)
  end)

  it("raises outside a run", function()
    assert.has_error(function() bh.spawn(function() end) end,
      "bh.spawn must be called inside bh.run")
    assert.has_error(function() bh.spawn("x") end,
      "bad argument #1 to 'bh.spawn' (function expected, got string)")
  end)

  it("has a __tostring naming the state", function()
    bh.run(function()
      local t = bh.spawn(function() end)
      assert.matches("^bh.task %(ready%)", tostring(t))
      t:wait()
      assert.matches("^bh.task %(done%)", tostring(t))
    end)
  end)
end)

describe("unwaited task errors", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  it("are printed with their traceback when the run ends", function()
    local ok, out, err = H.lua(dir, [[
      local bh = require "bh"
      local r = bh.run(function()
        bh.spawn(function() error("nobody looks at me") end)
        bh.sleep(0.01)
        return "main finished"
      end)
      print(r)
    ]])
    assert.is_true(ok)
    assert.equal("main finished\n", out)
    assert.matches("a task failed and nobody waited for it: .*run.lua:3: nobody looks at me", err)
    assert.matches("stack traceback:", err)
  end)

  it("are not printed when someone waited", function()
    local ok, _, err = H.lua(dir, [[
      local bh = require "bh"
      bh.run(function()
        local t = bh.spawn(function() error("seen") end)
        bh.sleep(0.01)
        assert(not pcall(t.wait, t))
      end)
    ]])
    assert.is_true(ok)
    assert.equal("", err)
  end)
end)

describe("bh.sleep and bh.now", function()
  it("sleeps on the loop while other tasks run", function()
    local t0 = bh.now()
    local order = {}
    bh.run(function()
      local a = bh.spawn(function() bh.sleep(0.10); order[#order + 1] = "slow" end)
      local b = bh.spawn(function() bh.sleep(0.02); order[#order + 1] = "fast" end)
      a:wait()
      b:wait()
    end)
    local dt = bh.now() - t0
    assert.same({ "fast", "slow" }, order)
    assert.is_true(dt >= 0.099, "slept " .. dt)
    assert.is_true(dt < 2, "two sleeps ran concurrently, took " .. dt)
  end)

  it("never wakes before its time by bh.now, even while the loop is busy", function()
    -- A task that spins 3 ms per turn makes the loop's view of time stale;
    -- each sleep re-checks its deadline, so none may end early.
    local early, runs = {}, 0
    bh.run(function()
      local stop = false
      local busy = bh.spawn(function()
        while not stop do
          local t = bh.now()
          while bh.now() - t < 0.003 do end
          bh.sleep(0)
        end
      end)
      for i = 1, 40 do
        local d = 0.002 + (i % 7) * 0.001
        local t0 = bh.now()
        bh.sleep(d)
        local dt = bh.now() - t0
        runs = runs + 1
        if dt < d then early[#early + 1] = string.format("%.4f < %.4f", dt, d) end
      end
      stop = true
      busy:wait()
    end)
    assert.equal(40, runs)
    assert.same({}, early)
  end)

  it("is not starved by a task that yields in a loop", function()
    local turns, slept = 0, false
    bh.run(function()
      local spinner = bh.spawn(function()
        while not slept do turns = turns + 1; coroutine.yield() end
      end)
      bh.sleep(0.05)
      slept = true
      spinner:wait()
    end)
    assert.is_true(slept)
    assert.is_true(turns > 0)
  end)

  it("bh.now is monotonic seconds", function()
    local a = bh.now()
    local b = bh.now()
    assert.equal("number", type(a))
    assert.is_true(b >= a)
  end)

  it("raises a clear error outside a task", function()
    assert.has_error(function() bh.sleep(0.01) end,
      "bh.sleep must be called from a task; wrap your code in bh.run")
  end)

  it("raises from a coroutine nested in a task", function()
    local ok, err = pcall(bh.run, function()
      coroutine.wrap(function() bh.sleep(0) end)()
    end)
    assert.is_false(ok)
    assert.matches("bh.sleep must be called from a task, not from a coroutine", err)
  end)

  it("checks its argument", function()
    local ok, err = pcall(bh.run, function() bh.sleep(-1) end)
    assert.is_false(ok)
    assert.matches("task_spec.lua:%d+: bad argument #1 to 'bh.sleep' %(seconds must be a "
      .. "number in %[0, 1000000000%], got %-1%)", err)
    ok, err = pcall(bh.run, function() bh.sleep("x") end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'bh.sleep' %(seconds must be a number in %[0, "
      .. "1000000000%], got string%)", err)
    ok, err = pcall(bh.run, function() bh.sleep(0 / 0) end)
    assert.is_false(ok)
    assert.matches("'bh.sleep' %(seconds must be a number in %[0, 1000000000%], got nan%)", err)
  end)
end)

describe("bh.map", function()
  it("returns results in order, with at most N in flight", function()
    local in_flight, max_in_flight = 0, 0
    local items = {}
    for i = 1, 50 do items[i] = i end
    local results = bh.run(function()
      return bh.map(items, function(item, i)
        assert.equal(item, i)
        in_flight = in_flight + 1
        max_in_flight = math.max(max_in_flight, in_flight)
        bh.sleep(0.001 * (i % 5))
        in_flight = in_flight - 1
        return item * 10
      end, { concurrency = 7 })
    end)
    assert.equal(7, max_in_flight)
    assert.equal(50, results.n)
    for i = 1, 50 do assert.equal(i * 10, results[i]) end
  end)

  it("keeps nil, err results in place", function()
    local results, errs = bh.run(function()
      return bh.map({ "a", "b", "c" }, function(item)
        if item == "b" then return nil, { code = "timeout" } end
        return item:upper()
      end)
    end)
    assert.equal("A", results[1])
    assert.is_nil(results[2])
    assert.equal("C", results[3])
    assert.equal("timeout", errs[2].code)
    assert.is_nil(errs[1])
  end)

  it("handles 10,000 items", function()
    local items = {}
    for i = 1, 10000 do items[i] = i end
    local results = bh.run(function()
      return bh.map(items, function(x) bh.sleep(0); return x + 1 end, { concurrency = 64 })
    end)
    assert.equal(10000, results.n)
    assert.equal(2, results[1])
    assert.equal(10001, results[10000])
  end)

  it("propagates an error raised by fn", function()
    local ok, err = pcall(bh.run, function()
      return bh.map({ 1, 2, 3 }, function(x)
        if x == 2 then error("bad item") end
        return x
      end)
    end)
    assert.is_false(ok)
    assert.matches("bad item", err)
  end)

  it("checks its arguments and that it runs in a task", function()
    assert.has_error(function() bh.map({}, function() end) end,
      "bh.map must be called from a task; wrap your code in bh.run")
    assert.has_error(function() bh.map(1, function() end) end,
      "bad argument #1 to 'bh.map' (table expected, got number)")
    assert.has_error(function() bh.map({}, 1) end,
      "bad argument #2 to 'bh.map' (function expected, got number)")
    assert.has_error(function() bh.map({}, print, { concurrency = 0 }) end,
      "bh.map: option 'concurrency' must be an integer in [1, 100000], got 0")
    assert.has_error(function() bh.map({}, print, { concurency = 2 }) end,
      "bh.map: unknown option 'concurency'")
  end)
end)

describe("signals (through the bhprobe-lua host)", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  -- Runs the script under the host, sends sig once the socket exists (and
  -- the busy task had time to start), returns the exit status and stderr.
  local function run_and_signal(script, sig)
    local bin = assert(os.getenv("BH_BIN"), "BH_BIN must be set (scripts/env)")
    H.spit(dir .. "/s.lua", script)
    local q = H.q
    local cmd = "cd " .. q(dir) .. " && { " .. q(bin) .. " s.lua 2>err.txt & p=$!; " ..
      "n=0; while [ ! -e s.sock ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done; " ..
      "sleep 0.3; kill -" .. sig .. " $p; wait $p; echo $? > rc.txt; }"
    os.execute(cmd)
    return tonumber(H.slurp(dir .. "/rc.txt")), H.slurp(dir .. "/err.txt")
  end

  it("SIGINT interrupts a task that never yields and unlinks the socket", function()
    local rc, err = run_and_signal([[
      local ep = { namespace_id = "x", path = os.getenv("PWD") .. "/s.sock" }
      local r = assert(bh.respond(ep, bh.identity.current { endpoint = ep }))
      bh.spawn(function() local x = 0; while true do x = x + 1 end end)
      r:wait()
    ]], "INT")
    assert.equal(130, rc)
    -- the message names where the task was looping, once
    assert.matches("^bhprobe%-lua: s%.lua:3: interrupted\nstack traceback:\n%s*s%.lua:3:", err)
    assert.is_nil(err:find("interrupted", err:find("interrupted", 1, true) + 1, true))
    assert.is_false(H.exists(dir .. "/s.sock"))
  end)

  it("SIGTERM stops sleeping tasks and closes responders", function()
    local rc = run_and_signal([[
      local ep = { namespace_id = "x", path = os.getenv("PWD") .. "/s.sock" }
      assert(bh.respond(ep, bh.identity.current { endpoint = ep }))
      bh.spawn(function() bh.sleep(1000) end)
      bh.sleep(1000)
    ]], "TERM")
    assert.equal(143, rc)
    assert.is_false(H.exists(dir .. "/s.sock"))
  end)
end)
