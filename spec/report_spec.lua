-- bh.report, bh.probe_record, bh.verdict, bh.metrics, bh.every.
local H = require "helpers"
local json = require "dkjson"
local bh = require "bh"

describe("bh.report", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() bh.options.report = nil; H.rmdir(dir) end)

  it("appends one JSON line per record and reopens after rotation", function()
    local f = dir .. "/r.jsonl"
    bh.options.report = f
    assert.is_true(bh.report{ a = 1, b = { "x", "y" }, c = bh.null, s = "bad\255utf8" })
    os.rename(f, f .. ".1")
    assert.is_true(bh.report{ a = 2 })
    local old = json.decode(H.slurp(f .. ".1"), 1, json.null)
    assert.same({ a = 1, b = { "x", "y" }, c = json.null, s = "bad\239\191\189utf8" }, old)
    assert.equal('{"a":2}\n', H.slurp(f))
  end)

  it("raises for values that cannot be encoded", function()
    assert.has_error(function() bh.report{ f = print } end)
    local t = {}
    t.self = t
    assert.has_error(function() bh.report(t) end)
    assert.has_error(function() bh.report("x") end)
  end)

  it("builds the standard record with the one verdict function", function()
    local id = { pid = 9, ipc_endpoint = { namespace_id = "n", path = "/p" } }
    local r = bh.probe_record{ service = "s", expected = id,
      err = { code = "identity_mismatch", field = "pid", stage = "response", message = "m" },
      elapsed = 0.25 }
    assert.equal("impostor", r.verdict)
    assert.equal("pid", r.field)
    assert.equal(250, r.elapsed_ms)
    assert.equal(9, r.pid)
    assert.equal(bh.null, r.peer_pid)
    assert.matches("^%d+%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", r.ts)
    assert.equal("2023-11-14T22:13:20.000Z", bh.timestamp(1700000000))
    -- design §1.11: only the provably gone is stale
    local cases = { pid_not_found = "stale", boot_id_mismatch = "stale", pid_reused = "stale",
      exe_path_mismatch = "stale", exe_sha256_mismatch = "stale", exe_hash_mismatch = "stale",
      connect = "unreachable", timeout = "unreachable", io = "unreachable",
      exe_path = "unreachable", exe_hash = "unreachable", owner_cannot_connect = "unreachable",
      exe_deleted = "outdated",
      identity_mismatch = "impostor", peer_mismatch = "impostor", decode_frame = "impostor",
      unsupported_hash_algorithm = "impostor", invalid_hash_length = "impostor",
      invalid_pid = "invalid", foreign_host = "foreign" }
    for code, v in pairs(cases) do assert.equal(v, bh.verdict{ code = code, stage = "x" }, code) end
    assert.equal("verified", bh.verdict(nil))
    -- an empty record is misuse, not "verified"; keys are checked
    assert.has_error(function() bh.probe_record {} end,
      "bh.probe_record: needs the probe's handle or its err")
    assert.has_error(function() bh.probe_record { srvice = "x", err = {} } end,
      "bh.probe_record: unknown option 'srvice'")
    assert.equal("invalid", bh.verdict{ code = "missing_endpoint", stage = "manifest" })
    assert.equal("foreign", bh.verdict{ code = "foreign_host", stage = "manifest" })
    for _, code in ipairs { "manifest_corrupt", "manifest_schema_too_new", "insecure_registry" } do
      assert.equal("invalid", bh.verdict{ code = code, stage = "manifest" })
    end
    -- gone, but something else holds its endpoint: squatted; its
    -- successor holds it: stale, and the record says who
    local peer = { pid = 77, uid = 65534, gid = 65534, exe = "/usr/bin/squat" }
    for _, code in ipairs { "pid_not_found", "boot_id_mismatch", "pid_reused",
      "exe_path_mismatch", "exe_sha256_mismatch", "exe_hash_mismatch" } do
      assert.equal("squatted", bh.verdict{ code = code, stage = "verify_pid", peer = peer }, code)
      assert.equal("stale", bh.verdict{ code = code, stage = "verify_pid", peer = peer,
        successor = 77 }, code)
    end
    -- a peer on another kind of failure changes nothing
    assert.equal("impostor", bh.verdict{ code = "identity_mismatch", stage = "response",
      peer = peer })
    local sq = bh.probe_record{ service = "s", expected = id,
      err = { code = "pid_not_found", stage = "verify_pid", message = "gone", peer = peer } }
    assert.equal("squatted", sq.verdict)
    assert.same(peer, sq.peer)
    local succ = bh.probe_record{ service = "s", expected = id,
      err = { code = "pid_not_found", stage = "verify_pid", message = "gone", peer = peer,
        successor = 77 } }
    assert.equal("stale", succ.verdict)
    assert.equal(77, succ.successor)
    assert.is_nil(succ.peer)
    -- a daemon whose binary was replaced under it (an upgrade) is not gone
    assert.equal("outdated", bh.verdict{ code = "exe_deleted", stage = "verify_pid" })
    assert.same({ "verified", "stale", "impostor", "unreachable", "foreign", "invalid",
      "squatted", "outdated" }, bh.VERDICTS)
  end)

  it("takes a prepared identity as expected, as it takes the table", function()
    local ep = { namespace_id = "n", path = "/p" }
    local me = assert(bh.identity.current { endpoint = ep })
    local err = { code = "connect", stage = "connect" }
    local from_table = bh.probe_record{ service = "s", expected = me, err = err }
    local r = bh.probe_record{ service = "s", expected = bh.identity.prepare(me), err = err }
    assert.equal(me.pid, r.pid)
    assert.same(ep, r.endpoint)
    r.ts, from_table.ts = nil, nil
    assert.same(from_table, r)
    -- another userdata is still refused
    assert.has_error(function() bh.probe_record{ expected = io.stdout, err = err } end,
      "bh.probe_record: option 'expected' must be a table or bh.identity, got userdata")
  end)

  it("renders and atomically writes metrics", function()
    bh.metrics.reset()
    bh.metrics.observe{ service = 's"q', endpoint = { namespace_id = "n", path = "/p" },
      verdict = "stale", code = "connect", elapsed_ms = 5 }
    local text = bh.metrics.render()
    local want = 'bhprobe_probe_failures_total'
      .. '{service="s\\"q",namespace="n",path="/p",code="connect"} 1'
    assert.truthy(text:find(want, 1, true))
    assert.is_true(bh.metrics.flush(dir .. "/m.prom"))
    assert.truthy(H.slurp(dir .. "/m.prom"):find("# TYPE bhprobe_probe_success gauge", 1, true))
    local ok, err = bh.metrics.flush(dir .. "/no/such/dir/m.prom")
    assert.is_nil(ok)
    assert.equal("system", err.code)
    assert.has_error(function() bh.metrics.observe(5) end,
      "bad argument #1 to 'bh.metrics.observe' (table expected, got number)")
    assert.has_error(function() bh.metrics.render_records() end,
      "bad argument #1 to 'bh.metrics.render_records' (table expected, got nil)")
  end)

  it("keeps a target's series only while it was seen in the last rounds", function()
    bh.metrics.reset()
    local function rec(service, verdict)
      return { service = service, endpoint = { namespace_id = "n", path = "/" .. service },
        verdict = verdict, code = verdict == "verified" and bh.null or "pid_not_found",
        elapsed_ms = 2 }
    end
    bh.metrics.observe(rec("a", "verified"))
    bh.metrics.observe(rec("b", "stale"))
    bh.metrics.observe{ verdict = "invalid", code = "manifest_decode", endpoint = {} }
    bh.metrics.end_round{ duration = 0.25 }
    local text = bh.metrics.render()
    assert.truthy(text:find('bhprobe_probe_success{service="b",namespace="n",path="/b"} 0',
      1, true))
    assert.truthy(text:find('bhprobe_round_targets{verdict="invalid"} 1', 1, true))
    assert.truthy(text:find('bhprobe_round_targets{verdict="stale"} 1', 1, true))
    assert.truthy(text:find("bhprobe_round_duration_seconds 0.25\n", 1, true))
    assert.truthy(text:find("bhprobe_rounds_total 1\n", 1, true))
    assert.truthy(text:find("bhprobe_last_round_success_timestamp_seconds ", 1, true))
    assert.truthy(text:find('bhprobe_build_info{version="' .. bh._VERSION .. '",lua="Lua 5.4",'
      .. 'running_process="4.1.0,4.10.6"} 1', 1, true))
    bh.metrics.observe(rec("a", "verified")) -- b is gone
    bh.metrics.end_round{ duration = 0.1, keep = 2 }
    assert.truthy(bh.metrics.render():find('path="/b"', 1, true)) -- kept for 2 rounds
    bh.metrics.observe(rec("a", "verified"))
    bh.metrics.end_round{ duration = 0.1, keep = 2 }
    text = bh.metrics.render()
    assert.is_nil(text:find('path="/b"', 1, true))
    assert.truthy(text:find('bhprobe_round_targets{verdict="stale"} 0', 1, true))
    -- OpenMetrics: counter families without _total, info type, # EOF.
    local om = bh.metrics.render(true)
    assert.truthy(om:find("# TYPE bhprobe_rounds counter\nbhprobe_rounds_total 3\n", 1, true))
    assert.truthy(om:find("# TYPE bhprobe_build info\n", 1, true))
    assert.equal("# EOF\n", om:sub(-6))
    local ok, err = pcall(bh.metrics.end_round, { keep = 0 })
    assert.is_false(ok)
    assert.matches("bh.metrics.end_round: option 'keep' must be an integer in %[1, 1000%]", err)
    assert.has_error(function() bh.metrics.end_round{ durtion = 1 } end)
    bh.metrics.reset()
  end)

  it("bh.every never overlaps runs and keeps going after an error", function()
    local log, running, overlap = {}, false, false
    local n = bh.run(function()
      return bh.every(0.01, function(i)
        if running then overlap = true end
        running = true
        bh.sleep(0.03) -- longer than the period
        running = false
        log[#log + 1] = i
        if i == 2 then error("boom") end
      end, { count = 4, jitter = 0 }):wait()
    end)
    assert.equal(4, n)
    assert.same({ 1, 2, 3, 4 }, log)
    assert.is_false(overlap)
  end)

  it("bh.every stops when a run returns false", function()
    local runs = bh.run(function()
      return bh.every(0.001, function(i) return i < 3 end, { jitter = 0 }):wait()
    end)
    assert.equal(3, runs)
  end)
end)
