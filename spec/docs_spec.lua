-- docs/lua-api.md documents the whole bh module: every function and field
-- of the bh table (walked here, so a new name fails this test until the
-- page mentions it: add a line about it, in the section where a user
-- would look), every method of its objects, every error code of the core
-- and every reply mode of the responder. The three policies of the tour
-- (§12) are run through the real binary.

local bh = require "bh"
local H = require "helpers"

local DOC = assert(H.slurp("docs/lua-api.md"), "run from the repository root")
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")

-- Does the page mention name as a whole word (not as the start of a
-- longer name: "bh.probe" is not mentioned by "bh.probe_record")?
local function mentions(name)
  local pat = name:gsub("%p", "%%%0") .. "[^%w_]"
  return (DOC .. "\n"):find(pat) ~= nil
end

-- Every public name of t as prefix.key, sub-tables included (two levels).
local function names(t, prefix, out, depth)
  for k, v in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      local full = prefix .. "." .. k
      out[#out + 1] = full
      if type(v) == "table" and depth > 1 and k ~= "options" and #v == 0 then
        names(v, full, out, depth - 1)
      end
    end
  end
  return out
end

local function undocumented(list)
  local missing = {}
  for _, n in ipairs(list) do
    if not mentions(n) then missing[#missing + 1] = n end
  end
  table.sort(missing)
  return missing
end

-- The quoted names of a C table in a source file ({"name", ...} entries).
local function c_names(path, pattern)
  local out = {}
  for n in assert(H.slurp(path)):gmatch(pattern) do out[#out + 1] = "`" .. n .. "`" end
  return out
end

describe("docs/lua-api.md", function()
  it("mentions every public name of the bh table", function()
    assert.same({}, undocumented(names(bh, "bh", {}, 2)))
    assert.same({}, undocumented { "bh._VERSION", "bh._RUNNING_PROCESS" })
  end)

  it("mentions every method and field of bh's objects", function()
    local reg = debug.getregistry()
    local list = {}
    for mt, prefix in pairs { ["bh.task"] = "task:", ["bh.handle"] = "h:",
                              ["bh.responder"] = "r:" } do
      local m = reg[mt].methods or reg[mt].__index
      for k in pairs(m) do list[#list + 1] = prefix .. k end
    end
    for k in pairs(getmetatable(bh.threshold()).__index) do
      if k:sub(1, 2) ~= "__" then list[#list + 1] = "t:" .. k end
    end
    for _, f in ipairs { "h.identity", "h.peer_pid", "h.elapsed", "h.timings",
                         "err.timings", "err.code", "err.stage", "err.message", "err.field",
                         "r.served", "r.rejected", "r.closed", "r.endpoint", "t.state",
                         "t.successes", "t.failures", "req.request_id", "req.nonce",
                         "results.n" } do
      list[#list + 1] = f
    end
    assert.same({}, undocumented(list))
  end)

  it("lists every error code of the core", function()
    local codes = c_names("src/core/status.c", '%] = {"([%w_]+)", "[%w_]+"}')
    assert.is_true(#codes > 20)
    local missing = {}
    for _, c in ipairs(codes) do
      if c ~= "`ok`" and not DOC:find(c, 1, true) then missing[#missing + 1] = c end
    end
    assert.same({}, missing)
  end)

  it("lists every reply mode of the responder", function()
    local modes = c_names("src/core/hostile.c", '%] = {"([%w_]+)", "[%w_]+"}')
    assert.is_true(#modes > 20)
    for _, m in ipairs { "normal", "drop", "silent", "trickle", "raw" } do
      modes[#modes + 1] = "`" .. m .. "`"
    end
    local missing = {}
    for _, m in ipairs(modes) do
      if not DOC:find("| " .. m .. " |", 1, true) then missing[#missing + 1] = m end
    end
    assert.same({}, missing)
  end)
end)

-- The tour's policies: each ```lua block starting "-- tour/NAME" is
-- written to NAME and run by the case of that name.
describe("the tour's policies", function()
  local blocks = {}
  for code in DOC:gmatch("```lua\n(.-)```") do
    local name = code:match("^%-%- tour/([%w_]+%.lua)")
    if name then blocks[name] = code end
  end

  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  local function policy(name)
    assert.is_truthy(blocks[name], "the tour has no " .. name)
    H.spit(dir .. "/" .. name, blocks[name])
    return name
  end

  local function run(args)
    local _, how, code = os.execute(string.format("cd %s && timeout 60 %s %s >out 2>err",
      H.q(dir), H.q(BIN), args))
    assert.equal("exit", how)
    return code, H.slurp(dir .. "/out"), H.slurp(dir .. "/err")
  end

  it("has a case for each policy", function()
    local n = 0
    for name in pairs(blocks) do
      n = n + 1
      assert.is_truthy(({ ["check_one.lua"] = 1, ["watch_all.lua"] = 1,
                          ["simulate.lua"] = 1 })[name], "no test runs tour/" .. name)
    end
    assert.equal(3, n)
  end)

  it("check_one.lua verifies a live daemon and rejects a stale record", function()
    local d = H.start_daemon(bh, dir, "live")
    local stale = H.copy(bh, d.identity)
    stale.pid = 2 ^ 31 - 2
    H.spit(dir .. "/live.json", bh.identity.to_json(d.identity))
    H.spit(dir .. "/stale.json", bh.identity.to_json(stale))
    local rc, out, err = run(policy("check_one.lua") .. " live.json")
    d.kill("KILL")
    assert.equal(0, rc, err)
    assert.matches("^verified pid %d+ in [%d.]+ ms %(exchange [%d.]+ ms%)\n$", out)
    rc, out = run("check_one.lua stale.json")
    assert.equal(1, rc)
    assert.matches("^stale: pid_not_found", out)
    assert.equal(2, (run("check_one.lua")))
  end)

  it("watch_all.lua reports each state change until SIGTERM", function()
    local d = H.start_daemon(bh, dir, "watched")
    H.spit(dir .. "/w.json", bh.identity.to_json(d.identity))
    policy("watch_all.lua")
    os.execute(string.format("cd %s && (%s watch_all.lua 0.2 w.json >out 2>err & echo $! >pid; "
      .. "wait $!; echo $? >rc) >/dev/null 2>&1 &", H.q(dir), H.q(BIN)))
    local function wait_for(pattern)
      for _ = 1, 300 do
        local s = H.slurp(dir .. "/out") or ""
        if s:find(pattern) then return s end
        os.execute("sleep 0.05")
      end
      error("timed out waiting for " .. pattern .. "; stderr: " .. tostring(H.slurp(dir .. "/err")))
    end
    wait_for('"state":"healthy"')
    d.kill("KILL")
    local out = wait_for('"state":"unhealthy"')
    -- gone (pid_not_found), or a zombie nobody reaped yet (exe_path)
    assert.matches('"code":"[%w_]+","file":"w.json","state":"unhealthy"', out)
    local pid = H.slurp(dir .. "/pid"):match("%d+")
    os.execute("kill -TERM " .. pid)
    for _ = 1, 200 do
      if (H.slurp(dir .. "/rc") or ""):match("%d") then break end
      os.execute("sleep 0.05")
    end
    assert.equal("143", H.slurp(dir .. "/rc"):match("%d+"))
  end)

  it("simulate.lua sees each behaviour get its verdict", function()
    local rc, out, err = run(policy("simulate.lua") .. " " .. H.q(dir))
    assert.equal(0, rc, (out or "") .. (err or ""))
    assert.matches("normal%s+verified", out)
    assert.matches("slow%s+verified", out)
    assert.matches("silent%s+unreachable%s+timeout", out)
    assert.matches("wrong_nonce%s+impostor", out)
    assert.matches("served 4, rejected 2", out) -- hostile answers are sent in full
  end)
end)
