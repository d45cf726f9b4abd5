-- The interop matrix against the real running-process (run by
-- scripts/interop, not a test: the peers are not part of this repository).
--   bhprobe-lua scripts/interop.lua REFPEER_DIR
-- REFPEER_DIR holds rp41 (running-process 4.1.0) and rplatest (4.10.6) as
-- command-line peers. Prints one line per check and exits 1 if any check
-- does not give the expected result. Every direction: their probers
-- against our responder, ours against theirs, each one's reader on
-- manifests we wrote and cleared, ours on theirs.
local peers_dir = assert(..., "usage: bhprobe-lua scripts/interop.lua REFPEER_DIR")
local PEERS = { rp41 = peers_dir .. "/rp41", rplatest = peers_dir .. "/rplatest" }
local mktemp = assert(io.popen('mktemp -d "${TMPDIR:-/tmp}/bhinterop.XXXXXX"'))
local dir = assert(mktemp:read("l"), "mktemp failed")
mktemp:close()
local failures = 0

local function check(what, got, want)
  local ok = got == want
  if not ok then failures = failures + 1 end
  print(string.format("%-4s %-62s %s", ok and "ok" or "FAIL", what,
    ok and got or (got .. "   (expected " .. want .. ")")))
end

-- A peer command's first line of output (stdout, else stderr), trimmed.
local function peer(name, ...)
  local argv = { PEERS[name], ... }
  argv.timeout = 10
  local r = assert(bh.exec(argv))
  local out = (r.stdout ~= "" and r.stdout or r.stderr):match("^[^\n]*")
  return out:gsub("%s+$", "")
end

local function slurp(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

-- Wait until path exists (a peer writes its files once it listens).
local function wait_for(path)
  for _ = 1, 200 do
    local f = io.open(path)
    if f then
      f:close()
      return
    end
    bh.sleep(0.02)
  end
  error("no " .. path)
end

local function probe_result(h, err) return h and "verified" or err.code end

-- 1. Their probers against our responder (our identity has both digests).
local ep = { namespace_id = "shared", path = dir .. "/ours.sock" }
local me = assert(bh.identity.current { endpoint = ep, idle_timeout_secs = 600 })
spit(dir .. "/ours.json", bh.identity.to_json(me))
local r = assert(bh.respond(ep, me))
for _, name in ipairs { "rp41", "rplatest" } do
  check(name .. " probe -> our responder",
    peer(name, "probe", "--identity", dir .. "/ours.json"), "ok")
  check(name .. " probe --response-only -> our responder",
    peer(name, "probe", "--identity", dir .. "/ours.json", "--response-only"), "ok")
end

-- 2. Our prober against their responders.
for _, name in ipairs { "rp41", "rplatest" } do
  local sock, idf = dir .. "/" .. name .. ".sock", dir .. "/" .. name .. ".json"
  local mf = dir .. "/" .. name .. "-root/.running-process-manifest.pb"
  os.execute("mkdir -p " .. dir .. "/" .. name .. "-root")
  local t = bh.spawn(function()
    return bh.exec { PEERS[name], "respond", "--socket", sock, "--identity-out", idf,
      "--manifest-out", mf, "--count", "4", timeout = 30 }
  end)
  wait_for(idf)
  local theirs = assert(bh.identity.from_json(slurp(idf)))
  check("our probe -> " .. name .. " responder",
    probe_result(bh.probe(theirs.ipc_endpoint, theirs)), "verified")
  check("our probe_response -> " .. name .. " responder",
    (bh.probe_response(theirs.ipc_endpoint, theirs)) and "ok" or "failed", "ok")
  local m = assert(bh.manifest.read(mf))
  check("our manifest read of " .. name .. "'s manifest",
    m.current_daemon and "ok daemon" or "no daemon", "ok daemon")
  check("our probe of " .. name .. "'s manifest record",
    probe_result(bh.probe(m.current_daemon.ipc_endpoint, m.current_daemon)), "verified")
  if theirs.exe_hash then -- a generation-1 record against a 4.10 daemon's answer
    local gen1 = assert(bh.identity.from_json(slurp(idf)))
    gen1.exe_hash, gen1.exe_hash_algorithm = nil, nil
    check("our probe (gen-1 record) -> " .. name .. " responder",
      probe_result(bh.probe(gen1.ipc_endpoint, gen1)), "verified")
  else
    bh.probe_response(theirs.ipc_endpoint, theirs)
  end
  t:wait()
  -- their daemon is gone now: our --apply clears its record; their reader
  -- must read what we wrote
  local res = bh.exec { arg[-1], "etc/policies/manifests.lua", dir .. "/" .. name .. "-root",
    "--apply", timeout = 30 }
  check("our --apply on " .. name .. "'s stale manifest", res.stdout:match('"verdict":"(%a+)"') or
    "?", "stale")
  check(name .. " read-manifest after our --apply", peer(name, "read-manifest", mf),
    "ok daemon=no host_match=yes")
end

-- 3. Their readers on manifests we write, in each generation.
local base = { service_name = "ours", service_version = "1.0.0", broker_envelope_version = "v1",
  broker_instance = "ours", current_daemon = me }
assert(bh.manifest.write(dir .. "/gen2.pb", base))
assert(bh.manifest.write(dir .. "/gen1.pb", base, { generation = 1 }))
check("rplatest read-manifest of our gen-2 manifest",
  peer("rplatest", "read-manifest", dir .. "/gen2.pb"), "ok daemon=yes host_match=yes")
check("rp41 read-manifest of our gen-1 manifest", peer("rp41", "read-manifest", dir .. "/gen1.pb"),
  "ok daemon=yes host_match=yes")
check("rplatest check-manifest of our gen-2 manifest (live)",
  peer("rplatest", "check-manifest", dir .. "/gen2.pb"), "ok")
check("rp41 check-manifest of our gen-1 manifest (live)",
  peer("rp41", "check-manifest", dir .. "/gen1.pb"), "ok")
-- each real generation reads the other's manifests as corrupt, as it
-- reads its own peer's: ours must be no different
check("rp41 read-manifest of our gen-2 manifest", peer("rp41", "read-manifest", dir .. "/gen2.pb"),
  "err Corruption | manifest self_sha256 mismatch")
check("rplatest read-manifest of our gen-1 manifest",
  peer("rplatest", "read-manifest", dir .. "/gen1.pb"),
  "err Corruption | manifest self_sha256 mismatch")
-- and after our clear_daemon
for _, g in ipairs { "gen1", "gen2" } do
  assert(bh.manifest.clear_daemon(dir .. "/" .. g .. ".pb"))
  local who = g == "gen1" and "rp41" or "rplatest"
  check(who .. " read-manifest of our cleared " .. g .. " manifest",
    peer(who, "read-manifest", dir .. "/" .. g .. ".pb"), "ok daemon=no host_match=yes")
end

r:close()
os.execute("rm -rf '" .. dir .. "'")
print(failures == 0 and "interop: all checks passed" or ("interop: " .. failures .. " FAILED"))
os.exit(failures == 0 and 0 or 1)
