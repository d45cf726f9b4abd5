-- bh.report, bh.probe_record, bh.verdict, bh.metrics, bh.every.
-- labels: report verdict metrics helpers
local H = require "helpers"
local json = require "dkjson"
local bh = require "bh"

describe("bh.report", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function()
    bh.options.report, bh.options.name = nil, nil
    H.rmdir(dir)
  end)

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
    bh.options.name = 'my"inst'
    bh.metrics.observe{ service = 's"q', endpoint = { namespace_id = "n", path = "/p" },
      verdict = "stale", code = "connect", elapsed_ms = 5 }
    local text = bh.metrics.render()
    local want = 'bhprobe_probe_failures_total'
      .. '{policy="my\\"inst",service="s\\"q",namespace="n",path="/p",code="connect"} 1'
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
    bh.options.name = "p"
    bh.metrics.observe(rec("a", "verified"))
    bh.metrics.observe(rec("b", "stale"))
    bh.metrics.observe{ verdict = "invalid", code = "manifest_decode", endpoint = {} }
    bh.metrics.end_round{ duration = 0.25 }
    local text = bh.metrics.render()
    assert.truthy(text:find('bhprobe_probe_success{policy="p",service="b",namespace="n",'
      .. 'path="/b"} 0', 1, true))
    assert.truthy(text:find('bhprobe_round_targets{policy="p",verdict="invalid"} 1', 1, true))
    assert.truthy(text:find('bhprobe_round_targets{policy="p",verdict="stale"} 1', 1, true))
    assert.truthy(text:find('bhprobe_round_duration_seconds{policy="p"} 0.25\n', 1, true))
    assert.truthy(text:find('bhprobe_rounds_total{policy="p"} 1\n', 1, true))
    assert.truthy(text:find('bhprobe_last_round_success_timestamp_seconds{policy="p"} ', 1, true))
    assert.truthy(text:find('bhprobe_build_info{policy="p",version="' .. bh._VERSION
      .. '",lua="Lua 5.4",running_process="4.1.0,4.10.6"} 1', 1, true))
    -- a one-shot policy says no period; every sample carries the policy
    assert.is_nil(text:find("bhprobe_round_period_seconds", 1, true))
    for line in text:gmatch("[^\n]+") do
      if line:sub(1, 1) ~= "#" then assert.matches('^[%w_]+{policy="p"[,}]', line) end
    end
    bh.metrics.observe(rec("a", "verified")) -- b is gone
    bh.metrics.end_round{ duration = 0.1, keep = 2 }
    assert.truthy(bh.metrics.render():find('path="/b"', 1, true)) -- kept for 2 rounds
    bh.metrics.observe(rec("a", "verified"))
    bh.metrics.end_round{ duration = 0.1, keep = 2 }
    text = bh.metrics.render()
    assert.is_nil(text:find('path="/b"', 1, true))
    assert.truthy(text:find('bhprobe_round_targets{policy="p",verdict="stale"} 0', 1, true))
    -- OpenMetrics: counter families without _total, info type, # EOF.
    local om = bh.metrics.render(true)
    assert.truthy(om:find('# TYPE bhprobe_rounds counter\nbhprobe_rounds_total{policy="p"} 3\n',
      1, true))
    assert.truthy(om:find("# TYPE bhprobe_build info\n", 1, true))
    assert.equal("# EOF\n", om:sub(-6))
    local ok, err = pcall(bh.metrics.end_round, { keep = 0 })
    assert.is_false(ok)
    assert.matches("bh.metrics.end_round: option 'keep' must be an integer in %[1, 1000%]", err)
    assert.has_error(function() bh.metrics.end_round{ durtion = 1 } end)
    bh.metrics.reset()
  end)

  it("says the rounds' period, and names the policy after the script by default", function()
    bh.metrics.reset()
    bh.metrics.end_round{ duration = 0.1, period = 30 }
    local script = arg[0]:match("([^/]*)$"):gsub("%.lua$", "")
    assert.equal(script, bh.metrics.policy_name())
    assert.truthy(bh.metrics.render():find('bhprobe_round_period_seconds{policy="' .. script
      .. '"} 30\n', 1, true))
    bh.options.name = "x"
    bh.metrics.end_round{ duration = 0.1 } -- the period stays what it was
    assert.truthy(bh.metrics.render():find('bhprobe_round_period_seconds{policy="x"} 30\n', 1,
      true))
    assert.has_error(function() bh.metrics.end_round{ period = 0 } end,
      "bh.metrics.end_round: option 'period' must be a number in (0, 1000000000], got 0")
    bh.metrics.reset()
  end)

  it("answers a probe with its failure code and no record without series", function()
    bh.options.name = "one"
    local text = bh.metrics.render_records{
      { service = "s", endpoint = { namespace_id = "n", path = "/s.sock" }, verdict = "squatted",
        code = "pid_not_found", elapsed_ms = 1 },
      { service = "v", endpoint = { namespace_id = "n", path = "/v.sock" }, verdict = "verified",
        code = bh.null, elapsed_ms = 1 },
      { verdict = "invalid", code = "manifest_decode", endpoint = { namespace_id = bh.null,
        path = bh.null } } }
    assert.truthy(text:find('\nbhprobe_probe_failed_code{policy="one",service="s",namespace="n",'
      .. 'path="/s.sock",code="pid_not_found"} 1\n', 1, true))
    -- the unreadable manifest is a failed probe too, without labels to say more
    assert.truthy(text:find('\nbhprobe_probe_success{policy="one",service="",namespace="",'
      .. 'path=""} 0\n', 1, true))
    assert.truthy(text:find('code="manifest_decode"} 1\n', 1, true))
    local _, n = text:gsub("\nbhprobe_probe_failed_code{", "")
    assert.equal(2, n) -- the verified record has none
  end)

  it("lists the last round's records for service discovery, grouped by labels", function()
    bh.metrics.reset()
    bh.options.name = "sd"
    assert.equal("[]\n", bh.metrics.render_sd())
    local function rec(service, manifest, generation, verdict)
      return { service = service, endpoint = { namespace_id = "n", path = "/" .. service },
        verdict = verdict or "verified", code = bh.null, manifest = manifest,
        generation = generation }
    end
    bh.metrics.observe(rec("b", "/r/b/m.pb", 2, "stale"))
    bh.metrics.observe(rec("a", "/r/a2/m.pb", 2))
    bh.metrics.observe(rec("a", "/r/a1/m.pb", 2))
    bh.metrics.observe(rec("a", "/r/a0/m.pb", 1))
    bh.metrics.observe(rec("x", nil)) -- not a target without a manifest
    assert.equal("[]\n", bh.metrics.render_sd()) -- the round has not ended
    bh.metrics.end_round{ duration = 0.1 }
    local sd = json.decode(bh.metrics.render_sd())
    assert.same({
      { targets = { "/r/a0/m.pb" },
        labels = { service = "a", namespace = "n", generation = "1", policy = "sd" } },
      { targets = { "/r/a1/m.pb", "/r/a2/m.pb" },
        labels = { service = "a", namespace = "n", generation = "2", policy = "sd" } },
      { targets = { "/r/b/m.pb" },
        labels = { service = "b", namespace = "n", generation = "2", policy = "sd" } },
    }, sd)
    -- a string from a record is cut in a label (and the manifest kept whole)
    bh.metrics.observe(rec(("s"):rep(5000), "/r/long/m.pb", 2))
    bh.metrics.end_round{ duration = 0.1 }
    sd = json.decode(bh.metrics.render_sd())
    assert.equal(1, #sd)
    assert.is_true(#sd[1].labels.service < 300)
    assert.same({ "/r/long/m.pb" }, sd[1].targets)
    bh.metrics.reset()
  end)

  it("renders the front page with every string from a record escaped and cut", function()
    bh.metrics.reset()
    bh.options.name = "<b>inst</b>"
    assert.matches("No round has ended yet", bh.metrics.render_index())
    bh.metrics.observe{ service = "<script>alert(1)</script>", endpoint = { namespace_id = "a&b",
      path = '/x"y' }, verdict = "impostor", code = "identity_mismatch", elapsed_ms = 1.5,
      manifest = "/r/x y/<m>.pb" }
    bh.metrics.observe{ service = ("z"):rep(100000), endpoint = { namespace_id = "n",
      path = "/z" }, verdict = "verified", code = bh.null, elapsed_ms = 0.25 }
    bh.metrics.end_round{ duration = 0.5 }
    local page = bh.metrics.render_index()
    assert.matches("^<!DOCTYPE html>", page)
    assert.is_nil(page:find("<script>", 1, true))
    assert.is_nil(page:find("<b>inst", 1, true))
    assert.truthy(page:find("&lt;b&gt;inst&lt;/b&gt;", 1, true))
    assert.truthy(page:find("&lt;script&gt;alert(1)&lt;/script&gt;", 1, true))
    assert.truthy(page:find("<td>a&amp;b</td><td>/x&quot;y</td><td>impostor</td>", 1, true))
    assert.truthy(page:find('href="/probe?manifest=/r/x%20y/%3Cm%3E.pb&amp;debug=true"', 1,
      true))
    assert.truthy(page:find('<a href="/metrics">', 1, true))
    assert.truthy(page:find('<a href="/sd">', 1, true))
    assert.truthy(page:find("1 verified, 1 impostor", 1, true))
    assert.is_true(#page < 5000) -- the 100 kB service name was cut
    bh.metrics.reset()
  end)

  it("describes a record, its steps and timings, on capped lines", function()
    local text = bh.describe{ manifest = "/r/m.pb", service = "svc\nINJECTED",
      endpoint = { namespace_id = "n", path = "/s.sock" }, pid = 42, verdict = "stale",
      code = "pid_not_found", message = ("m"):rep(10000), elapsed_ms = 1.25, generation = 2,
      steps = { { step = "read manifest", ms = 0.05, result = "ok", detail = "generation 2" },
        { step = "attempt 1", ms = 1.2, result = "pid_not_found" } } }
    local lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("manifest   /r/m.pb", lines[1])
    assert.equal("service    svc INJECTED", lines[2])
    assert.equal("endpoint   /s.sock", lines[3])
    assert.truthy(text:find("\nsteps:\n       0.050 ms  read manifest: ok (generation 2)\n"
      .. "       1.200 ms  attempt 1: pid_not_found\n", 1, true))
    assert.truthy(text:find("\nverdict    stale\ncode       pid_not_found\n", 1, true))
    assert.truthy(text:find("\nelapsed    1.250 ms\n$"))
    for _, l in ipairs(lines) do assert.is_true(#l < 300, l:sub(1, 40)) end
    assert.has_error(function() bh.describe("x") end,
      "bad argument #1 to 'bh.describe' (table expected, got string)")
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
