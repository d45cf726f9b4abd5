-- Shared helpers for the busted specs: a temp dir per spec, socket paths
-- short enough for sun_path, and a daemon in a separate lua5.4 process
-- (a responder answering with its own identity) for the tests that need
-- a real other process (shutdown, SIGSTOP'd listeners, verify_pid).
-- Keep it additive: several spec files use it.
local M = {}

-- A fresh directory /tmp/bhs.XXXXXX (short: socket paths must fit 107
-- bytes).
function M.tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/bhs.XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and #dir > 0, "mktemp failed")
  return dir
end

function M.rmdir(dir)
  if dir and dir:match("^/tmp/bhs%.") then os.execute("rm -rf '" .. dir .. "'") end
end

-- Copies files (paths) into a fresh directory that every user may enter
-- and read (0755), for a test that runs them as another uid: the
-- checkout and the build tree may sit under a directory that uid cannot
-- search (root's home is 0700, so is mktemp -d). Returns the directory
-- (remove it with M.rmdir) and the staged paths, in order.
function M.stage(files)
  local dir = M.tmpdir()
  local staged = {}
  assert(os.execute("chmod 0755 '" .. dir .. "'"))
  for i, f in ipairs(files) do
    staged[i] = dir .. "/" .. f:match("[^/]+$")
    assert(os.execute("cp '" .. f .. "' '" .. staged[i] .. "' && chmod a+rX '" .. staged[i] .. "'"),
      "cannot stage " .. f)
  end
  return dir, staged
end

-- A deep copy of an identity (through its JSON form).
function M.copy(bh, id)
  return assert(bh.identity.from_json(bh.identity.to_json(id)))
end

function M.sock(dir, name)
  return dir .. "/" .. (name or "s") .. ".sock"
end

-- An endpoint table for a socket in dir.
function M.endpoint(dir, name)
  return { namespace_id = "spec", path = M.sock(dir, name) }
end

-- os.execute for system tools whose exit status a test relies on. In the
-- sanitized tree every child inherits the ASan runtime lua5.4 is started
-- with (LD_PRELOAD), and its leak check at exit turns a tool that never
-- frees (chown -R) into a failing one; these are not our code.
function M.system(cmd)
  return os.execute("ASAN_OPTIONS=detect_leaks=0; export ASAN_OPTIONS; " .. cmd)
end

-- True when something (a socket too, which io.open cannot open) is at path.
function M.exists(path)
  return os.execute("test -e '" .. path:gsub("'", "'\\''") .. "'") == true
end

function M.slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.spit(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
M.q = q

-- Runs the shell command cmd in the background (sh's `cmd &`) and returns
-- the pid of that background job.
local function background(cmd)
  local p = assert(io.popen(cmd .. " & echo $!"))
  local pid = math.tointeger(tonumber(p:read("l") or ""))
  p:close()
  return assert(pid, "no pid for: " .. cmd)
end

-- The target of /proc/PID/exe, or "" while there is none.
local function exe_of(pid)
  local p = assert(io.popen("readlink /proc/" .. pid .. "/exe 2>/dev/null"))
  local l = p:read("l") or ""
  p:close()
  return l
end

-- Starts `prog args...` in the background (through sh) and returns its pid
-- once the process runs prog (sh's child is still a shell until it has
-- exec'd: an identity taken before then would name the shell).
function M.spawn(prog, args)
  local pid = background(q(prog) .. " " .. (args or "") .. " >/dev/null 2>&1")
  local want = prog:match("[^/]+$")
  for _ = 1, 200 do
    if exe_of(pid):match("[^/]+$") == want then return pid end
    os.execute("sleep 0.01")
  end
  error("process " .. pid .. " did not start " .. prog)
end

-- Runs Lua code in a separate lua5.4 (with the same LUA_CPATH) and returns
-- ok, stdout, stderr.
function M.lua(dir, code)
  local script, out, err = dir .. "/run.lua", dir .. "/out.txt", dir .. "/err.txt"
  M.spit(script, code)
  local ok = os.execute("lua5.4 " .. q(script) .. " >" .. q(out) .. " 2>" .. q(err))
  return ok, M.slurp(out), M.slurp(err)
end

local DAEMON = [[
local bh = require "bh"
local path, serve = arg[1], arg[2]
local ep = { namespace_id = "spec", path = path }
bh.run(function()
  local id = assert(bh.identity.current { endpoint = ep })
  local answer = id
  if serve then -- a squatter: answer with this recorded identity instead
    local f = assert(io.open(serve))
    answer = assert(bh.identity.from_json(f:read("a")))
    f:close()
  end
  local r = assert(bh.respond(answer.ipc_endpoint, answer))
  local f = assert(io.open(path .. ".json.tmp", "w"))
  f:write(bh.identity.to_json(id))
  f:close()
  assert(os.rename(path .. ".json.tmp", path .. ".json"))
  r:wait()
end)
]]

-- Starts a daemon process serving its own identity at M.sock(dir, name).
-- opts.ignore_term: the process ignores SIGTERM; opts.serve: an identity
-- table the process answers with instead of its own (a squatter replaying
-- a recorded identity; it listens at that identity's endpoint). Returns a
-- table {pid=, identity= (its own), endpoint=, kill=function(sig)}.
function M.start_daemon(bh, dir, name, opts)
  opts = opts or {}
  local path = M.sock(dir, name)
  local script = dir .. "/" .. name .. "-daemon.lua"
  M.spit(script, DAEMON)
  local serve = ""
  if opts.serve then
    M.spit(path .. ".serve.json", bh.identity.to_json(opts.serve))
    serve = " " .. q(path .. ".serve.json")
  end
  local trap = opts.ignore_term and "trap '' TERM; " or ""
  local pid = background("sh -c " .. q(trap .. "exec lua5.4 " .. q(script) .. " " .. q(path) ..
                                       serve) .. " >/dev/null 2>" .. q(path .. ".err"))
  for _ = 1, 200 do
    if M.exists(path .. ".json") then break end
    os.execute("sleep 0.05")
  end
  local json = assert(M.slurp(path .. ".json"), "daemon did not start: " ..
                      tostring(M.slurp(path .. ".err")))
  local d = { pid = pid, identity = assert(bh.identity.from_json(json)),
              endpoint = { namespace_id = "spec", path = path } }
  function d.kill(sig) os.execute("kill -" .. (sig or "KILL") .. " " .. pid .. " 2>/dev/null") end
  return d
end

return M
