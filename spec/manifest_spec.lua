-- bh.manifest.* with real files in a temp dir: round trip, unknown fields
-- kept, error codes and stages, find limits, guarded clear_daemon, and the
-- atomic write surviving a writer killed just before rename.
local H = require "helpers"
local bh = require "bh"

local ID = { pid = 42, exe_path = "/usr/bin/d", exe_sha256 = string.rep("0f", 32), boot_id = "b",
  ipc_endpoint = { namespace_id = "ns", path = "/run/d.sock" }, started_at_unix_ms = 7 }

describe("bh.manifest", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  it("writes and reads back every field", function()
    local p = dir .. "/" .. bh.manifest.NAME
    assert.is_true(bh.manifest.write(p, { service_name = "s", service_version = "1",
      broker_instance = "i",
      created_at_unix_ms = 5, last_active_unix_ms = 6, current_daemon = ID }))
    local m = assert(bh.manifest.read(p))
    assert.same({ service_name = "s", service_version = "1", broker_envelope_version = "",
      broker_instance = "i", created_at_unix_ms = 5, last_active_unix_ms = 6,
      current_daemon = ID }, m)
  end)

  it("keeps unknown fields through read and write", function()
    local p = dir .. "/m.pb"
    H.spit(p, "\10\1s" .. "\154\6\3abc") -- service_name "s", field 99 "abc"
    local m = assert(bh.manifest.read(p))
    assert.equal("\154\6\3abc", m.unknown_fields)
    m.service_name = "t"
    assert.is_true(bh.manifest.write(p, m))
    assert.equal("\10\1t" .. "\154\6\3abc", H.slurp(p))
  end)

  it("returns stable codes with stage manifest", function()
    local m, err = bh.manifest.read(dir .. "/missing")
    assert.is_nil(m)
    assert.equal("manifest_io", err.code)
    assert.equal("manifest", err.stage)
    H.spit(dir .. "/bad", "\255\255")
    assert.is_nil((bh.manifest.read(dir .. "/bad")))
    err = select(2, bh.manifest.read(dir .. "/bad"))
    assert.equal("manifest_decode", err.code)
    -- current_daemon without ipc_endpoint: a bad record
    H.spit(dir .. "/noep", "\162\1\2\8\1")
    err = select(2, bh.manifest.read(dir .. "/noep"))
    assert.equal("missing_endpoint", err.code)
    assert.equal("manifest", err.stage)
    assert.equal("invalid", bh.verdict(err))
    -- a malformed table is the caller's bug: it raises, naming the field
    assert.has_error(function()
      bh.manifest.write(dir .. "/x", { current_daemon = { pid = 1 } })
    end, "bad argument #2 to 'bh.manifest.write' "
      .. "(current_daemon.exe_path: expected a string, got nil)")
    assert.has_error(function()
      bh.manifest.write(dir .. "/x", { service_name = 7 })
    end)
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
  end)

  it("clears the daemon only when it is still the probed one", function()
    local p = dir .. "/m.pb"
    assert(bh.manifest.write(p, { service_name = "s", current_daemon = ID }))
    local other = { pid = 43, exe_path = ID.exe_path, exe_sha256 = ID.exe_sha256, boot_id = "b",
      ipc_endpoint = ID.ipc_endpoint, started_at_unix_ms = 7 }
    assert.is_false(bh.manifest.clear_daemon(p, { only_if = other }))
    assert.is_true(bh.manifest.clear_daemon(p, { only_if = ID }))
    local m = assert(bh.manifest.read(p))
    assert.is_nil(m.current_daemon)
    assert.equal("s", m.service_name)
    assert.is_false(bh.manifest.clear_daemon(p))
  end)

  it("leaves the old manifest whole when the writer dies before rename", function()
    local p = dir .. "/" .. bh.manifest.NAME
    assert(bh.manifest.write(p, { service_name = "old" }))
    assert(bh.manifest.write(p, { service_name = "new" }))
    -- a writer that stops itself just before rename, then is SIGKILLed:
    local writer = ("require'bh'.manifest.write(%q, {service_name='torn'})"):format(p)
    os.execute("BH_TEST_MANIFEST_STOP=1 lua5.4 -e " .. H.q(writer)
      .. " & pid=$!; while ! grep -q '^State:.*T' /proc/$pid/status 2>/dev/null;"
      .. " do sleep 0.05; done; kill -9 $pid")
    assert.equal("new", bh.manifest.read(p).service_name)
    assert.equal(1, #bh.manifest.find(dir))
    local leftover = io.popen("ls -A " .. dir .. " | grep -c tmp"):read("l")
    assert.equal("1", leftover)
  end)
end)
