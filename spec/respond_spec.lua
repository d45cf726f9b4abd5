-- bh.respond and responders (design §1.4, §2).
-- labels: respond hostile wire probe
local bh = require "bh"
local H = require "helpers"

describe("bh.respond", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  local function me(ep) return assert(bh.identity.current { endpoint = ep }) end

  it("serves probes, counts them and closes after count", function()
    local ep = H.endpoint(dir)
    local served = bh.run(function()
      local id = me(ep)
      local r = assert(bh.respond(ep, id, { count = 2 }))
      assert.matches("^bh.responder %(open ", tostring(r))
      assert.is_true(H.exists(ep.path))
      assert.is_true(bh.probe_response(ep, id))
      assert.is_false(r.closed)
      assert.is_true(bh.probe_response(ep, id))
      assert.is_true(r:wait())
      assert.is_true(r.closed)
      assert.is_false(H.exists(ep.path))
      return r.served
    end)
    assert.equal(2, served)
  end)

  it("r:wait yields until r:close from another task; close is idempotent", function()
    local ep = H.endpoint(dir)
    local order = {}
    bh.run(function()
      local r = assert(bh.respond(ep, me(ep)))
      bh.spawn(function() bh.sleep(0.02); order[#order + 1] = "close"; r:close(); r:close() end)
      assert.is_true(r:wait())
      order[#order + 1] = "woken"
      assert.is_true(r:wait())
    end)
    assert.same({ "close", "woken" }, order)
    assert.is_false(H.exists(ep.path))
  end)

  it("is closed (and its socket unlinked) when the run ends", function()
    local ep = H.endpoint(dir)
    local r = bh.run(function() return assert(bh.respond(ep, me(ep))) end)
    assert.is_true(r.closed)
    assert.is_false(H.exists(ep.path))
    assert.equal(0, r.served)
    r:close()
  end)

  it("closes at the end of a <close> scope", function()
    local ep = H.endpoint(dir)
    bh.run(function()
      do
        local r <close> = assert(bh.respond(ep, me(ep)))
        assert.is_false(r.closed)
        assert.is_true(H.exists(ep.path))
      end
      assert.is_false(H.exists(ep.path))
    end)
  end)

  it("returns in_use and invalid_endpoint", function()
    local ep = H.endpoint(dir)
    bh.run(function()
      local id = me(ep)
      local r = assert(bh.respond(ep, id))
      local r2, err = bh.respond(ep, id)
      assert.is_nil(r2)
      assert.equal("in_use", err.code)
      assert.equal("respond", err.stage)
      r:close()
      local long = { namespace_id = "x", path = dir .. "/" .. string.rep("l", 120) }
      r2, err = bh.respond(long, id)
      assert.is_nil(r2)
      assert.equal("invalid_endpoint", err.code)
    end)
  end)

  it("passes each request to on_request and follows its answer", function()
    local ep = H.endpoint(dir)
    local reqs = {}
    local mode = "normal"
    bh.run(function()
      local id = me(ep)
      local liar = H.copy(bh, id)
      liar.exe_path = "/usr/bin/not-me"
      local r = assert(bh.respond(ep, id, {
        on_request = function(req)
          reqs[#reqs + 1] = req
          if mode == "drop" then return "drop" end
          if mode == "liar" then return liar end
          return nil
        end,
      }))
      assert.is_true(bh.probe_response(ep, id))
      mode = "liar"
      local ok, err = bh.probe_response(ep, id)
      assert.is_nil(ok)
      assert.equal("identity_mismatch", err.code)
      assert.equal("exe_path", err.field)
      mode = "drop"
      ok, err = bh.probe_response(ep, id)
      assert.is_nil(ok)
      assert.equal("io", err.code)
      assert.equal(2, r.served)
      assert.equal(1, r.rejected)
    end)
    assert.equal(3, #reqs)
    assert.matches("^%x+$", reqs[1].nonce)
    assert.equal(64, #reqs[1].nonce)
    assert.equal("", reqs[1].traceparent)
    assert.are_not.equal(reqs[1].nonce, reqs[2].nonce)
    -- request_id: the first 8 nonce bytes as a little-endian u64, in
    -- decimal (a string: a Lua integer would print ids >= 2^63 negative)
    for _, req in ipairs(reqs) do
      local bytes = req.nonce:sub(1, 16):gsub("%x%x", function(h)
        return string.char(tonumber(h, 16))
      end)
      assert.equal(string.format("%u", (string.unpack("<i8", bytes))), req.request_id)
    end
  end)

  it("reports an error in on_request, drops that request and keeps serving", function()
    local ok, out, err = H.lua(dir, [[
      local bh = require "bh"
      local ep = { namespace_id = "s", path = "]] .. H.sock(dir) .. [[" }
      bh.run(function()
        local id = assert(bh.identity.current { endpoint = ep })
        local n = 0
        local r = assert(bh.respond(ep, id, { on_request = function()
          n = n + 1
          if n == 1 then error("hook exploded") end
        end }))
        local _, e = bh.probe_response(ep, id)
        print(e.code)
        print(bh.probe_response(ep, id))
        print(r.served, r.rejected)
      end)
    ]])
    assert.is_true(ok)
    assert.equal("io\ntrue\n1\t1\n", out)
    assert.matches("on_request: .*run.lua:8: hook exploded", err)
    assert.matches("stack traceback:", err)
  end)

  it("raises outside a run and on bad arguments", function()
    local ep = H.endpoint(dir)
    local id = me(ep)
    assert.has_error(function() bh.respond(ep, id) end, "bh.respond must be called inside bh.run")
    local function msg(f)
      local ok, err = pcall(bh.run, f)
      assert.is_false(ok)
      return err
    end
    assert.matches("respond_spec.lua:%d+: bh.respond: option 'count' must be an integer in %[1, "
      .. "9007199254740992%], got 0", msg(function() bh.respond(ep, id, { count = 0 }) end))
    assert.matches("bh.respond: option 'on_request' must be a function, got string",
                   msg(function() bh.respond(ep, id, { on_request = "drop" }) end))
    assert.matches("bad argument #2 to 'bh.respond' %(identity: expected a table, got nil%)",
                   msg(function() bh.respond(ep) end))
    assert.matches("bh.respond: unknown option 'cuont'",
                   msg(function() bh.respond(ep, id, { cuont = 1 }) end))
    assert.matches("bh.respond: option 'timeout' must be a number in %(0, 86400%], got 1000000",
                   msg(function() bh.respond(ep, id, { timeout = 1e6 }) end))
    assert.matches("bh.respond: option 'mode' must be an integer in %[1, 4095%], got 4096",
                   msg(function() bh.respond(ep, id, { mode = 4096 }) end))
    assert.matches("bh.respond: option 'delay' must be a number in %[0, 86400%], got nan",
                   msg(function() bh.respond(ep, id, { delay = 0 / 0 }) end))
    assert.matches("bh.respond: reply: unknown reply mode 'slient'",
                   msg(function() bh.respond(ep, id, { reply = "slient" }) end))
    assert.matches("bh.respond: reply: unknown option 'mdoe'",
                   msg(function() bh.respond(ep, id, { reply = { mdoe = "drop" } }) end))
    assert.matches("bh.respond: reply: mode 'raw' needs bytes = <string>",
                   msg(function() bh.respond(ep, id, { reply = { mode = "raw" } }) end))
  end)
end)

describe("on_request as a task", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  local function me(ep) return assert(bh.identity.current { endpoint = ep }) end
  local function closer(flag)
    return setmetatable({}, { __close = function() flag.closed = true end })
  end

  it("may yield: a slow daemon answers after bh.sleep", function()
    local ep = H.endpoint(dir)
    bh.run(function()
      local id = me(ep)
      local r <close> = assert(bh.respond(ep, id, {
        on_request = function() bh.sleep(0.1) end,
      }))
      local t0 = bh.now()
      assert.is_true(bh.probe_response(ep, id, { timeout = 5 }))
      assert.is_true(bh.now() - t0 >= 0.1)
      assert.equal(1, r.served)
    end)
  end)

  it("may probe: a relay that checks another responder first", function()
    local ep, back = H.endpoint(dir, "front"), H.endpoint(dir, "back")
    bh.run(function()
      local id, bid = me(ep), me(back)
      local b <close> = assert(bh.respond(back, bid))
      local r <close> = assert(bh.respond(ep, id, {
        on_request = function()
          if not bh.probe_response(back, bid) then return "drop" end
        end,
      }))
      assert.is_true(bh.probe_response(ep, id, { timeout = 5 }))
      assert.equal(1, b.served)
      b:close()
      local ok, err = bh.probe_response(ep, id, { timeout = 5 })
      assert.is_nil(ok)
      assert.equal("io", err.code)
      assert.equal(1, r.rejected)
    end)
  end)

  it("is cancelled when the responder's deadline closes the connection", function()
    local ep = H.endpoint(dir)
    local flag, late = {}, false
    bh.run(function()
      local id = me(ep)
      local r <close> = assert(bh.respond(ep, id, {
        timeout = 0.1,
        on_request = function()
          local _ <close> = closer(flag)
          bh.sleep(1)
          late = true
        end,
      }))
      local ok, err = bh.probe_response(ep, id, { timeout = 5 })
      assert.is_nil(ok)
      assert.equal("io", err.code)
      assert.is_true(flag.closed)
      bh.sleep(0.2)
      assert.is_false(late)
      assert.equal(1, r.rejected)
      assert.equal(0, r.served)
    end)
  end)

  it("is cancelled when the prober gives up and closes", function()
    local ep = H.endpoint(dir)
    local flag = {}
    bh.run(function()
      local id = me(ep)
      local r <close> = assert(bh.respond(ep, id, {
        on_request = function() local _ <close> = closer(flag); bh.sleep(30) end,
      }))
      local ok, err = bh.probe_response(ep, id, { timeout = 0.05 })
      assert.is_nil(ok)
      assert.equal("timeout", err.code)
      for _ = 1, 100 do
        if flag.closed then break end
        bh.sleep(0.01)
      end
      assert.is_true(flag.closed)
      assert.equal(1, r.rejected)
    end)
  end)

  it("is cancelled when the responder closes, and may close it itself", function()
    local ep = H.endpoint(dir)
    local flag = {}
    bh.run(function()
      local id = me(ep)
      local r = assert(bh.respond(ep, id, {
        on_request = function() local _ <close> = closer(flag); bh.sleep(30) end,
      }))
      local t = bh.spawn(bh.probe_response, ep, id, { timeout = 5 })
      bh.sleep(0.05)
      r:close()
      assert.is_true(flag.closed)
      local ok, err = t:wait()
      assert.is_nil(ok)
      assert.equal("io", err.code)

      local r2
      r2 = assert(bh.respond(ep, id, { on_request = function()
        r2:close() -- from inside its own task: this request is not answered
        return nil
      end }))
      ok, err = bh.probe_response(ep, id, { timeout = 5 })
      assert.is_nil(ok)
      assert.equal("io", err.code)
      assert.is_true(r2.closed)
    end)
  end)

  it("reports a bad reply, drops that request and keeps serving", function()
    local ok, out, err = H.lua(dir, [[
      local bh = require "bh"
      local ep = { namespace_id = "s", path = "]] .. H.sock(dir) .. [[" }
      bh.run(function()
        local id = assert(bh.identity.current { endpoint = ep })
        local n = 0
        local r = assert(bh.respond(ep, id, { on_request = function()
          n = n + 1
          if n == 1 then return 42 end
          if n == 2 then return { mode = "no_such_mode" } end
        end }))
        print((select(2, bh.probe_response(ep, id))).code)
        print((select(2, bh.probe_response(ep, id))).code)
        print(bh.probe_response(ep, id))
        print(r.served, r.rejected)
      end)
    ]])
    assert.is_true(ok)
    -- Each bad reply drops its request (that probe fails with io, and the
    -- responder counts it rejected); the third request is still answered.
    assert.equal("io\nio\ntrue\n1\t2\n", out)
    assert.matches("on_request: on_request's reply: a reply must be nil, a mode name, an "
      .. "identity or a reply table, got number", err)
    assert.matches("on_request: on_request's reply: unknown reply mode 'no_such_mode'", err)
  end)
end)

describe("reply modes", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  local function me(ep) return assert(bh.identity.current { endpoint = ep }) end

  -- Every hostile answer of docs/hostile-peers.md and the code a prober
  -- gives for it.
  local HOSTILE = {
    bad_framing = "unsupported_framing_version", too_large = "frame_too_large",
    huge_header = "frame_too_large", garbage = "decode_frame", empty_body = "unexpected_frame",
    truncated = "io", short_payload = "malformed_payload", wrong_nonce = "unexpected_frame",
    wrong_request_id = "unexpected_frame", wrong_kind = "unexpected_frame",
    unknown_kind = "unexpected_frame", wrong_protocol = "unexpected_frame",
    compressed = "unexpected_frame", envelope_0 = "unexpected_frame",
    bad_traceparent = "decode_frame", no_endpoint = "missing_endpoint",
    short_sha256 = "invalid_sha256_length", nul_in_string = "decode_identity",
    bad_utf8 = "decode_identity", zero_tag = "decode_identity",
    unknown_fields = true, twice = true, trailing = true,
    drop = "io", silent = "timeout", trickle = "timeout", normal = true,
  }

  it("each mode, from on_request and as the responder's reply", function()
    local ep = H.endpoint(dir)
    local got = {}
    bh.run(function()
      local id = me(ep)
      local mode
      local r <close> = assert(bh.respond(ep, id, { on_request = function() return mode end }))
      for m, want in pairs(HOSTILE) do
        mode = m
        local ok, err = bh.probe_response(ep, id, { timeout = 0.3 })
        got[m] = ok or err.code
        assert.equal(want, got[m], m)
      end
      r:close()
      local _ <close> = assert(bh.respond(ep, id, { reply = "wrong_kind" }))
      local ok, err = bh.probe_response(ep, id)
      assert.is_nil(ok)
      assert.equal("unexpected_frame", err.code)
    end)
  end)

  it("raw bytes, a lie with a delay, a slow trickle", function()
    local ep = H.endpoint(dir)
    bh.run(function()
      local id = me(ep)
      local liar = H.copy(bh, id)
      liar.pid = liar.pid + 1
      local reply
      -- The trickle below takes a loop tick (4 ms) per byte of a ~250-byte
      -- answer: the connection gets more than the default second for it.
      local _ <close> = assert(bh.respond(ep, id, {
        on_request = function() return reply end, timeout = 5,
      }))
      reply = { mode = "raw", bytes = "\2\0\0\0\0" }
      local ok, err = bh.probe_response(ep, id)
      assert.is_nil(ok)
      assert.equal("unsupported_framing_version", err.code)
      reply = { identity = liar, delay = 0.1 }
      local t0 = bh.now()
      ok, err = bh.probe_response(ep, id, { timeout = 5 })
      assert.is_nil(ok)
      assert.equal("identity_mismatch", err.code)
      assert.equal("pid", err.field)
      assert.is_true(bh.now() - t0 >= 0.1)
      reply = { mode = "trickle", interval = 0.001 } -- split into 1-byte writes
      assert.is_true(bh.probe_response(ep, id, { timeout = 5 }))
      reply = liar -- an identity table answers as that identity
      ok, err = bh.probe_response(ep, id)
      assert.is_nil(ok)
      assert.equal("identity_mismatch", err.code)
    end)
  end)

  it("delay holds every answer; tostring and endpoint survive close", function()
    local ep = H.endpoint(dir)
    bh.run(function()
      local id = me(ep)
      local r = assert(bh.respond(ep, id, { delay = 0.1 }))
      local t0 = bh.now()
      assert.is_true(bh.probe_response(ep, id, { timeout = 5 }))
      assert.is_true(bh.now() - t0 >= 0.1)
      r:close()
      assert.matches("^bh.responder %(closed " .. ep.path:gsub("%p", "%%%0") .. "%)", tostring(r))
      assert.equal(ep.path, r.endpoint.path)
    end)
  end)
end)

-- A prepared identity (bh.identity.prepare) as a responder's reply: it is
-- accepted wherever an identity table is, so also where a reply may be an
-- identity (what on_request returns, the reply option).
describe("a prepared identity as a reply", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  it("answers as that identity, returned by on_request or as the reply option", function()
    local ep = H.endpoint(dir)
    bh.run(function()
      local id = assert(bh.identity.current { endpoint = ep })
      local liar = H.copy(bh, id)
      liar.pid = 1
      local p = bh.identity.prepare(liar)
      for _, opts in ipairs { { on_request = function() return p end }, { reply = p } } do
        local r = assert(bh.respond(ep, id, opts))
        local ok, err = bh.probe_response(ep, id)
        assert.is_nil(ok)
        assert.equal("identity_mismatch", err.code)
        assert.equal("pid", err.field)
        r:close()
      end
    end)
  end)

  it("still refuses another userdata", function()
    local ep = H.endpoint(dir)
    bh.run(function()
      local id = assert(bh.identity.current { endpoint = ep })
      assert.has_error(function() bh.respond(ep, id, { reply = io.stdout }) end,
        "bh.respond: reply: a reply must be nil, a mode name, an identity or a reply table, "
        .. "got userdata")
    end)
  end)
end)
