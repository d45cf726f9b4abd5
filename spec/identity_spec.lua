-- bh.identity.*, bh.boot_id, bh.sha256_file, bh.blake3_file (design §1.7,
-- §1.9, §2), with the identities of the real running-process from
-- spec/fixtures.
-- labels: identity digest proc procfs
local bh = require "bh"
local H = require "helpers"

local EP = { namespace_id = "ns", path = "/tmp/bh-identity-spec.sock" }
local FIX = "spec/fixtures/"

describe("bh.identity", function()
  local me
  before_each(function()
    me = assert(bh.identity.current { endpoint = EP, idle_timeout_secs = 30 })
  end)

  it("current has exactly the JSON fields", function()
    local keys = {}
    for k in pairs(me) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "boot_id", "exe_hash", "exe_hash_algorithm", "exe_path", "exe_sha256",
                  "idle_timeout_secs", "ipc_endpoint", "pid", "started_at_unix_ms" }, keys)
    for _, k in ipairs { "exe_sha256", "exe_hash" } do
      assert.matches("^[0-9a-f]+$", me[k])
      assert.equal(64, #me[k])
    end
    assert.equal("blake3", me.exe_hash_algorithm)
    assert.equal(bh.sha256_file(me.exe_path), me.exe_sha256)
    assert.equal(bh.blake3_file(me.exe_path), me.exe_hash)
    assert.same(EP, me.ipc_endpoint)
    assert.equal(30, me.idle_timeout_secs)
    assert.equal(bh.boot_id(), me.boot_id)
    assert.equal(math.type(me.pid), "integer")
    local none = assert(bh.identity.current { endpoint = EP })
    assert.is_nil(none.idle_timeout_secs)
  end)

  it("round-trips through JSON and protobuf", function()
    assert.same(me, H.copy(bh, me))
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
    local ep = "\34\0" -- an empty ipc_endpoint
    for bytes, code in pairs {
      [ep] = "invalid_sha256_length",                               -- no digest at all
      [ep .. "\26\31" .. ("x"):rep(31)] = "invalid_sha256_length",
      [ep .. "\66\4sha1\74\32" .. ("x"):rep(32)] = "unsupported_hash_algorithm",
      [ep .. "\74\32" .. ("x"):rep(32)] = "unsupported_hash_algorithm", -- no algorithm
      [ep .. "\66\6blake3\74\31" .. ("x"):rep(31)] = "invalid_hash_length",
    } do
      id, err = bh.identity.decode(bytes)
      assert.is_nil(id, code)
      assert.equal(code, err.code)
    end
  end)

  it("verify_pid accepts the live process and names each failure", function()
    assert.is_true(bh.identity.verify_pid(me))
    local cases = {
      { "pid", 0, "invalid_pid" },
      { "boot_id", "not-this-boot", "boot_id_mismatch" },
      { "pid", 2 ^ 31 - 2, "pid_not_found" },
      { "started_at_unix_ms", 1, "pid_reused" },
      { "exe_path", "/bin/sh", "exe_path_mismatch" },
      { "exe_sha256", string.rep("0", 64), "exe_sha256_mismatch" },
      { "exe_hash", string.rep("0", 64), "exe_hash_mismatch" },
    }
    for _, c in ipairs(cases) do
      local id = H.copy(bh, me)
      id[c[1]] = type(c[2]) == "number" and math.tointeger(c[2]) or c[2]
      local ok, err = bh.identity.verify_pid(id)
      assert.is_nil(ok, c[3])
      assert.equal(c[3], err.code)
      assert.equal("verify_pid", err.stage)
    end
    -- a record with one generation only is checked on what it has
    local gen1, gen2 = H.copy(bh, me), H.copy(bh, me)
    gen1.exe_hash, gen1.exe_hash_algorithm = nil, nil
    gen2.exe_sha256 = nil
    assert.is_true(bh.identity.verify_pid(gen1))
    assert.is_true(bh.identity.verify_pid(gen2))
  end)

  it("calls a pid reused by a later process pid_reused, even running the same program #root",
    function()
    -- the record of one `sleep`; it exits; ns_last_pid makes the next
    -- process get its pid; that one runs `sleep` too
    local function spawn_sleep() return H.spawn("/bin/sleep", "1000") end
    local a = spawn_sleep()
    local record = assert(bh.identity.of_pid(a, EP))
    os.execute("kill -9 " .. a .. "; sleep 2.5") -- past the start-time slack
    local b
    -- Other tests running meanwhile take pids too: try until the window
    -- between setting ns_last_pid and the fork is ours.
    for _ = 1, 500 do
      -- popen forks a shell first, which forks sleep: two pids
      H.spit("/proc/sys/kernel/ns_last_pid", tostring(a - 2))
      b = spawn_sleep()
      if b == a then break end
      os.execute("kill -9 " .. b)
    end
    assert.equal(a, b, "could not get the same pid again")
    local ok, err = bh.identity.verify_pid(record)
    local h, perr = bh.run(function() return bh.probe(EP, record) end)
    os.execute("kill -9 " .. b)
    assert.is_nil(ok)
    assert.equal("pid_reused", err.code)
    assert.equal("stale", bh.verdict(err))
    assert.is_nil(h) -- no handle: nothing could shut the new process down
    assert.equal("pid_reused", perr.code)
  end)

  it("reads both JSON forms of the real running-process and writes ours", function()
    for _, g in ipairs { "rp41", "rplatest" } do
      local project = H.slurp(FIX .. g .. "/identity-project.json")
      local ours = assert(bh.identity.from_json(project))
      local serde = assert(bh.identity.from_json(H.slurp(FIX .. g .. "/identity.json")))
      assert.same(ours, serde)
      assert.equal(project:gsub("\n$", ""), bh.identity.to_json(ours))
    end
    local latest = assert(bh.identity.from_json(H.slurp(FIX .. "rplatest/identity-project.json")))
    assert.equal("blake3", latest.exe_hash_algorithm)
    assert.equal("2f6e59d6ecc236bf3919f334162394f81f23146dfb92478969f56faf6d2a390b",
      latest.exe_hash)
    assert.equal("091b4abad270a5e09b3acf207b41c956a91e2f8037847e8dec0a080cae4806fc",
      latest.exe_sha256)
    local old = assert(bh.identity.from_json(H.slurp(FIX .. "rp41/identity-project.json")))
    assert.is_nil(old.exe_hash)
  end)

  it("encodes the probe answer and both record generations", function()
    -- the identity bytes of the real 4.10.6 answer (after the 32-byte nonce)
    local resp = H.slurp(FIX .. "rplatest/response.bin")
    local latest = assert(bh.identity.from_json(H.slurp(FIX .. "rplatest/identity-project.json")))
    local answer = bh.identity.encode(latest)
    assert.truthy(resp:find(answer, 1, true), "our answer form is the real 4.10.6 answer")
    assert.equal("\26\32", answer:sub(-34, -33)) -- tag 3 appended last
    local g2 = bh.identity.encode(latest, { generation = 2 })
    assert.equal(answer:sub(1, -35), g2)
    local g1 = assert(bh.identity.encode(latest, { generation = 1 }))
    assert.same(latest.exe_sha256, bh.identity.decode(g1).exe_sha256)
    assert.is_nil(bh.identity.decode(g1).exe_hash)
    local old = assert(bh.identity.from_json(H.slurp(FIX .. "rp41/identity-project.json")))
    local none, err = bh.identity.encode(old, { generation = 2 })
    assert.is_nil(none)
    assert.equal("invalid_identity", err.code)
    assert.truthy(H.slurp(FIX .. "rp41/response.bin"):find(
      bh.identity.encode(old, { generation = 1 }), 1, true))
  end)

  it("of_pid gives the identity of a live process", function()
    local id = assert(bh.identity.of_pid(me.pid, EP))
    assert.equal(me.exe_sha256, id.exe_sha256)
    assert.equal(me.exe_path, id.exe_path)
    assert.has_error(function() bh.identity.of_pid(me.pid, "x") end,
      "bad argument #2 to 'bh.identity.of_pid' (endpoint: expected a table, got string)")
    local none, err = bh.identity.of_pid(2 ^ 31 - 2, EP)
    assert.is_nil(none)
    assert.equal("pid_not_found", err.code)
    none, err = bh.identity.of_pid(2 ^ 31 - 2)
    assert.is_nil(none)
    assert.equal("pid_not_found", err.code)
  end)

  it("of_pid without an endpoint: who is this pid (no ipc_endpoint)", function()
    local id = assert(bh.identity.of_pid(me.pid))
    assert.is_nil(id.ipc_endpoint)
    local with = assert(bh.identity.of_pid(me.pid, EP))
    with.ipc_endpoint = nil
    assert.same(with, id)
    -- What needs no endpoint takes it, prepared or not.
    assert.is_true(bh.identity.verify_pid(id))
    local p = bh.identity.prepare(id)
    assert.is_nil(p.ipc_endpoint)
    assert.is_true(bh.identity.verify_pid(p))
    -- What needs one says which field is missing, for the table and the
    -- prepared identity alike.
    local missing = "(identity.ipc_endpoint: missing, and this needs one; an identity from "
      .. "bh.identity.of_pid without an endpoint has none)"
    local ep = { namespace_id = "ns", path = EP.path }
    for name, f in pairs {
      ["bh.identity.to_json' #1"] = function(x) return bh.identity.to_json(x) end,
      ["bh.identity.encode' #1"] = function(x) return bh.identity.encode(x) end,
      ["bh.probe' #2"] = function(x) return bh.run(bh.probe, ep, x) end,
      ["bh.respond' #2"] = function(x) return bh.run(bh.respond, ep, x) end,
    } do
      local fn, n = name:match("^(.-)' #(%d)$")
      for _, x in ipairs { id, p } do
        local ok, err = pcall(f, x)
        assert.is_false(ok, name)
        assert.truthy(err:find("bad argument #" .. n .. " to '" .. fn .. "' " .. missing, 1, true),
          err)
      end
    end
    local ok, err = pcall(bh.manifest.write, "/nonexistent/m.pb", { current_daemon = id })
    assert.is_false(ok)
    assert.truthy(err:find("(current_daemon.ipc_endpoint: missing, and this needs one", 1, true),
      err)
  end)

  it("prepares an identity once: readable, read-only, accepted wherever a table is", function()
    local p = bh.identity.prepare(me)
    assert.equal("userdata", type(p))
    assert.equal(p, bh.identity.prepare(p))
    for k, v in pairs(me) do assert.same(v, p[k], k) end
    assert.is_nil(p.nonsense)
    -- A field read is a copy: changing it changes nothing prepared.
    p.ipc_endpoint.path = "/elsewhere"
    assert.equal(EP.path, p.ipc_endpoint.path)
    assert.has_error(function() p.pid = 1 end,
      "a prepared identity is read-only (prepare a changed table instead)")
    assert.matches("^bh%.identity%(pid " .. me.pid .. ", /", tostring(p))
    -- The table is copied: changing it later does not change p.
    local t = H.copy(bh, me)
    local q = bh.identity.prepare(t)
    t.pid = 1
    assert.equal(me.pid, q.pid)
    assert.equal(bh.identity.to_json(me), bh.identity.to_json(p))
    assert.equal(bh.identity.encode(me), bh.identity.encode(p))
    local gen2 = { generation = 2 }
    assert.equal(bh.identity.encode(me, gen2), bh.identity.encode(p, gen2))
    assert.is_true(bh.identity.verify_pid(p))
    local bad = H.copy(bh, me)
    bad.exe_sha256 = "xyz"
    local ok, err = pcall(bh.identity.prepare, bad)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'bh.identity.prepare' "
      .. "%(identity.exe_sha256: expected 64 hex digits%)", err)
    ok, err = pcall(bh.identity.prepare, io.stdout)
    assert.is_false(ok)
    assert.matches("%(identity: expected a table, got userdata%)", err)
  end)

  it("raises on malformed identity tables, naming argument and field", function()
    local bad = H.copy(bh, me)
    bad.exe_sha256 = "xyz"
    local function raises(f, msg)
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.equal(msg, (err:gsub("^[^:]+:%d+: ", "")))
    end
    raises(function() bh.identity.to_json(bad) end,
      "bad argument #1 to 'bh.identity.to_json' (identity.exe_sha256: expected 64 hex digits)")
    bad = H.copy(bh, me)
    bad.ipc_endpoint = nil
    raises(function() bh.identity.encode(bad) end,
      "bad argument #1 to 'bh.identity.encode' (identity.ipc_endpoint: missing, and this "
        .. "needs one; an identity from bh.identity.of_pid without an endpoint has none)")
    bad.ipc_endpoint = "x"
    raises(function() bh.identity.encode(bad) end,
      "bad argument #1 to 'bh.identity.encode' "
        .. "(identity.ipc_endpoint: expected a table, got string)")
    bad = H.copy(bh, me)
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

describe("bh.boot_id, bh.sha256_file and bh.blake3_file", function()
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
      "bad argument #1 to 'bh.sha256_file' (string expected, got no value)")
  end)

  it("blake3_file gives the values of the real running-process", function()
    local dir = H.tmpdir()
    local want = {
      [""] = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
      abc = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
      [("a"):rep(1048576)] = "b5358909f8bed53f55bf9324e290e9a5a585de8b0239d18040e9d3b0c7e8f9cf",
    }
    for input, hex in pairs(want) do
      H.spit(dir .. "/f", input)
      assert.equal(hex, bh.blake3_file(dir .. "/f"))
    end
    local fifo = dir .. "/fifo"
    os.execute("mkfifo " .. fifo)
    local h, err = bh.blake3_file(fifo) -- refused at once, never blocks
    assert.is_nil(h)
    assert.equal("exe_hash", err.code)
    assert.matches("not a regular file", err.message)
    H.rmdir(dir)
  end)
end)
