-- `cmake --install` of the build tree into a DESTDIR, with --prefix /usr
-- (a distribution's layout) and with another prefix: every file lands
-- under the prefix (and /etc for /usr), the systemd unit's ExecStart,
-- policy, EnvironmentFile and Documentation paths follow it and exist,
-- and the installed docs' links work.
-- External tools run with `env -u LD_PRELOAD`: in the sanitized tree the
-- ASan runtime is preloaded for lua5.4, and curl hangs under it.
local H = require "helpers"
local BUILD = assert(os.getenv("BH_BUILD_DIR"), "BH_BUILD_DIR must name the build tree")
local q, slurp = H.q, H.slurp

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

-- Installs into dest with prefix; returns the installed files (paths
-- relative to dest, starting with "/").
local function install(dest, prefix)
  local log = dest .. ".log"
  local ok = os.execute("DESTDIR=" .. q(dest) .. " env -u LD_PRELOAD cmake --install " .. q(BUILD)
    .. " --prefix " .. q(prefix) .. " >" .. q(log) .. " 2>&1")
  assert(ok, "cmake --install failed: " .. tostring(slurp(log)))
  local files = {}
  for _, f in ipairs(lines("cd " .. q(dest) .. " && find . -type f | sort")) do
    files[#files + 1] = f:sub(2)
  end
  return files
end

-- The unit's settings: key -> value (continuation lines joined).
local function unit_settings(path)
  local text = assert(slurp(path)):gsub("\\\n%s*", " ")
  local t = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^(%w+)=(.*)$")
    if k then t[k] = t[k] and (t[k] .. "\n" .. v) or v end
  end
  return t
end

-- Every relative link [text](target) of the markdown files under dir
-- must name a file that exists.
local function check_links(dest, docdir)
  local n = 0
  for _, md in ipairs(lines("cd " .. q(dest .. docdir) .. " && find . -name '*.md'")) do
    local file = dest .. docdir .. "/" .. md:sub(3)
    local here = file:match("^(.*)/")
    for target in assert(slurp(file)):gmatch("%]%(([^)#%s]+)[^)]*%)") do
      if not target:match("^%a+:") then
        n = n + 1
        assert(H.exists(here .. "/" .. target), md .. " links to missing " .. target)
      end
    end
  end
  assert(n > 0, "no links checked")
end

local cases = {
  { prefix = "/usr", etc = "/etc", allowed = { "^/usr/", "^/etc/" } },
  { prefix = "/opt/bhp", etc = "/opt/bhp/etc", allowed = { "^/opt/bhp/" } },
}

describe("cmake --install", function()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rmdir(dir) end)

  for i, c in ipairs(cases) do
    it("with --prefix " .. c.prefix .. " puts everything under it, unit paths included", function()
      local dest = dir .. "/d" .. i
      local files = install(dest, c.prefix)
      for _, f in ipairs(files) do
        local inside = false
        for _, pat in ipairs(c.allowed) do inside = inside or f:match(pat) ~= nil end
        assert(inside, f .. " is outside " .. c.prefix)
      end
      local unit = dest .. c.prefix .. "/lib/systemd/system/bhprobe-lua@.service"
      local u = unit_settings(unit)
      assert.equal("notify", u.Type)
      assert.matches("^%d+s$", u.WatchdogSec)
      local exe, policy = u.ExecStart:match("^(%S+) .* (%S+)/%%i%.lua %$BHPROBE_ARGS$")
      assert.equal(c.prefix .. "/bin/bhprobe-lua", exe)
      assert.equal(c.etc .. "/bhprobe-lua/policies", policy)
      assert.is_true(os.execute("test -x " .. q(dest .. exe)))
      assert.truthy(slurp(dest .. policy .. "/manifests.lua"), "no manifests.lua policy")
      assert.equal("-" .. c.etc .. "/default/bhprobe-lua-%i", u.EnvironmentFile)
      local doc = u.Documentation:match("^file:(.*)$")
      assert.truthy(slurp(dest .. doc), "Documentation= names a missing file")
      local docdir = c.prefix .. "/share/doc/bhprobe-lua"
      for _, name in ipairs({ "README.md", "docs/design.md", "docs/lua-api.md",
        "docs/operations.md", "docs/hostile-peers.md", "docs/hacking.md", "docs/bench.md" }) do
        assert.truthy(slurp(dest .. docdir .. "/" .. name), name .. " not installed")
      end
      check_links(dest, docdir)
      -- systemd's own check of the unit, with its paths moved into dest.
      if os.execute("command -v systemd-analyze >/dev/null") then
        local copy = dir .. "/bhprobe-lua@manifests.service"
        local from = c.prefix:gsub("%p", "%%%0") .. "/bin/"
        local to = (dest .. c.prefix .. "/bin/"):gsub("%%", "%%%%")
        local text = assert(slurp(unit)):gsub(from, to)
        H.spit(copy, text)
        local out = dir .. "/verify.out"
        local ok = os.execute("env -u LD_PRELOAD systemd-analyze verify " .. q(copy)
          .. " >" .. q(out) .. " 2>&1")
        assert(ok, "systemd-analyze verify: " .. tostring(slurp(out)))
      end
    end)
  end
end)
