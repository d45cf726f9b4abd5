-- The host's start-up checks of --report, --metrics and --listen (design
-- §3.2): exit 2 with the reason before any script runs.
-- External tools run with `env -u LD_PRELOAD`: in the sanitized tree the
-- labels: program report http
local H = require "helpers"
local R = require("hostrun")()
local q = H.q
local poll_file, start, run = R.poll_file, R.start, R.run
-- The source tree (ctest runs the specs from it), for etc/policies.
local ROOT = assert(io.popen("pwd")):read("l")

local tmp
before_each(function() tmp = R.enter() end)
after_each(R.leave)

describe("start-up checks", function()
  local cases = {
    { "--report /nonexistent/dir/r.jsonl",
      "%-%-report: report file /nonexistent/dir/r.jsonl: No such" },
    { "--metrics /nonexistent/dir/m.prom",
      "%-%-metrics: .*/nonexistent" },
    { "--listen 300.1.2.3:9", "%-%-listen: listen address '300.1.2.3:9'" },
    { "--listen 127.0.0.1:99999", "%-%-listen: listen address" },
  }
  for _, c in ipairs(cases) do
    it("exits 2 with the reason before the script runs: " .. c[1], function()
      local rc, out, err = run(c[1] .. " -e " .. q("print('ran')"))
      assert.equal(2, rc)
      assert.equal("", out)
      assert.matches("^bhprobe%-lua: " .. c[2], err)
    end)
  end

  it("exits 2 instead of running forever with --every and an unwritable --report", function()
    local p = start("--report /nonexistent/dir/r.jsonl "
      .. q(ROOT .. "/etc/policies/manifests.lua") .. " " .. q(tmp) .. " --every 0.1")
    assert.equal(2, p.status())
  end)

  it("exits 2 when the --listen port is taken", function()
    local p = start("--listen 127.0.0.1:0 -e " .. q([[
      print("at " .. bh.options.listen_address) io.stdout:flush() bh.sleep(60)]]))
    local addr = poll_file("out", "at (%S+)")
    local rc, _, err = run("--listen " .. addr .. " -e " .. q("print('ran')"))
    p.kill("TERM")
    assert.equal(143, p.status())
    assert.equal(2, rc)
    assert.matches("Address already in use", err)
  end)
end)
