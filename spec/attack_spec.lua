-- Reactions attacked as another local user would (design §1.11): root runs
-- `manifests.lua --apply` over records in directories that user `nobody`
-- owns, while nobody swaps those directories for symlinks to a victim
-- directory as fast as it can (renameat2 RENAME_EXCHANGE), and a daemon
-- re-registers itself while its stale record is being cleaned. Nothing
-- outside the records' own directories may be removed or changed; a
-- record written after the probe is never lost. BH_ATTACK_SECONDS sets how
-- long the symlink race runs (default 4; the closing figures used 30).
-- labels: policy manifest fsutil stale program
local H = require "helpers"
local bh = require "bh"

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local TOOL = assert(os.getenv("BH_BUILD_DIR"), "BH_BUILD_DIR must be set") .. "/spec/race_tool"
local q = H.q

local function sh(cmd)
  local ok = H.system(cmd)
  assert(ok, "failed: " .. cmd)
end

-- A stale record: a pid that does not run, its socket a dead socket file.
local function stale_identity(path)
  local id = assert(bh.identity.current { endpoint = { namespace_id = "atk", path = path } })
  id.pid = 4194001
  return id
end

describe("reactions under attack", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  it("a symlink race by another user changes nothing outside the records #root", function()
    local seconds = tonumber(os.getenv("BH_ATTACK_SECONDS")) or 4
    local n = 300
    local att, victim = dir .. "/att", dir .. "/victim"
    sh("chmod 0755 " .. q(dir) .. " && mkdir -p " .. q(att) .. " " .. q(victim))
    -- the victim: a socket-named regular file, a socket, another daemon's
    -- valid manifest, in a directory only root may write
    H.spit(victim .. "/s.sock", "keep me")
    sh(q(TOOL) .. " sock " .. q(victim .. "/live.sock"))
    local other = stale_identity(victim .. "/s.sock")
    assert(bh.manifest.write(victim .. "/" .. bh.manifest.NAME,
      { service_name = "victim", current_daemon = other }))
    local before = {}
    for _, f in ipairs { "s.sock", bh.manifest.NAME } do before[f] = H.slurp(victim .. "/" .. f) end
    -- the attacker's records: d<i>/ with a stale manifest and socket; l<i>
    -- a symlink to the victim, which the race swaps with d<i>
    local pairs_ = {}
    for i = 1, n do
      local d = att .. "/d" .. i
      sh("mkdir " .. q(d))
      sh(q(TOOL) .. " sock " .. q(d .. "/s.sock"))
      assert(bh.manifest.write(d .. "/" .. bh.manifest.NAME,
        { service_name = "rec" .. i, current_daemon = stale_identity(d .. "/s.sock") }))
      sh("ln -s " .. q(victim) .. " " .. q(att .. "/l" .. i))
      pairs_[#pairs_ + 1] = q(d)
      pairs_[#pairs_ + 1] = q(att .. "/l" .. i)
    end
    sh("chown -R nobody:nogroup " .. q(att))
    -- the race, as nobody, for `seconds`, with a copy of the tool nobody
    -- can reach; root cleans up meanwhile
    local stage, tools = H.stage { TOOL }
    local race = "runuser -u nobody -- " .. q(tools[1]) .. " exchange " .. seconds .. " " ..
      table.concat(pairs_, " ") .. " > " .. q(dir .. "/race.out") .. " 2>&1 &"
    sh(race)
    local rounds, t0 = 0, bh.now()
    while bh.now() - t0 < seconds do
      os.execute(BIN .. " etc/policies/manifests.lua " .. q(att) ..
        " --apply --attempts 1 --max-depth 2 >/dev/null 2>&1")
      rounds = rounds + 1
      -- put the records back for the next round
      for i = 1, n, 7 do
        local sock = att .. "/d" .. i .. "/s.sock"
        os.execute("runuser -u nobody -- " .. q(tools[1]) .. " sock " .. q(sock) .. " 2>/dev/null")
      end
    end
    os.execute("sleep 0.5") -- the race ends by itself
    H.rmdir(stage)
    assert.is_true(rounds >= 1)
    local swaps = tonumber((H.slurp(dir .. "/race.out") or ""):match("(%d+) swaps"))
    assert.is_true(swaps ~= nil and swaps > 0, "the race did not run")
    io.stderr:write(("\n  symlink race: %d s, %d --apply rounds over %d records, %d swaps\n")
      :format(seconds, rounds, n, swaps))
    -- the victim directory is exactly as it was
    for f, bytes in pairs(before) do assert.equal(bytes, H.slurp(victim .. "/" .. f), f) end
    assert.is_true(os.execute("test -S " .. q(victim .. "/live.sock")))
    local listing = io.popen("ls -A " .. q(victim)):read("a")
    assert.equal("\n" .. bh.manifest.NAME .. "\nlive.sock\ns.sock\n",
      "\n" .. listing:gsub("\n$", "") .. "\n")
    assert.truthy(assert(bh.manifest.read(victim .. "/" .. bh.manifest.NAME)).current_daemon)
  end)

  it("a daemon re-registering while its stale record is cleaned is never lost", function()
    local p = dir .. "/" .. bh.manifest.NAME
    local new = assert(bh.identity.current { endpoint = { namespace_id = "atk",
      path = dir .. "/new.sock" } })
    assert(bh.manifest.write(dir .. "/new.pb", { service_name = "new", current_daemon = new }))
    local lost = 0
    for i = 1, 60 do
      assert(bh.manifest.write(p, { service_name = "old",
        current_daemon = stale_identity(dir .. "/old.sock") }))
      -- the daemon's rewrite lands at some moment during the clean-up
      os.execute(q(TOOL) .. " rewrite " .. q(p) .. " " .. q(dir .. "/new.pb") .. " " ..
        (i * 97 % 3000) .. " &")
      os.execute(BIN .. " etc/policies/manifests.lua " .. q(dir) ..
        " --apply --attempts 1 --max-depth 0 >/dev/null 2>&1")
      os.execute("while [ -e " .. q(p .. ".daemon-tmp") .. " ]; do sleep 0.01; done")
      local m = assert(bh.manifest.read(p))
      if not (m.service_name == "new" and m.current_daemon) then lost = lost + 1 end
    end
    assert.equal(0, lost)
  end)
end)
