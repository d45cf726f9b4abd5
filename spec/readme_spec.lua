-- The README's Lua examples run as written (through the real binary,
-- against daemons in other processes): each ```lua block of README.md is
-- matched by its first line to a case below, and a block no case knows
-- fails the test, so a new example needs a way to run it.
-- labels: docs program

local bh = require "bh"
local H = require "helpers"

local README = assert(H.slurp("README.md"), "run from the repository root")
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")

local blocks = {}
for code in README:gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end

-- The block whose first line starts with prefix.
local function block(prefix)
  for _, code in ipairs(blocks) do
    if code:sub(1, #prefix) == prefix then return code end
  end
  error("README.md has no Lua example starting with " .. prefix)
end

local KNOWN = { "-- check_all.lua", "local id = bh.identity.current", "-- all_within.lua" }

describe("README.md's examples", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  local function run(args)
    local _, how, code = os.execute(string.format("cd %s && timeout 60 %s %s >out 2>err",
      H.q(dir), H.q(BIN), args))
    assert.equal("exit", how)
    return code, H.slurp(dir .. "/out"), H.slurp(dir .. "/err")
  end

  -- A live daemon's identity file and a stale copy of it.
  local function records()
    local d = H.start_daemon(bh, dir, "readme")
    local stale = H.copy(bh, d.identity)
    stale.pid = 2 ^ 31 - 2
    H.spit(dir .. "/live.json", bh.identity.to_json(d.identity))
    H.spit(dir .. "/stale.json", bh.identity.to_json(stale))
    return d
  end

  it("are all known to this test", function()
    for _, code in ipairs(blocks) do
      local known = false
      for _, k in ipairs(KNOWN) do known = known or code:sub(1, #k) == k end
      assert.is_true(known, "no case runs the README example:\n" .. code)
    end
  end)

  it("check_all.lua verifies the live record and rejects the stale one", function()
    local d = records()
    H.spit(dir .. "/check_all.lua", block("-- check_all.lua"))
    local rc, out, err = run("check_all.lua live.json stale.json")
    d.kill("KILL")
    assert.equal(0, rc, err)
    assert.equal("live.json\tverified pid " .. d.identity.pid .. "\nstale.json\trejected\n", out)
  end)

  it("the three-line simulator answers one probe and ends", function()
    local sock = dir .. "/d.sock"
    local code = block("local id = bh.identity.current"):gsub("/tmp/d%.sock", sock)
    H.spit(dir .. "/sim.lua", code)
    os.execute(string.format("cd %s && (%s sim.lua >sim.out 2>sim.err & echo $! >pid; wait $!; "
      .. "echo $? >rc) >/dev/null 2>&1 &", H.q(dir), H.q(BIN)))
    for _ = 1, 200 do
      if H.exists(sock) and H.slurp(dir .. "/pid") then break end
      os.execute("sleep 0.05")
    end
    local pid = assert(tonumber(H.slurp(dir .. "/pid"):match("%d+")))
    local ep = { namespace_id = "ns", path = sock }
    local ok, err = bh.run(function()
      local id = assert(bh.identity.of_pid(pid, ep))
      return bh.probe(ep, id, { timeout = 5 })
    end)
    assert.is_truthy(ok, tostring(err))
    for _ = 1, 200 do
      if (H.slurp(dir .. "/rc") or ""):match("%d") then break end
      os.execute("sleep 0.05")
    end
    assert.equal("0", H.slurp(dir .. "/rc"):match("%d+"), H.slurp(dir .. "/sim.err"))
    assert.is_false(H.exists(sock))
  end)

  it("all_within.lua probes the records together under one deadline", function()
    local d = records()
    H.spit(dir .. "/all_within.lua", block("-- all_within.lua"))
    local rc, out, err = run("all_within.lua live.json stale.json")
    d.kill("KILL")
    assert.equal(0, rc, err)
    assert.equal("live.json\tverified\nstale.json\tpid_not_found\n", out)
  end)
end)
