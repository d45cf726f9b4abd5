-- bh.probe, bh.probe_response and handles (design §1.5, §2), against
-- responders in this process and daemons in other lua5.4 processes.
-- labels: probe wire identity proc shutdown hasher respond
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
      -- Made on first use, then the same table; still there once closed.
      local h2 <close> = assert(bh.probe(ep, id, { timeout = 2 }))
      h2:close()
      local t = h2.identity
      assert.same(id, t)
      assert.equal(t, h2.identity)
      assert.equal(h2.timings, h2.timings)
      -- A handle never looked at is collected with its identity (ASan's
      -- leak check sees it freed).
      for _ = 1, 3 do assert(bh.probe(ep, id, { timeout = 2 })):close() end
      collectgarbage()
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

  it("takes a prepared identity and still tells every difference", function()
    with_responder(function(ep, id)
      local p = bh.identity.prepare(id)
      for _ = 1, 3 do
        local h <close>, err = bh.probe(ep, p, { timeout = 2 })
        assert.is_nil(err)
        assert.same(id, h.identity)
        assert.is_true(bh.probe_response(ep, p, { timeout = 2 }))
      end
      local other = H.copy(bh, id)
      other.boot_id = "another-boot"
      local ok, err = bh.probe_response(ep, bh.identity.prepare(other), { timeout = 2 })
      assert.is_nil(ok)
      assert.equal("identity_mismatch", err.code)
      assert.equal("boot_id", err.field)
    end)
  end)

  it("never serves a table's earlier conversion once the table changed", function()
    -- A table is converted once and kept while its fields keep their
    -- values: every change, even deep in ipc_endpoint, is seen.
    with_responder(function(ep, id)
      local t = H.copy(bh, id)
      local function probe(e) return bh.probe_response(e or ep, t, { timeout = 2 }) end
      for _ = 1, 3 do assert.is_true(probe()) end
      local function mismatch(field, change, restore)
        change()
        local ok, err = probe()
        assert.is_nil(ok, field)
        assert.equal("identity_mismatch", err.code)
        assert.equal(field, err.field)
        restore()
        assert.is_true(probe())
      end
      local pid, sha, path = t.pid, t.exe_sha256, t.ipc_endpoint.path
      mismatch("pid", function() t.pid = pid + 1 end, function() t.pid = pid end)
      mismatch("exe_sha256", function() t.exe_sha256 = ("0"):rep(64) end,
        function() t.exe_sha256 = sha end)
      mismatch("ipc_endpoint", function() t.ipc_endpoint.path = path .. "x" end,
        function() t.ipc_endpoint.path = path end)
      mismatch("boot_id", function() t.boot_id = "other" end,
        function() t.boot_id = id.boot_id end)
      -- A new endpoint table with the same values, and a field that comes
      -- from a metatable: converted again, the same identity.
      t.ipc_endpoint = { namespace_id = id.ipc_endpoint.namespace_id, path = path }
      assert.is_true(probe())
      t.exe_sha256 = nil
      setmetatable(t, { __index = { exe_sha256 = sha } })
      assert.is_true(probe())
      getmetatable(t).__index.exe_sha256 = ("1"):rep(64)
      local ok, err = probe()
      assert.is_nil(ok)
      assert.equal("exe_sha256", err.field)
      getmetatable(t).__index.exe_sha256 = sha
      -- An endpoint table is kept the same way: changing its path probes
      -- the new one.
      local e = { namespace_id = ep.namespace_id, path = ep.path }
      assert.is_true(probe(e))
      e.path = ep.path .. ".none"
      ok, err = probe(e)
      assert.is_nil(ok)
      assert.equal("connect", err.code)
      -- to_json reads the table as it is now, too.
      setmetatable(t, nil)
      t.exe_sha256, t.pid = sha, pid + 7
      assert.equal(pid + 7, bh.identity.from_json(bh.identity.to_json(t)).pid)
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

      local dead = H.copy(bh, id)
      dead.pid = 2 ^ 31 - 2
      h, err = bh.probe(ep, dead)
      assert.is_nil(h)
      assert.equal("pid_not_found", err.code)
      assert.equal("verify_pid", err.stage)

      local liar = H.copy(bh, id)
      liar.started_at_unix_ms = id.started_at_unix_ms + 5000 -- not compared
      assert.truthy(bh.probe(ep, liar))
      liar.started_at_unix_ms = 1 -- a record older than its process: reused
      h, err = bh.probe(ep, liar)
      assert.is_nil(h)
      assert.equal("pid_reused", err.code)
      liar.started_at_unix_ms = id.started_at_unix_ms
      liar.boot_id = "another-boot"
      local ok
      ok, err = bh.probe_response(ep, liar)
      assert.is_nil(ok)
      assert.equal("identity_mismatch", err.code)
      assert.equal("boot_id", err.field)
      assert.equal("response", err.stage)
      assert.equal(err.message, tostring(err))
      -- what the peer claimed, whole: an investigation sees both sides
      assert.same(id, err.got)
      -- a failure before any answer has none
      h, err = bh.probe(ep, dead)
      assert.is_nil(h)
      assert.is_nil(err.got)

      -- the pid verifies, nothing answers on its socket: connect, which
      -- proves nothing about the daemon (unreachable, never stale)
      local nobody = H.endpoint(dir, "nobody")
      local noid = H.copy(bh, id)
      noid.ipc_endpoint = nobody
      h, err = bh.probe(nobody, noid)
      assert.is_nil(h)
      assert.equal("connect", err.code)
      assert.equal("unreachable", bh.verdict(err))

      local rel = { namespace_id = "x", path = "relative.sock" }
      ok, err = bh.probe_response(rel, id)
      assert.is_nil(ok)
      assert.equal("invalid_endpoint", err.code)

      local long = { namespace_id = "x", path = "/tmp/" .. string.rep("l", 120) }
      ok, err = bh.probe_response(long, id)
      assert.is_nil(ok)
      assert.equal("invalid_endpoint", err.code)
    end)
  end)

  it("verifies either generation and compares the digests both carry", function()
    with_responder(function(ep, id)
      local gen1, gen2 = H.copy(bh, id), H.copy(bh, id)
      gen1.exe_hash, gen1.exe_hash_algorithm = nil, nil
      gen2.exe_sha256 = nil
      -- our answer carries both: a record of either generation verifies
      assert.truthy(bh.probe(ep, gen1))
      assert.truthy(bh.probe(ep, gen2))
      local wrong = H.copy(bh, gen2)
      wrong.exe_hash = string.rep("ab", 32)
      local ok, err = bh.probe_response(ep, wrong)
      assert.is_nil(ok)
      assert.equal("identity_mismatch", err.code)
      assert.equal("exe_hash", err.field)
    end)
  end)

  it("needs a digest in common with the answer and lists every difference", function()
    bh.run(function()
      local ep = H.endpoint(dir, "gen1")
      local id = assert(bh.identity.current { endpoint = ep })
      local gen1 = H.copy(bh, id)
      gen1.exe_hash, gen1.exe_hash_algorithm = nil, nil
      local lie = H.copy(bh, id)
      lie.exe_path, lie.boot_id = "/elsewhere", "another-boot"
      local answer = gen1
      local r <close> = assert(bh.respond(ep, id, { on_request = function() return answer end }))
      assert.is_false(r.closed)
      local gen2 = H.copy(bh, id)
      gen2.exe_sha256 = nil
      local ok, err = bh.probe_response(ep, gen2) -- a generation-1 answer
      assert.is_nil(ok)
      assert.equal("unsupported_hash_algorithm", err.code)
      assert.truthy(bh.probe_response(ep, id))
      answer = lie
      ok, err = bh.probe_response(ep, id)
      assert.is_nil(ok)
      assert.equal("identity_mismatch", err.code)
      assert.equal("exe_path", err.field)
      assert.same({ "exe_path", "boot_id" }, err.fields)
      assert.matches("also differ: boot_id", err.message)
    end)
  end)

  it("never verifies a squatter replaying the identity of a live process", function()
    -- another process listens and answers with OUR identity (a recorded
    -- one, replayed): pid, executable and answer all check out, but the
    -- peer is not the verified process
    bh.run(function()
      local ep = H.endpoint(dir, "replay")
      local me = assert(bh.identity.current { endpoint = ep })
      local d = H.start_daemon(bh, dir, "replay", { serve = me })
      local h, err = bh.probe(ep, me)
      d.kill("KILL")
      assert.is_nil(h)
      assert.equal("peer_mismatch", err.code)
      assert.equal("impostor", bh.verdict(err))
      assert.matches("not from the verified pid " .. me.pid, err.message)
      -- who answered, and what it claimed (our identity, replayed)
      assert.equal(d.pid, err.peer.pid)
      assert.matches("lua5%.4", err.peer.exe)
      assert.same(me, err.got)
    end)
  end)

  it("never lets another user's squatter turn a probe against an unrelated process #root",
    function()
    -- root probes a record naming root's `sleep`; a process of user nobody
    -- listens on the recorded socket and replays that identity, loading
    -- a copy of bh.so it can reach
    os.execute("chmod 0777 " .. H.q(dir))
    local sleep_pid = H.spawn("/bin/sleep", "1000")
    local ep = H.endpoint(dir, "victim")
    local victim = assert(bh.identity.of_pid(sleep_pid, ep))
    H.spit(dir .. "/victim.json", bh.identity.to_json(victim))
    H.spit(dir .. "/squat.lua", [[
      local bh = require "bh"
      local f = assert(io.open(arg[1])); local id = bh.identity.from_json(f:read("a")); f:close()
      bh.run(function()
        local r = assert(bh.respond(id.ipc_endpoint, id, { mode = 438 }))
        io.open(arg[1] .. ".up", "w"):close()
        r:wait()
      end)]])
    local stage = H.stage { package.searchpath("bh", package.cpath) }
    local cmd = "runuser -u nobody -- env LUA_CPATH=" .. H.q(stage .. "/?.so") ..
      " lua5.4 " .. H.q(dir .. "/squat.lua") .. " " .. H.q(dir .. "/victim.json") ..
      " >/dev/null 2>&1 & echo $!"
    local p = assert(io.popen(cmd))
    local squatter = p:read("l")
    p:close()
    for _ = 1, 100 do
      if H.exists(dir .. "/victim.json.up") then break end
      os.execute("sleep 0.05")
    end
    local h, err = bh.run(function() return bh.probe(ep, victim) end)
    os.execute("kill " .. squatter .. " 2>/dev/null")
    H.rmdir(stage)
    local alive = os.execute("kill -0 " .. sleep_pid .. " 2>/dev/null")
    os.execute("kill " .. sleep_pid .. " 2>/dev/null")
    assert.is_nil(h) -- so there is no handle whose shutdown could signal `sleep`
    assert.equal("peer_mismatch", err.code, err.message)
    assert.is_true(alive)
  end)

  it("hashes a huge new executable off the loop, under the probe's deadline", function()
    -- a 1 GiB (sparse) copy of sleep, the largest hashed: hashing it
    -- takes 0.3 s to a few seconds (BLAKE3 over zero pages on an idle
    -- machine is fast, so the deadline is 0.1 s, which no machine can
    -- hash 1 GiB within); the loop must keep turning meanwhile and the
    -- probe fail with timeout at its deadline
    local exe = dir .. "/bigsleep"
    os.execute("cp /bin/sleep " .. exe .. " && truncate -s 1G " .. exe)
    local pid = H.spawn(exe, "1000")
    local ep = H.endpoint(dir, "big")
    local record = { pid = pid, exe_path = exe, boot_id = bh.boot_id(), ipc_endpoint = ep,
      exe_hash_algorithm = "blake3", exe_hash = string.rep("0", 64) }
    local gaps, h, err = {}, nil, nil
    bh.run(function()
      local ticking = true
      local ticker = bh.spawn(function()
        local last = bh.now()
        while ticking do
          bh.sleep(0.01)
          gaps[#gaps + 1] = bh.now() - last
          last = bh.now()
        end
      end)
      local t0 = bh.now()
      h, err = bh.probe(ep, record, { timeout = 0.1 })
      gaps.probe = bh.now() - t0
      ticking = false
      ticker:wait()
    end)
    os.execute("kill -9 " .. pid)
    assert.is_nil(h)
    assert.equal("timeout", err.code)
    assert.matches("hashing its executable", err.message)
    assert.is_true(gaps.probe < 1.1, "the probe took " .. gaps.probe .. " s")
    table.sort(gaps)
    assert.is_true(gaps[#gaps] < 0.25, "the loop stalled for " .. gaps[#gaps] .. " s")
  end)

  it("refuses an answer larger than max_response at its header", function()
    bh.run(function()
      local ep = H.endpoint(dir, "big")
      local id = assert(bh.identity.current { endpoint = ep })
      local fat = H.copy(bh, id)
      fat.boot_id = ("x"):rep(70000) -- a 70 KB answer
      local r <close> = assert(bh.respond(ep, id, { on_request = function() return fat end }))
      local ok, err = bh.probe_response(ep, fat)
      assert.is_nil(ok)
      assert.equal("frame_too_large", err.code)
      assert.matches("max_response", err.message)
      assert.is_true(bh.probe_response(ep, fat, { max_response = 1 << 20 }))
      assert.has_error(function() bh.probe_response(ep, fat, { max_response = 1 }) end)
      assert.has_error(function() bh.respond(H.endpoint(dir, "x"), id, { max_request = 10 }) end)
      assert.is_false(r.closed)
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
    local bad = H.copy(bh, id)
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
    -- valid options beside a bad one, non-string keys, integers that are
    -- not, and options an __index metamethod supplies are all still seen
    assert.matches("bh.probe_response: unknown option 'tmeout'",
                   msg(function() bh.probe_response(ep, id, { timeout = 1, tmeout = 1 }) end))
    assert.matches("bh.probe_response: options must have string keys, got a number key",
                   msg(function() bh.probe_response(ep, id, { 1 }) end))
    assert.matches("bh.probe_response: option 'max_response' must be an integer in "
                   .. "%[64, %d+%], got 64.5",
                   msg(function() bh.probe_response(ep, id, { max_response = 64.5 }) end))
    assert.matches("bh.probe: option 'owner' must be an integer in %[0, 4294967294%], got %-1",
                   msg(function() bh.probe(ep, id, { owner = -1 }) end))
    assert.matches("bh.probe_response: option 'timeout' must be a number in %(0, 86400%], got 0",
                   msg(function()
                     bh.probe_response(ep, id, setmetatable({}, { __index = { timeout = 0 } }))
                   end))
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
