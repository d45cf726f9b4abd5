-- bh.identity.*, bh.boot_id, bh.sha256_file (DESIGN §1.7, §2).
local bh = require "bh"
local H = require "helpers"

local EP = { namespace_id = "ns", path = "/tmp/bh-identity-spec.sock" }

local function copy(id) return assert(bh.identity.from_json(bh.identity.to_json(id))) end

describe("bh.identity", function()
  local me
  before_each(function()
    me = assert(bh.identity.current { endpoint = EP, idle_timeout_secs = 30 })
  end)

  it("current has exactly the JSON fields", function()
    local keys = {}
    for k in pairs(me) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "boot_id", "exe_path", "exe_sha256", "idle_timeout_secs", "ipc_endpoint",
                  "pid", "started_at_unix_ms" }, keys)
    assert.matches("^%x+$", me.exe_sha256)
    assert.equal(64, #me.exe_sha256)
    assert.equal(me.exe_sha256:lower(), me.exe_sha256)
    assert.same(EP, me.ipc_endpoint)
    assert.equal(30, me.idle_timeout_secs)
    assert.equal(bh.boot_id(), me.boot_id)
    assert.equal(math.type(me.pid), "integer")
    local none = assert(bh.identity.current { endpoint = EP })
    assert.is_nil(none.idle_timeout_secs)
  end)

  it("round-trips through JSON and protobuf", function()
    assert.same(me, copy(me))
    local bytes = bh.identity.encode(me)
    assert.equal("string", type(bytes))
    assert.same(me, assert(bh.identity.decode(bytes)))
    local json = bh.identity.to_json(me)
    assert.matches('"idle_timeout_secs":30', json)
  end)

  it("from_json reports invalid_json and invalid_identity with the field", function()
    local id, err = bh.identity.from_json("{")
    assert.is_nil(id)
    assert.equal("invalid_json", err.code)
    assert.equal("identity", err.stage)
    assert.equal(err.message, tostring(err))
    local bad = bh.identity.to_json(me):gsub('"exe_sha256":"%x+"', '"exe_sha256":"abc"')
    id, err = bh.identity.from_json(bad)
    assert.is_nil(id)
    assert.equal("invalid_identity", err.code)
    assert.equal("exe_sha256", err.field)
  end)

  it("decode reports decode_identity and missing_endpoint", function()
    local id, err = bh.identity.decode("\255\255\255")
    assert.is_nil(id)
    assert.equal("decode_identity", err.code)
    assert.equal("response", err.stage)
    id, err = bh.identity.decode("\8\1") -- pid = 1, nothing else
    assert.is_nil(id)
    assert.equal("missing_endpoint", err.code)
  end)

  it("verify_pid accepts the live process and names each failure", function()
    assert.is_true(bh.identity.verify_pid(me))
    local cases = {
      { "pid", 0, "invalid_pid" },
      { "boot_id", "not-this-boot", "boot_id_mismatch" },
      { "pid", 2 ^ 31 - 2, "pid_not_found" },
      { "exe_path", "/bin/sh", "exe_path_mismatch" },
      { "exe_sha256", string.rep("0", 64), "exe_sha256_mismatch" },
    }
    for _, c in ipairs(cases) do
      local id = copy(me)
      id[c[1]] = type(c[2]) == "number" and math.tointeger(c[2]) or c[2]
      local ok, err = bh.identity.verify_pid(id)
      assert.is_nil(ok, c[3])
      assert.equal(c[3], err.code)
      assert.equal("verify_pid", err.stage)
    end
  end)

  it("of_pid gives the identity of a live process", function()
    local id = assert(bh.identity.of_pid(me.pid, EP))
    assert.equal(me.exe_sha256, id.exe_sha256)
    assert.equal(me.exe_path, id.exe_path)
    assert.has_error(function() bh.identity.of_pid(me.pid) end,
      "bad argument #2 to 'bh.identity.of_pid' (endpoint: expected a table, got nil)")
    local none, err = bh.identity.of_pid(2 ^ 31 - 2, EP)
    assert.is_nil(none)
    assert.equal("pid_not_found", err.code)
  end)

  it("raises on malformed identity tables, naming argument and field", function()
    local bad = copy(me)
    bad.exe_sha256 = "xyz"
    local function raises(f, msg)
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.equal(msg, (err:gsub("^[^:]+:%d+: ", "")))
    end
    raises(function() bh.identity.to_json(bad) end,
      "bad argument #1 to 'bh.identity.to_json' (identity.exe_sha256: expected 64 hex digits)")
    bad = copy(me)
    bad.ipc_endpoint = nil
    raises(function() bh.identity.encode(bad) end,
      "bad argument #1 to 'bh.identity.encode' (identity.ipc_endpoint: expected a table, got nil)")
    bad = copy(me)
    bad.pid = -1
    raises(function() bh.identity.verify_pid(bad) end,
      "bad argument #1 to 'bh.identity.verify_pid' "
        .. "(identity.pid: expected an integer in [0, 4294967295])")
    raises(function() bh.identity.to_json("x") end,
      "bad argument #1 to 'bh.identity.to_json' (identity: expected a table, got string)")
    raises(function() bh.identity.current {} end,
      "bad argument #1 to 'bh.identity.current' (endpoint: expected a table, got nil)")
    raises(function() bh.identity.current { endpoint = me.ipc_endpoint, idle_timeout = 3 } end,
      "bh.identity.current: unknown option 'idle_timeout'")
    raises(function() bh.identity.of_pid(-1, me.ipc_endpoint) end,
      "bad argument #1 to 'bh.identity.of_pid' (pid must be an integer in [0, 4294967295], got -1)")
    -- Called without a name at the call site, the message names it fully,
    -- at the line of the pcall.
    local ok, err = pcall(bh.identity.to_json, 1)
    assert.is_false(ok)
    local line = debug.getinfo(1, "l").currentline - 2
    assert.equal("identity_spec.lua:" .. line .. ": bad argument #1 to 'bh.identity.to_json' " ..
                 "(identity: expected a table, got number)", err:match("[^/]*$"))
    assert.has_error(function() bh.identity.from_json() end)
  end)
end)

describe("bh.boot_id and bh.sha256_file", function()
  it("boot_id is the kernel's, trimmed", function()
    local want = H.slurp("/proc/sys/kernel/random/boot_id"):gsub("%s+$", "")
    assert.equal(want, bh.boot_id())
  end)

  it("sha256_file hashes a file and reports exe_hash", function()
    local dir = H.tmpdir()
    H.spit(dir .. "/f", "abc")
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                 bh.sha256_file(dir .. "/f"))
    local h, err = bh.sha256_file(dir .. "/missing")
    assert.is_nil(h)
    assert.equal("exe_hash", err.code)
    H.rmdir(dir)
    assert.has_error(function() bh.sha256_file() end,
      "bad argument #1 to 'sha256_file' (string expected, got no value)")
  end)
end)
