-- bh.manifest.* with real files in a temp dir and the manifests of the real
-- running-process (spec/fixtures): the whole schema, seals and their
-- verdicts, generations, byte-exact rewrites and clears, the guarded
-- clear_daemon, owner and mode kept, symlinks refused, the central
-- registry, foreign hosts.
-- labels: manifest host identity
local H = require "helpers"
local bh = require "bh"

local ID = { pid = 42, exe_path = "/usr/bin/d", exe_sha256 = string.rep("0f", 32), boot_id = "b",
  ipc_endpoint = { namespace_id = "ns", path = "/run/d.sock" }, started_at_unix_ms = 7,
  exe_hash_algorithm = "blake3", exe_hash = string.rep("1e", 32) }

local function fixture(g, name) return "spec/fixtures/" .. g .. "/" .. name end

describe("bh.manifest", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  it("writes sealed manifests and reads back every field", function()
    local p = dir .. "/" .. bh.manifest.NAME
    assert.is_true(bh.manifest.write(p, { service_name = "s", service_version = "1",
      broker_instance = "i", created_at_unix_ms = 5, last_active_unix_ms = 6,
      provides = { "a", "b" }, roots = { { path = "/c", kind = "CACHE_DATA",
        labels = { z = "1", a = "2" } } }, current_daemon = ID }))
    local m = assert(bh.manifest.read(p))
    assert.equal(1, m.manifest_schema_version)
    assert.equal(bh.manifest.MEDIA_TYPE, m.media_type)
    assert.matches("^%x+$", m.self_sha256)
    assert.equal(64, #m.self_sha256)
    assert.equal(assert(bh.machine_id()), m.host.machine_id) -- filled in
    assert.equal(bh.boot_id(), m.host.boot_id)
    assert.same({ "a", "b" }, m.provides)
    assert.same({ path = "/c", kind = "CACHE_DATA", labels = { z = "1", a = "2" },
      estimated_size_bytes = 0, disposition = "PRUNE_ON_UNINSTALL" }, m.roots[1])
    -- both digests given: written as generation 2, which has no SHA-256
    local want = H.copy(bh, ID)
    want.exe_sha256 = nil
    assert.same(want, m.current_daemon)
    assert.equal("s", m.service_name)
    assert.equal(5, m.created_at_unix_ms)
    -- generation 1 on request
    assert.is_true(bh.manifest.write(p, { current_daemon = ID }, { generation = 1 }))
    local old = assert(bh.manifest.read(p)).current_daemon
    assert.equal(ID.exe_sha256, old.exe_sha256)
    assert.is_nil(old.exe_hash)
  end)

  it("reads, rewrites and clears the real manifests byte for byte", function()
    for _, g in ipairs { "rp41", "rplatest" } do
      local m = assert(bh.manifest.read(fixture(g, "manifest-with-daemon.pb")))
      local id = assert(bh.identity.from_json(H.slurp(fixture(g, "identity-project.json"))))
      -- a generation-2 record has no SHA-256 (the daemon's answer does)
      if g == "rplatest" then id.exe_sha256 = nil end
      assert.same(id, m.current_daemon)
      assert.equal("refpeer", m.service_name)
      assert.equal("3d1219c7c4c5404aaa1f6d2a48adfda4", m.host.machine_id)
      -- writing back what was read gives the same bytes (our encoding is
      -- the original's, so the seal is too)
      local p = dir .. "/" .. g .. ".pb"
      assert.is_true(bh.manifest.write(p, m))
      assert.equal(H.slurp(fixture(g, "manifest-with-daemon.pb")), H.slurp(p), g)
      -- clearing it gives exactly what the original clear gives
      assert.is_true(bh.manifest.clear_daemon(p, { only_if = id }))
      assert.equal(H.slurp(fixture(g, "manifest-cleared.pb")), H.slurp(p), g)
      assert.is_nil(assert(bh.manifest.read(p)).current_daemon)
    end
  end)

  it("refuses what the real readers refuse, and never rewrites it", function()
    local good = H.slurp(fixture("rplatest", "manifest-with-daemon.pb"))
    local function read(bytes, opts)
      H.spit(dir .. "/m.pb", bytes)
      return bh.manifest.read(dir .. "/m.pb", opts)
    end
    local function code(bytes) return select(2, read(bytes)).code end
    -- a flipped byte inside service_name ("refpeer" -> "refpeeR")
    local i = good:find("refpeer", 1, true)
    local flipped = good:sub(1, i + 5) .. "R" .. good:sub(i + 7)
    assert.equal("manifest_corrupt", code(flipped))
    assert.equal("refpeeR", assert(read(flipped, { verify = false })).service_name)
    -- a field the schema does not know is dropped by the reader: appended
    -- after sealing it changes nothing (as in prost), sealed with the rest
    -- the seal no longer matches (which is how each real generation reads
    -- the other's manifests)
    assert.truthy(read(good .. "\202\12\3abc")) -- field 201
    local json = H.slurp(fixture("rplatest", "manifest-with-daemon.json"))
    local input = json:match('"seal_input_hex": "(%x+)"'):gsub("%x%x", function(b)
      return string.char(tonumber(b, 16)) end)
    local extra = input .. "\202\12\3abc"
    H.spit(dir .. "/extra", extra)
    local seal = bh.sha256_file(dir .. "/extra"):gsub("%x%x", function(b)
      return string.char(tonumber(b, 16)) end)
    assert.equal("manifest_corrupt", code(extra .. "\178\6\32" .. seal))
    -- no seal at all
    assert.equal("manifest_corrupt", code("\10\1s"))
    -- a schema version from the future (field 100 = 2)
    assert.equal("manifest_schema_too_new", code(good .. "\160\6\2"))
    -- both generations in one daemon: corrupt to both real readers. Built
    -- by hand: field 20 = the daemon, then field 102 = its seal.
    local function sealed(daemon)
      local body = "\162\1" .. string.char(#daemon) .. daemon
      H.spit(dir .. "/body", body)
      local hex = bh.sha256_file(dir .. "/body")
      return body .. "\178\6\32" .. hex:gsub("%x%x", function(b)
        return string.char(tonumber(b, 16)) end)
    end
    local both = bh.identity.encode(ID) -- the answer form: tags 8/9, then 3
    local gen2 = bh.identity.encode(ID, { generation = 2 })
    assert.truthy(read(sealed(gen2)))
    assert.equal("manifest_corrupt", code(sealed(both)))
    assert.matches("both digest generations", select(2, read(sealed(both))).message)
    assert.truthy(read(sealed(both), { verify = false }))
    local p = dir .. "/both.pb"
    H.spit(p, sealed(both))
    local bytes = H.slurp(p)
    -- garbage and codes carry stage manifest
    local _, err = read("\255\255")
    assert.equal("manifest_decode", err.code)
    assert.equal("manifest", err.stage)
    assert.equal("invalid", bh.verdict(err))
    _, err = bh.manifest.read(dir .. "/missing")
    assert.equal("manifest_io", err.code)
    -- a corrupt manifest is never rewritten by a clear
    H.spit(dir .. "/c.pb", flipped)
    local ok
    ok, err = bh.manifest.clear_daemon(dir .. "/c.pb")
    assert.is_nil(ok)
    assert.equal("manifest_corrupt", err.code)
    assert.equal(flipped, H.slurp(dir .. "/c.pb"))
    ok, err = bh.manifest.clear_daemon(p)
    assert.is_nil(ok)
    assert.equal("manifest_corrupt", err.code)
    assert.equal(bytes, H.slurp(p))
  end)

  it("refuses unknown and mistyped fields, naming them", function()
    local function raises(t, msg, opts)
      local ok, err = pcall(bh.manifest.write, dir .. "/x.pb", t, opts)
      assert.is_false(ok)
      assert.matches(msg, err, 1, true)
    end
    raises({ service_nmae = "s" },
      "bh.manifest.write: manifest.service_nmae: not a field of CacheManifest")
    raises({ roots = { { kindd = 1 } } }, "manifest.roots[1].kindd: not a field of CacheRoot")
    raises({ roots = { { kind = "NO_SUCH" } } },
      "manifest.roots[1].kind: \"NO_SUCH\" is not a value of CacheRootKind")
    raises({ service_name = 7 }, "manifest.service_name: expected a string, got number")
    raises({ created_at_unix_ms = -1 }, "manifest.created_at_unix_ms: expected an integer in [0,")
    raises({ service_name = "\255" },
      "manifest.service_name: expected UTF-8 text without NUL bytes")
    raises({ provides = { "a", [3] = "c" } }, "manifest.provides: expected an array")
    raises({}, "bh.manifest.write: unknown option 'generatoin'", { generatoin = 1 })
    raises({ current_daemon = { pid = 1 } },
      "current_daemon.exe_path: expected a string, got nil")
    -- the nested endpoint is named with its full path
    local bad_ep = H.copy(bh, ID)
    bad_ep.ipc_endpoint = { namespace_id = "n", path = 5 }
    raises({ current_daemon = bad_ep },
      "(current_daemon.ipc_endpoint.path: expected a string, got number)")
    bad_ep.ipc_endpoint = "/p"
    raises({ current_daemon = bad_ep },
      "(current_daemon.ipc_endpoint: expected a table, got string)")
    local gen2only = H.copy(bh, ID)
    gen2only.exe_sha256 = nil
    raises({ current_daemon = gen2only }, "generation-1 DaemonProcess needs a sha256",
      { generation = 1 })
    assert.has_error(function() bh.manifest.write(dir .. "/x") end)
  end)

  it("finds manifests within max_depth without following symlinks", function()
    os.execute("mkdir -p " .. dir .. "/a/b " .. dir .. "/out")
    for _, d in ipairs({ "", "/a", "/a/b", "/out" }) do
      assert(bh.manifest.write(dir .. d .. "/" .. bh.manifest.NAME, {}))
    end
    os.execute("ln -s " .. dir .. "/out " .. dir .. "/a/link; "
      .. "ln -s " .. dir .. " " .. dir .. "/a/loop")
    assert.equal(1, #bh.manifest.find(dir .. "/a", { max_depth = 0 }))
    assert.equal(2, #bh.manifest.find(dir .. "/a"))
    assert.equal(dir .. "/a/b/" .. bh.manifest.NAME, bh.manifest.find(dir .. "/a")[2])
    local l, err = bh.manifest.find(dir .. "/nope")
    assert.is_nil(l)
    assert.equal("manifest_io", err.code)
    assert.has_error(function() bh.manifest.find(dir, { max_dpeth = 1 }) end,
      "bh.manifest.find: unknown option 'max_dpeth'")
  end)

  it("clears the daemon only when it is still the probed one", function()
    local p = dir .. "/m.pb"
    assert(bh.manifest.write(p, { service_name = "s", current_daemon = ID }))
    local other = H.copy(bh, ID)
    other.pid = 43
    local ok, why = bh.manifest.clear_daemon(p, { only_if = other })
    assert.is_false(ok)
    assert.equal("other", why)
    assert.is_true(bh.manifest.clear_daemon(p, { only_if = ID }))
    local m = assert(bh.manifest.read(p))
    assert.is_nil(m.current_daemon)
    assert.equal("s", m.service_name)
    ok, why = bh.manifest.clear_daemon(p)
    assert.is_false(ok)
    assert.equal("none", why)
  end)

  it("keeps owner and mode of a rewritten manifest, never set-id bits #root", function()
    local p = dir .. "/m.pb"
    assert(bh.manifest.write(p, { service_name = "s", current_daemon = ID }))
    assert(H.system("chown nobody:nogroup " .. p .. " && chmod 4640 " .. p))
    assert.is_true(bh.manifest.clear_daemon(p))
    local st = io.popen("stat -c '%U:%G %a' " .. p):read("l")
    assert.equal("nobody:nogroup 640", st)
  end)

  it("never follows a symlink on the way to what it rewrites", function()
    os.execute("mkdir -p " .. dir .. "/real")
    local p = dir .. "/real/" .. bh.manifest.NAME
    assert(bh.manifest.write(p, { service_name = "victim", current_daemon = ID }))
    os.execute("ln -s " .. dir .. "/real " .. dir .. "/link")
    local ok, err = bh.manifest.clear_daemon(dir .. "/link/" .. bh.manifest.NAME)
    assert.is_nil(ok)
    assert.equal("manifest_io", err.code)
    assert.matches("symbolic link", err.message)
    assert.truthy(assert(bh.manifest.read(p)).current_daemon)
    ok, err = bh.manifest.write(dir .. "/link/x.pb", {})
    assert.is_nil(ok)
    assert.matches("symbolic link", err.message)
    -- a symlink in place of the file itself is not replaced either
    os.execute("ln -s " .. p .. " " .. dir .. "/m.pb")
    ok, err = bh.manifest.write(dir .. "/m.pb", {})
    assert.is_nil(ok)
    assert.matches("symbolic link", err.message)
    assert.equal("victim", assert(bh.manifest.read(p)).service_name)
  end)

  it("knows the central registry and refuses an insecure one", function()
    local reg = dir .. "/registry"
    local function in_env(env, code)
      local cmd = "env -u RUNNING_PROCESS_MANIFEST_DIR -u XDG_DATA_HOME " .. env ..
        " lua5.4 -e " .. H.q("local bh = require 'bh'; " .. code) .. " 2>&1"
      local f = assert(io.popen(cmd))
      local out = f:read("a")
      f:close()
      return out
    end
    assert.equal("/h/.local/share/running-process/manifests",
      in_env("HOME=/h", "io.write(bh.manifest.central_dir())"))
    assert.equal("/x/running-process/manifests",
      in_env("HOME=/h XDG_DATA_HOME=/x", "io.write(bh.manifest.central_dir())"))
    assert.equal(reg, in_env("RUNNING_PROCESS_MANIFEST_DIR=" .. reg,
      "io.write(bh.manifest.central_dir())"))
    local scan = "local l, e = bh.manifest.scan_central(); " ..
      "io.write(l and (#l .. ' ' .. table.concat(l, ' ')) or e.code)"
    -- missing: empty
    assert.equal("0 ", in_env("RUNNING_PROCESS_MANIFEST_DIR=" .. reg, scan))
    os.execute("mkdir -m 0755 " .. reg)
    assert(bh.manifest.write(reg .. "/svc-1.0.pb", {}))
    H.spit(reg .. "/notes.txt", "x")
    assert.equal("insecure_registry", in_env("RUNNING_PROCESS_MANIFEST_DIR=" .. reg, scan))
    os.execute("chmod 0700 " .. reg)
    assert.equal("1 " .. reg .. "/svc-1.0.pb",
      in_env("RUNNING_PROCESS_MANIFEST_DIR=" .. reg, scan))
  end)

  it("tells a manifest of another machine", function()
    local ours = assert(bh.manifest.read(fixture("rp41", "manifest-with-daemon.pb")))
    local mine = assert(bh.machine_id())
    local ok, err = bh.manifest.check_host(ours)
    if mine == "3d1219c7c4c5404aaa1f6d2a48adfda4" then
      assert.is_true(ok) -- the machine that made the vectors
    else
      assert.is_nil(ok)
      assert.equal("foreign_host", err.code)
      assert.equal("foreign", bh.verdict(err))
    end
    ours.host.machine_id = mine
    assert.is_true(bh.manifest.check_host(ours))
    ours.host = nil
    assert.is_true(bh.manifest.check_host(ours))
  end)
end)
