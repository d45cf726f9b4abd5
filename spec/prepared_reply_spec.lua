-- A prepared identity (bh.identity.prepare) as a responder's reply: it is
-- accepted wherever an identity table is, so also where a reply may be an
-- identity (what on_request returns, the reply option).
local bh = require "bh"
local H = require "helpers"

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
