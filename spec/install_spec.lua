-- `cmake --install` of the build tree into a DESTDIR, with --prefix /usr
-- (a distribution's layout) and with another prefix: every file lands
-- under the prefix (and /etc, and systemd's unit directory, for /usr), the
-- policies under share/ and /etc only what an operator edits, the
-- systemd unit's paths follow the prefix and exist, the unit runs the
-- override of a policy before the shipped one with the host as its main
-- process, a second install never replaces an edited /etc file, and the
-- installed docs' links work.
-- External tools run with `env -u LD_PRELOAD`: in the sanitized tree the
-- ASan runtime is preloaded for lua5.4, and curl hangs under it.
-- labels: install
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
-- relative to dest, starting with "/") and the install's output.
local function install(dest, prefix)
  local log = dest .. ".log"
  local ok = os.execute("DESTDIR=" .. q(dest) .. " env -u LD_PRELOAD cmake --install " .. q(BUILD)
    .. " --prefix " .. q(prefix) .. " >" .. q(log) .. " 2>&1")
  assert(ok, "cmake --install failed: " .. tostring(slurp(log)))
  local files = {}
  for _, f in ipairs(lines("cd " .. q(dest) .. " && find . -type f | sort")) do
    files[#files + 1] = f:sub(2)
  end
  return files, slurp(log)
end

-- The unit's settings: key -> value (continuation lines joined, as
-- systemd joins them: the backslash and newline become a space).
local function unit_settings(path)
  local text = assert(slurp(path)):gsub("\\\n", " ")
  local t = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^(%w+)=(.*)$")
    if k then t[k] = t[k] and (t[k] .. "\n" .. v) or v end
  end
  return t
end

-- ExecStart's shell script as systemd hands it to /bin/sh for the
-- instance name (the specifier %i replaced, $$ turned into $), and the
-- shell's options (ending in c).
local function exec_script(u, name)
  local shell, flags, script = u.ExecStart:match("^(%S+) (%-%a*c) '([^']*)'$")
  assert(shell == "/bin/sh", "ExecStart is not /bin/sh -...c '...': " .. u.ExecStart)
  return (script:gsub("%%i", name):gsub("%$%$", "$")), flags
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
  { prefix = "/usr", etc = "/etc", allowed = { "^/usr/", "^/etc/", "^/lib/systemd/system/" } },
  { prefix = "/opt/bhp", etc = "/opt/bhp/etc", allowed = { "^/opt/bhp/" } },
}

