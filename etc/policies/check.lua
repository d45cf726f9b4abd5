-- check.lua: probe the daemon recorded in an identity JSON file.
--
--   bhprobe-lua etc/policies/check.lua [--timeout SECONDS] IDENTITY.json
--
-- The file holds one identity (design §1.7); its ipc_endpoint is where the
-- daemon listens. Prints the verdict; exits 0 when the daemon is verified,
-- 1 when the probe rejects it (or the file is unreadable), 2 on bad usage.

local USAGE = "usage: bhprobe-lua check.lua [--timeout SECONDS] IDENTITY.json"

local function usage(msg)
  if msg then io.stderr:write("check.lua: ", msg, "\n") end
  io.stderr:write(USAGE, "\n")
  os.exit(2)
end

-- Returns the options and the identity file from the script arguments.
local function parse(args)
  local o = { timeout = 0.5 }
  local i = 1
  while args[i] and args[i]:sub(1, 2) == "--" do
    if args[i] == "--timeout" then
      o.timeout = tonumber(args[i + 1])
      if not o.timeout or o.timeout <= 0 then usage("--timeout needs seconds > 0") end
      i = i + 2
    else
      usage("unknown option " .. args[i])
    end
  end
  if args[i] == nil then usage("no identity file") end
  if args[i + 1] ~= nil then usage("one identity file at a time") end
  o.file = args[i]
  return o
end

local function fail(msg)
  print(string.format("%-9s %s", "ERROR", msg))
  os.exit(1)
end

local o = parse({ ... })
local f, ferr = io.open(o.file)
if not f then fail(ferr) end
local text = f:read("a")
f:close()
local id, jerr = bh.identity.from_json(text)
if not id then fail(o.file .. ": " .. tostring(jerr)) end

local h, err = bh.probe(id.ipc_endpoint, id, { timeout = o.timeout })
if h then
  print(string.format("%-9s pid %d at %s in %.1f ms", "verified", h.identity.pid,
    id.ipc_endpoint.path, h.elapsed * 1000))
  os.exit(0)
end
print(string.format("%-9s %s%s (stage %s): %s", "REJECTED", err.code,
  err.field and ("/" .. err.field) or "", err.stage, err.message))
os.exit(1)
