-- manifests.lua --all-users: one service running as root checks the
-- central registry of every user, each as private to its own user (the
-- user whose home it is in). As root, with real users made for the test
-- (useradd, removed after): a registry that is its user's and private is
-- read and its daemons (run as that user) probed; one open to others,
-- and one owned by another user than the one whose home it is in, are
-- refused and named, as running-process refuses them.
-- labels: policy manifest users probe program
local H = require "helpers"
local P = require "prom"
local bh = require "bh"
local json = require "dkjson"
local q = H.q
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local SUBDIR = "/.local/share/running-process/manifests"

-- The lines of a command's output.
local function lines(cmd)
  local p = assert(io.popen(cmd))
  local t = {}
  for l in p:lines() do t[#t + 1] = l end
  p:close()
  return t
end

describe("bh.manifest.user_registries", function()
  it("lists the registry in the home of every user who owns that home", function()
    local got = bh.run(function() return assert(bh.manifest.user_registries()) end)
    local have = {}
    for _, r in ipairs(got) do
      assert.is_nil(have[r.path], r.path) -- a home counts once
      have[r.path] = { user = r.user, uid = r.uid }
    end
    -- what the user database and the file system say (stat without -L: a
    -- home that is a symbolic link is no directory of its own)
    local want = {}
    for _, l in ipairs(lines("getent passwd")) do
      local user, uid, home = l:match("^([^:]*):[^:]*:(%d+):[^:]*:[^:]*:([^:]*):")
      local st = lines("stat -c '%u %F' " .. q(home) .. " 2>/dev/null")[1]
      if home:sub(1, 1) == "/" and st == uid .. " directory" then
        local path = home:gsub("/+$", "") .. SUBDIR
        want[path] = want[path] or { user = user, uid = tonumber(uid) }
      end
    end
    assert.is_not_nil(next(want)) -- root's /root at least
    assert.same(want, have)
  end)

  it("opens another registry only when it is private to the owner named", function()
    local dir = H.tmpdir()
    local reg = dir .. "/reg"
    os.execute("mkdir -m 0700 " .. q(reg))
    local me = math.tointeger(tonumber(lines("id -u")[1]))
    local r = assert(bh.manifest.open_central{ path = reg, owner = me })
    assert.is_true(r.exists)
    r:close()
    local none, err = bh.manifest.open_central{ path = reg, owner = me + 1 }
    assert.is_nil(none)
    assert.equal("insecure_registry", err.code)
    assert.matches("belongs to uid " .. me .. ", not to uid " .. (me + 1)
      .. " whose home it is in", err.message)
    assert.has_error(function() bh.manifest.open_central{ path = reg, ownr = 1 } end,
      "bh.manifest.open_central: unknown option 'ownr'")
    H.rmdir(dir)
  end)
end)

describe("manifests.lua --all-users", function()
  local dir, tag, users, daemons = nil, nil, {}, {}

  -- A user of the test, with its home in dir (owned by it).
  local function user(suffix)
    local name = "bhs" .. tag .. suffix
    local home = dir .. "/home-" .. suffix
    assert(H.system("mkdir -p " .. q(home) .. " && useradd -M -N -g nogroup -s /usr/sbin/nologin"
      .. " -d " .. q(home) .. " " .. name .. " && chown " .. name .. " " .. q(home)))
    users[#users + 1] = name
    local uid = math.tointeger(tonumber(lines("id -u " .. name)[1]))
    return { name = name, home = home, uid = uid, reg = home .. SUBDIR }
  end

  -- Makes u's registry (mode, owner) with the intermediate directories.
  local function registry(u, mode, owner)
    assert(H.system("mkdir -p " .. q(u.reg) .. " && chown -R " .. u.name .. " "
      .. q(u.home .. "/.local") .. " && chown " .. (owner or u.name) .. " " .. q(u.reg)
      .. " && chmod " .. mode .. " " .. q(u.reg)))
  end

  before_each(function()
    dir = H.tmpdir()
    os.execute("chmod 0755 " .. q(dir))
    tag = dir:match("bhs%.(%w+)$"):lower()
  end)
  after_each(function()
    for _, d in ipairs(daemons) do d.stop() end
    for _, name in ipairs(users) do os.execute("userdel " .. name .. " 2>/dev/null") end
    users, daemons = {}, {}
    P.cleanup()
    H.rmdir(dir)
  end)

  it("checks every user's registry as private to its own user #root", function()
    local a, b, c = user("a"), user("b"), user("c")
    registry(a, "0700")
    registry(b, "0755")            -- open to others: refused
    registry(c, "0700", a.name)    -- in c's home, but a's: refused
    -- a daemon of a's, run as a, recording itself in a's registry; and a
    -- record of a dead daemon next to it
    local stage, staged = H.stage { BIN }
    H.spit(stage .. "/serve.lua", [[
local sock, reg = ...
local ep = { namespace_id = "users", path = sock }
local id = assert(bh.identity.current{ endpoint = ep })
local r = assert(bh.respond(ep, id))
assert(bh.manifest.write(reg .. "/live-1.0.pb", { service_name = "live", current_daemon = id }))
local dead = bh.identity.from_json(bh.identity.to_json(id))
dead.pid = 4194000
dead.ipc_endpoint = { namespace_id = "users", path = sock .. ".dead" }
assert(bh.manifest.write(reg .. "/dead-1.0.pb", { service_name = "dead", current_daemon = dead }))
r:wait()]])
    os.execute("chmod 0644 " .. q(stage .. "/serve.lua"))
    local socks = dir .. "/socks"
    assert(H.system("mkdir -m 0755 " .. q(socks) .. " && chown " .. a.name .. " " .. q(socks)))
    os.execute("mkdir -p " .. q(dir .. "/d"))
    local d = P.background(dir .. "/d", "setpriv --reuid=" .. a.name .. " --regid=nogroup "
      .. "--clear-groups " .. q(staged[1]) .. " " .. q(stage .. "/serve.lua") .. " "
      .. q(socks .. "/a.sock") .. " " .. q(a.reg))
    daemons[#daemons + 1] = d
    P.wait(10, 0.05, function()
      return os.execute("test -f " .. q(a.reg .. "/dead-1.0.pb"))
    end, d.log)
    local rep = dir .. "/r.jsonl"
    local function run(extra)
      os.remove(rep)
      local _, _, code = os.execute(string.format("%s --report %s %s --all-users %s >%s 2>%s",
        q(BIN), q(rep), q(P.POLICY), extra or "", q(dir .. "/out"), q(dir .. "/err")))
      local by = {}
      for l in (H.slurp(rep) or ""):gmatch("[^\n]+") do
        local r = json.decode(l, 1, json.null)
        by[r.manifest] = r
      end
      return code, by, H.slurp(dir .. "/err")
    end
    local code, by, err = run()
    H.rmdir(stage)
    -- a's records, probed on a's behalf
    assert.equal("verified", by[a.reg .. "/live-1.0.pb"].verdict, err)
    assert.equal("stale", by[a.reg .. "/dead-1.0.pb"].verdict)
    -- b's and c's registries: refused, named, the scan incomplete
    assert.matches("manifest registry " .. b.reg:gsub("%p", "%%%0")
      .. " has mode 0755: its group or others may reach it", err)
    assert.matches("manifest registry " .. c.reg:gsub("%p", "%%%0") .. " belongs to uid "
      .. a.uid .. ", not to uid " .. c.uid .. " whose home it is in", err)
    assert.equal(3, code, err)
    -- --apply clears a's stale record through a's registry, keeping its owner
    code, by = run("--apply")
    assert.equal(3, code) -- b's and c's registries are still refused
    assert.is_true(by[a.reg .. "/dead-1.0.pb"].action.cleared)
    assert.equal(tostring(a.uid), lines("stat -c %u " .. q(a.reg .. "/dead-1.0.pb"))[1])
    assert.is_nil(assert(bh.manifest.read(a.reg .. "/dead-1.0.pb")).current_daemon)
    assert.truthy(assert(bh.manifest.read(a.reg .. "/live-1.0.pb")).current_daemon)
  end)
end)