-- The unit file an install put under dest.
local function find_unit(dest)
  local found = lines("cd " .. q(dest) .. " && find . -name 'bhprobe-lua@.service'")
  assert(#found == 1, "expected one unit file, found " .. #found)
  return dest .. found[1]:sub(2)
end

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
        if f:match("^" .. c.etc:gsub("%p", "%%%0") .. "/") then
          assert.equal(c.etc .. "/bhprobe-lua/default", f, "only the default file goes to etc")
        end
      end
      local share = c.prefix .. "/share/bhprobe-lua/policies"
      for _, name in ipairs({ "check.lua", "demo.lua", "manifests.lua", "watch.lua" }) do
        assert.equal(slurp("etc/policies/" .. name), slurp(dest .. share .. "/" .. name))
      end
      assert.is_true(os.execute("test -d " .. q(dest .. c.etc .. "/bhprobe-lua/policies")))
      for _, rules in ipairs(lines("cd etc && ls prometheus/*.yml 2>/dev/null || true")) do
        assert.equal(slurp("etc/" .. rules),
          slurp(dest .. c.prefix .. "/share/bhprobe-lua/" .. rules))
      end
      local unit = find_unit(dest)
      local u = unit_settings(unit)
      assert.equal("notify", u.Type)
      -- daemons' sockets under /tmp must stay visible to the service
      assert.is_nil(u.PrivateTmp)
      assert.equal("read-only", u.ProtectHome)
      assert.matches("^%d+s$", u.WatchdogSec)
      local script = exec_script(u, "manifests")
      local override, shipped = script:match("for dir in (%S+) (%S+); do")
      assert.equal(c.etc .. "/bhprobe-lua/policies", override)
      assert.equal(share, shipped)
      local exe = script:match("exec (%S+) ")
      assert.equal(c.prefix .. "/bin/bhprobe-lua", exe)
      assert.is_true(os.execute("test -x " .. q(dest .. exe)))
      assert.equal("-" .. c.etc .. "/bhprobe-lua/default\n-" .. c.etc .. "/bhprobe-lua/%i.env",
        u.EnvironmentFile)
      -- Generated at install time: no @NAME@ of the templates is left.
      for _, file in ipairs({ unit, dest .. c.etc .. "/bhprobe-lua/default" }) do
        local text = assert(slurp(file))
        assert.is_nil(text:match("@%u+@"), file .. " keeps a template placeholder")
      end
      assert.matches(c.prefix .. "/share/bhprobe-lua/policies/", assert(slurp(dest .. c.etc
        .. "/bhprobe-lua/default")), 1, true)
      local docs = {}
      for doc in u.Documentation:gmatch("%S+") do docs[#docs + 1] = doc end
      for _, doc in ipairs(docs) do
        local file = doc:match("^file:(.*)$")
        local page, section = doc:match("^man:(.-)%((%d)%)$")
        if page then
          file = c.prefix .. "/share/man/man" .. section .. "/" .. page .. "." .. section
        end
        assert(file, "Documentation= names neither a file nor a man page: " .. doc)
        assert.truthy(slurp(dest .. file), "Documentation= names a missing " .. file)
      end
      local docdir = c.prefix .. "/share/doc/bhprobe-lua"
      for _, name in ipairs({ "README.md", "docs/design.md", "docs/lua-api.md",
        "docs/operations.md", "docs/hostile-peers.md", "docs/hacking.md", "docs/bench.md",
        "examples/default", "examples/logrotate" }) do
        assert.truthy(slurp(dest .. docdir .. "/" .. name), name .. " not installed")
      end
      check_links(dest, docdir)
      -- systemd's own check of the unit, with its paths moved into dest.
      -- --man=no: the man pages it names are in dest, not in man's path.
      if os.execute("command -v systemd-analyze >/dev/null") then
        local copy = dir .. "/bhprobe-lua@manifests.service"
        local from = c.prefix:gsub("%p", "%%%0") .. "/bin/"
        local to = (dest .. c.prefix .. "/bin/"):gsub("%%", "%%%%")
        local text = assert(slurp(unit)):gsub(from, to)
        H.spit(copy, text)
        local out = dir .. "/verify.out"
        local ok = os.execute("env -u LD_PRELOAD systemd-analyze verify --man=no " .. q(copy)
          .. " >" .. q(out) .. " 2>&1")
        assert(ok, "systemd-analyze verify: " .. tostring(slurp(out)))
      end
    end)
  end

  it("again keeps every edited file of etc and replaces the shipped policies", function()
    local dest = dir .. "/again"
    install(dest, "/usr")
    local default = dest .. "/etc/bhprobe-lua/default"
    local edited = assert(slurp(default)) .. 'BHPROBE_OPTS="--listen 127.0.0.1:9464"\n'
    H.spit(default, edited)
    local mine = "-- the operator's own copy\n"
    H.spit(dest .. "/etc/bhprobe-lua/policies/manifests.lua", mine)
    local shipped = dest .. "/usr/share/bhprobe-lua/policies/manifests.lua"
    H.spit(shipped, "-- edited where it must not be\n")
    local _, log = install(dest, "/usr")
    assert.equal(edited, slurp(default))
    assert.equal(mine, slurp(dest .. "/etc/bhprobe-lua/policies/manifests.lua"))
    assert.equal(slurp("etc/policies/manifests.lua"), slurp(shipped))
    assert.matches("Kept: /etc/bhprobe-lua/default", log, 1, true)
    assert.matches("/etc/bhprobe-lua/policies/manifests.lua overrides the installed", log, 1, true)
  end)

  -- Runs the unit's ExecStart script for instance name as systemd would,
  -- with every path moved into dest (and the log and metrics directories
  -- into dir). Returns the exit status, what the policy wrote to out (its
  -- path, pid and arguments) and the pid of the process systemd started.
  local function run_unit(dest, name, env)
    local u = unit_settings(find_unit(dest))
    local script, flags = exec_script(u, name)
    for _, p in ipairs({ "/etc/bhprobe-lua/policies", "/usr/share/bhprobe-lua/policies",
      "/usr/bin/bhprobe-lua" }) do
      script = script:gsub(p:gsub("%p", "%%%0"), ((dest .. p):gsub("%%", "%%%%")))
    end
    os.execute("mkdir -p " .. q(dir .. "/log") .. " " .. q(dir .. "/metrics"))
    script = script:gsub("/var/log/bhprobe%-lua", dir .. "/log")
      :gsub("/var/lib/prometheus/node%-exporter", dir .. "/metrics")
    local pidfile, out = dir .. "/main.pid", dir .. "/policy.out"
    os.remove(out)
    -- The outer sh stands for systemd: it records the pid it forked and
    -- execs the unit's command line, as systemd's child does. It runs in
    -- dir, where a file bb would be what BHPROBE_ARGS' b* globs to.
    H.spit(dir .. "/bb", "")
    local _, _, code = os.execute("cd " .. q(dir) .. " && " .. env .. " POLICY_OUT=" .. q(out)
      .. " env -u LD_PRELOAD sh -c "
      .. q('echo $$ >"$0"; exec /bin/sh ' .. flags .. ' "$1"') .. " " .. q(pidfile) .. " "
      .. q(script)
      .. " >" .. q(dir .. "/unit.out") .. " 2>&1")
    return code, slurp(out), math.tointeger(tonumber(slurp(pidfile)))
  end

  it("runs the policy of /etc before the shipped one, the host as its main pid", function()
    local dest = dir .. "/unit"
    install(dest, "/usr")
    local policy = [[
local f = assert(io.open(os.getenv("POLICY_OUT"), "w"))
local stat = assert(io.open("/proc/self/stat")):read("a")
f:write(arg[0], "\n", stat:match("^%d+"), "\n", table.concat({ ... }, "|"), "\n",
  tostring(x), "\n", bh.options.name, "\n")
f:close()
]]
    local shipped = dest .. "/usr/share/bhprobe-lua/policies/spec-which.lua"
    local override = dest .. "/etc/bhprobe-lua/policies/spec-which.lua"
    H.spit(shipped, policy)
    local env = [[BHPROBE_OPTS='-e x=42' BHPROBE_ARGS='a b* --c']]
    local code, out, pid = run_unit(dest, "spec-which", env)
    assert.equal(0, code, slurp(dir .. "/unit.out"))
    -- the instance name names the series (--name %i)
    assert.equal(table.concat({ shipped, tostring(pid), "a|b*|--c", "42", "spec-which", "" },
      "\n"), out)
    H.spit(override, policy)
    code, out, pid = run_unit(dest, "spec-which", env)
    assert.equal(0, code, slurp(dir .. "/unit.out"))
    assert.equal(table.concat({ override, tostring(pid), "a|b*|--c", "42", "spec-which", "" },
      "\n"), out)
    -- a --name of the operator's own (BHPROBE_OPTS) wins
    code, out = run_unit(dest, "spec-which", [[BHPROBE_OPTS='--name mine']])
    assert.equal(0, code, slurp(dir .. "/unit.out"))
    assert.matches("\nmine\n$", out)
    -- A policy in neither place: the host's usage error, which the unit
    -- does not restart (RestartPreventExitStatus=2).
    code = run_unit(dest, "spec-none", "")
    assert.equal(2, code)
    assert.matches("spec%-none%.lua", slurp(dir .. "/unit.out"))
  end)
end)
