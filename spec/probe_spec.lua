-- bh.probe, bh.probe_response and handles (DESIGN §1.5, §2), against
-- responders in this process and daemons in other lua5.4 processes.
local bh = require "bh"
local H = require "helpers"

describe("bh.probe", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  -- Runs fn(ep, id) in a run with a responder serving our own identity.
  local function with_responder(fn)
    return bh.run(function()
      local ep = H.endpoint(dir, "self")
      local id = assert(bh.identity.current { endpoint = ep })
      local r <close> = assert(bh.respond(ep, id))
      return fn(ep, id, r)
    end)
  end

  it("verifies a live responder and returns a handle", function()
    with_responder(function(ep, id)
      local h, err = bh.probe(ep, id, { timeout = 2 })
      assert.is_nil(err)
      assert.same(id, h.identity)
      assert.equal(id.pid, h.peer_pid)
      assert.is_true(h.elapsed >= 0 and h.elapsed < 2)
      assert.is_true(h:alive())
      assert.matches("^bh.handle", tostring(h))
      h:close()
      assert.has_error(function() h:alive() end, "handle:alive: the handle is closed")
    end)
  end)

  it("says where the time went: h.timings and err.timings", function()
    with_responder(function(ep, id)
      local h = assert(bh.probe(ep, id, { timeout = 2 }))
      local t = h.timings
      for _, phase in ipairs { "verify", "connect", "exchange" } do
        assert.equal("number", type(t[phase]), phase)
        assert.is_true(t[phase] >= 0, phase)
      end
      assert.is_true(t.verify + t.connect + t.exchange <= h.elapsed)
      local nobody = H.endpoint(dir, "nobody")
      local _, err = bh.probe_response(nobody, id)
      assert.equal("connect", err.code)
      assert.is_number(err.timings.connect)
      assert.is_nil(err.timings.verify)
      assert.is_nil(err.timings.exchange)
    end)
  end)

  it("probe_response returns true", function()
    with_responder(function(ep, id)
      assert.is_true(bh.probe_response(ep, id, { timeout = 2 }))
    end)
  end)

  it("reports each failure with its code and stage", function()
    with_responder(function(ep, id)
      local other = H.endpoint(dir, "other")
      local h, err = bh.probe(other, id)
      assert.is_nil(h)
      assert.equal("endpoint_mismatch", err.code)
      assert.equal("endpoint", err.stage)

      local dead = assert(bh.identity.from_json(bh.identity.to_json(id)))
      dead.pid = 2 ^ 31 - 2
      h, err = bh.probe(ep, dead)
      assert.is_nil(h)
      assert.equal("pid_not_found", err.code)
      assert.equal("verify_pid", err.stage)

      local liar = assert(bh.identity.from_json(bh.identity.to_json(id)))
      liar.started_at_unix_ms = 1 -- not compared
      assert.truthy(bh.probe(ep, liar))
      liar.boot_id = "another-boot"
      local ok
      ok, err = bh.probe_response(ep, liar)
      assert.is_nil(ok)
      assert.equal("identity_mismatch", err.code)
      assert.equal("boot_id", err.field)
      assert.equal("response", err.stage)
      assert.equal(err.message, tostring(err))

      local nobody = H.endpoint(dir, "nobody")
      local noid = assert(bh.identity.from_json(bh.identity.to_json(id)))
      noid.ipc_endpoint = nobody
      h, err = bh.probe(nobody, noid)
      assert.is_nil(h)
      assert.equal("connect", err.code)

      local long = { namespace_id = "x", path = "/tmp/" .. string.rep("l", 120) }
      ok, err = bh.probe_response(long, id)
      assert.is_nil(ok)
      assert.equal("invalid_endpoint", err.code)
    end)
  end)

  it("without verify_pid gives a handle that holds no process", function()
    with_responder(function(ep, id)
      local h = assert(bh.probe(ep, id, { verify_pid = false }))
      assert.same(id, h.identity)
      assert.has_error(function() h:alive() end,
        "handle:alive: the handle holds no process (the probe ran with verify_pid = false)")
    end)
  end)

  it("times out on a listener that never answers", function()
    local d = H.start_daemon(bh, dir, "stopped")
    d.kill("STOP")
    local ok, err = bh.run(function()
      return bh.probe_response(d.endpoint, d.identity, { timeout = 0.2 })
    end)
    d.kill("KILL")
    assert.is_nil(ok)
    assert.equal("timeout", err.code)
  end)

  it("probes thousands of endpoints at once through bh.map", function()
    local n = 2000
    local ok_count = bh.run(function()
      local items, rs = {}, {}
      for i = 1, n do
        items[i] = H.endpoint(dir, "m" .. i)
        local id = assert(bh.identity.current { endpoint = items[i] })
        rs[i] = assert(bh.respond(items[i], id))
        items[i] = { ep = items[i], id = id }
      end
      local results = bh.map(items, function(it)
        local h, err = bh.probe(it.ep, it.id, { timeout = 5 })
        if not h then return nil, err end
        h:close()
        return true
      end, { concurrency = 64 })
      local count = 0
      for i = 1, n do if results[i] then count = count + 1 end end
      for i = 1, n do rs[i]:close() end
      return count
    end)
    assert.equal(n, ok_count)
  end)

  it("raises outside a task and on bad arguments", function()
    local ep = H.endpoint(dir, "x")
    local id = assert(bh.identity.current { endpoint = ep })
    assert.has_error(function() bh.probe(ep, id) end,
      "bh.probe must be called from a task; wrap your code in bh.run")
    assert.has_error(function() bh.probe_response(ep, id) end,
      "bh.probe_response must be called from a task; wrap your code in bh.run")
    local bad = assert(bh.identity.from_json(bh.identity.to_json(id)))
    bad.exe_sha256 = "nothex"
    local function msg(f)
      local ok, err = pcall(bh.run, f)
      assert.is_false(ok)
      return err
    end
    assert.matches("bad argument #2 to 'bh.probe' %(identity.exe_sha256: expected 64 hex digits%)",
                   msg(function() bh.probe(ep, bad) end))
    assert.matches("bad argument #1 to 'bh.probe' %(endpoint.path: expected a string, got nil%)",
                   msg(function() bh.probe({}, id) end))
    assert.matches("probe_spec.lua:%d+: bh.probe: option 'timeout' must be a number in "
                   .. "%(0, 86400%], got 0", msg(function() bh.probe(ep, id, { timeout = 0 }) end))
    assert.matches("bh.probe: option 'timeout' must be a number in %(0, 86400%], got 1000000",
                   msg(function() bh.probe(ep, id, { timeout = 1e6 }) end))
    assert.matches("bh.probe: option 'timeout' must be a number in %(0, 86400%], got %-?nan",
                   msg(function() bh.probe(ep, id, { timeout = 0 / 0 }) end))
    assert.matches("bh.probe: option 'verify_pid' must be a boolean, got number",
                   msg(function() bh.probe(ep, id, { verify_pid = 1 }) end))
    assert.matches("probe_spec.lua:%d+: bh.probe: unknown option 'tmeout'",
                   msg(function() bh.probe(ep, id, { tmeout = 1 }) end))
    assert.matches("bh.probe_response: unknown option 'verify_pid'",
                   msg(function() bh.probe_response(ep, id, { verify_pid = false }) end))
    -- a missing argument is named as missing, not as our own scratch box
    assert.matches("bad argument #2 to 'bh.probe_response' %(identity: expected a table, got nil%)",
                   msg(function() bh.probe_response(ep) end))
    assert.matches("bad argument #2 to 'bh.probe' %(identity: expected a table, got nil%)",
                   msg(function() bh.probe(ep) end))
  end)
end)

