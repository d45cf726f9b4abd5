-- bh.respond and responders (DESIGN §1.4, §2).
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
      local liar = assert(bh.identity.from_json(bh.identity.to_json(id)))
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
    assert.equal("integer", math.type(reqs[1].request_id))
    assert.equal("", reqs[1].traceparent)
    assert.are_not.equal(reqs[1].nonce, reqs[2].nonce)
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
    assert.matches("bad argument #3 to 'respond' %(count must be an integer >= 1%)",
                   msg(function() bh.respond(ep, id, { count = 0 }) end))
    assert.matches("bad argument #3 to 'respond' %(on_request must be a function%)",
                   msg(function() bh.respond(ep, id, { on_request = "drop" }) end))
    assert.matches("bad argument #2 to 'respond' %(identity: expected a table, got nil%)",
                   msg(function() bh.respond(ep) end))
  end)
end)
