-- demo.lua: the backend-handle probe's verdicts, with no outside daemon.
--
--   bhprobe-lua etc/policies/demo.lua
--
-- Serves this process's own identity on a socket in a fresh temp dir and
-- probes it (verified), then shows three records the probe must reject:
-- a squatter answering with a lying identity, a stale record whose pid is
-- dead, and a replaced binary whose digest no longer matches. Prints one
-- line per case and exits 0 only when every verdict is the expected one.
-- Takes no options but --help (3 for anything else).

bh.cli.parse({ ... }, {
  name = "demo.lua",
  about = "Shows the probe's verdicts against a responder of its own; needs no daemon.",
  exits = "exit status: 0 when every verdict is the expected one, 1 otherwise",
})

local dir = assert(io.popen('mktemp -d "${TMPDIR:-/tmp}/bhdemo.XXXXXX"')):read("l")
assert(dir and dir ~= "", "mktemp -d failed")

local function endpoint(name)
  return { namespace_id = "bhdemo", path = dir .. "/" .. name .. ".sock" }
end

-- A shallow copy of an identity with some fields replaced.
local function with(id, changes)
  local t = {}
  for k, v in pairs(id) do t[k] = v end
  for k, v in pairs(changes) do t[k] = v end
  return t
end

-- A pid that surely belongs to no process: a shell that has already exited.
local function dead_pid()
  local p = assert(io.popen("sh -c 'echo $$'"))
  local pid = math.tointeger(tonumber(p:read("l")))
  p:close()
  return pid
end

-- The same digest with its first hex digit changed.
local function flip_digest(hex)
  local first = hex:sub(1, 1) == "0" and "1" or "0"
  return first .. hex:sub(2)
end

-- Probes one record, prints its verdict line, and says whether it is the
-- expected one (expect: nil for verified, else the error code).
local function case(name, ep, expected, expect)
  local h, err = bh.probe(ep, expected, { timeout = 1 })
  local line
  if h then
    line = string.format("%-9s %-10s pid %d in %.1f ms", "verified", name,
      h.identity.pid, h.elapsed * 1000)
  else
    local detail = err.field and (" (" .. err.field .. ")") or ""
    line = string.format("%-9s %-10s %s%s: %s", "REJECTED", name, err.code, detail,
      err.message)
  end
  local got = err and err.code or nil
  local good = got == expect
  if not good then
    line = line .. string.format("   <- UNEXPECTED, wanted %s", expect or "verified")
  end
  print(line)
  return good
end

local responders = {}
local all_good = true

local function run_cases()
  -- 1. ourselves, honestly: every check passes.
  local self_ep = endpoint("self")
  local me = bh.identity.current{ endpoint = self_ep }
  responders[#responders + 1] = bh.respond(self_ep, me)
  all_good = case("self", self_ep, me, nil) and all_good

  -- 2. a squatter: the record is right, but whoever listens on the socket
  -- answers with another identity (here: another executable path).
  local sq_ep = endpoint("squatter")
  local record = bh.identity.current{ endpoint = sq_ep }
  local lie = with(record, { exe_path = "/usr/local/bin/not-the-daemon" })
  responders[#responders + 1] = bh.respond(sq_ep, lie)
  all_good = case("squatter", sq_ep, record, "identity_mismatch") and all_good

  -- 3. a stale record: the daemon it names has exited.
  local stale = with(me, { pid = dead_pid() })
  all_good = case("stale", self_ep, stale, "pid_not_found") and all_good

  -- 4. a replaced binary: the pid and path are live, the digest is not the
  -- recorded one.
  local replaced = with(me, { exe_sha256 = flip_digest(me.exe_sha256) })
  all_good = case("replaced", self_ep, replaced, "exe_sha256_mismatch") and all_good
end

local ok, err = pcall(run_cases)
for _, r in ipairs(responders) do r:close() end
for _, name in ipairs{ "self", "squatter" } do os.remove(endpoint(name).path) end
os.remove(dir)
if not ok then error(err, 0) end
os.exit(all_good and 0 or 1)
