-- check.lua: probe the daemon recorded in an identity JSON file.
--
--   bhprobe-lua etc/policies/check.lua [--timeout DURATION] IDENTITY.json
--
-- The file holds one identity (design §1.7); its ipc_endpoint is where the
-- daemon listens. Prints the verdict; exits 0 when the daemon is verified,
-- 1 when the probe rejects it (or the file is unreadable), 3 on bad usage
-- (checked before anything is probed).

local SPEC = {
  name = "check.lua",
  about = "Probes the daemon an identity file records.",
  args = { name = "IDENTITY.json", key = "files", min = 1, max = 1 },
  options = {
    { "--timeout", "duration", default = 0.5, max = 86400, help = "deadline of the probe" },
  },
  exits = "exit status: 0 verified, 1 rejected or unreadable, 3 usage error",
}

local function fail(msg)
  print(string.format("%-9s %s", "ERROR", msg))
  os.exit(1)
end

local o = bh.cli.parse({ ... }, SPEC)
o.file = o.files[1]
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