describe("handle:shutdown", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  it("stops a verified daemon through its pidfd and waits for the exit", function()
    local d = H.start_daemon(bh, dir, "victim")
    local res = bh.run(function()
      local h = assert(bh.probe(d.endpoint, d.identity, { timeout = 2 }))
      assert.is_true(h:alive())
      local ok, err = h:shutdown(10)
      return { ok = ok, err = err, alive = h:alive() }
    end)
    d.kill("KILL")
    assert.is_true(res.ok, tostring(res.err))
    assert.is_false(res.alive)
  end)

  it("times out on a daemon ignoring SIGTERM, and kills it with {kill = true}", function()
    local d = H.start_daemon(bh, dir, "stubborn", { ignore_term = true })
    local res = bh.run(function()
      local h = assert(bh.probe(d.endpoint, d.identity, { timeout = 2 }))
      local ok, err = h:shutdown(0.2)
      local alive = h:alive()
      local ok2, err2 = h:shutdown(0.2, { kill = true })
      return { ok = ok, err = err, alive = alive, ok2 = ok2, err2 = err2, after = h:alive() }
    end)
    d.kill("KILL")
    assert.is_nil(res.ok)
    assert.equal("timeout", res.err.code)
    assert.equal("shutdown", res.err.stage)
    assert.matches("still running 0.2 s after SIGTERM$", res.err.message)
    assert.is_true(res.alive)
    assert.is_true(res.ok2, tostring(res.err2))
    assert.is_false(res.after)
  end)

  it("raises outside a task", function()
    local d = H.start_daemon(bh, dir, "outside")
    local h = bh.run(function() return assert(bh.probe(d.endpoint, d.identity)) end)
    assert.has_error(function() h:shutdown(1) end,
      "handle:shutdown must be called from a task; wrap your code in bh.run")
    local function msg(f)
      local ok, err = pcall(f)
      assert.is_false(ok)
      return err
    end
    assert.matches("probe_spec.lua:%d+: bad argument #1 to 'handle:shutdown' %(timeout must be a "
      .. "number in %[0, 86400%], got %-1%)", msg(function() h:shutdown(-1) end))
    assert.matches("handle:shutdown: unknown option 'kil'",
      msg(function() h:shutdown(1, { kil = true }) end))
    assert.matches("handle:shutdown: option 'kill' must be a boolean, got number",
      msg(function() h:shutdown(1, { kill = 1 }) end))
    h:close()
    assert.matches("handle:shutdown: the handle is closed", msg(function() h:shutdown(1) end))
    d.kill("KILL")
  end)

  it("is busy while it waits; a cancelled shutdown frees the handle", function()
    local d = H.start_daemon(bh, dir, "busy", { ignore_term = true })
    bh.run(function()
      local h = assert(bh.probe(d.endpoint, d.identity, { timeout = 2 }))
      local t = bh.spawn(function() return h:shutdown(30) end)
      bh.sleep(0.05)
      local ok, err = pcall(h.close, h)
      assert.is_false(ok)
      assert.matches("handle:close: a shutdown of this handle is running", err)
      ok, err = pcall(h.shutdown, h, 1)
      assert.is_false(ok)
      assert.matches("a shutdown of this handle is running", err)
      assert.is_true(t:cancel())
      assert.is_true(h:alive())
      h:close()
      assert.matches("^bh.handle %(closed, pid", tostring(h))
    end)
    d.kill("KILL")
  end)
end)
