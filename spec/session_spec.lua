-- The whole command line as one run, and the -i prompt (docs/lua-api.md
-- §1), through the real binary ($BH_BIN): -e, -l, the script and the
-- prompt share one loop; the prompt's =expr, pretty printing, history,
-- completion and background output. Terminal cases run the prompt under
-- script(1) (a pseudo-terminal), with HOME set to the test's directory.
-- labels: program task

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local H = require "helpers"
local q, slurp, spit = H.q, H.slurp, H.spit

local tmp

before_each(function() tmp = H.tmpdir() end)
after_each(function() H.rmdir(tmp) end)

-- Runs bhprobe-lua with args (already quoted) and stdin text; returns
-- exit status, stdout, stderr.
local function run(args, stdin)
  spit(tmp .. "/stdin", stdin or "")
  local _, how, code = os.execute(string.format("cd %s && timeout 60 %s %s <stdin >out 2>err",
    q(tmp), q(BIN), args))
  assert.equal("exit", how)
  return code, slurp(tmp .. "/out"), slurp(tmp .. "/err")
end

-- Runs "bhprobe-lua args" on a pseudo-terminal fed by the shell commands
-- in feed (printf/sleep), with HOME = tmp; returns the terminal's output.
local function run_tty(args, feed)
  local cmd = q(BIN) .. " " .. args
  os.execute(string.format("cd %s && (%s) | HOME=%s env -u LD_PRELOAD timeout 30 "
    .. "script -eqfc %s /dev/null >tty.out 2>&1", q(tmp), feed, q(tmp), q(cmd)))
  return slurp(tmp .. "/tty.out") or ""
end

local function script(name, text)
  spit(tmp .. "/" .. name, text)
  return name
end

describe("one run for the whole command line", function()
  it("-e chunks share it: what one opens, the next uses", function()
    local rc, out, err = run(string.format(
      "-e %s -e %s", q("ep = {namespace_id = 's', path = os.getenv('PWD') .. '/e.sock'}; "
        .. "id = bh.identity.current{endpoint = ep}; r = assert(bh.respond(ep, id))"),
      q("print(bh.probe_response(ep, id), r.served)")))
    assert.equal(0, rc, err)
    assert.equal("true\t1\n", out)
    assert.is_false(H.exists(tmp .. "/e.sock")) -- closed when the run ended
  end)

  it("-i continues the script's session: its responder and tasks live on", function()
    script("setup.lua", [[
      ep = { namespace_id = "s", path = os.getenv("PWD") .. "/r.sock" }
      id = bh.identity.current { endpoint = ep }
      r = assert(bh.respond(ep, id))
      n = 0
      bh.spawn(function() while true do n = n + 1; bh.sleep(0.01) end end)
    ]])
    local rc, out, err = run("-i setup.lua", table.concat({
      "bh.sleep(0.1)",
      "=n > 3, r.closed",
      "=bh.probe_response(ep, id)",
      "=r.served",
    }, "\n") .. "\n")
    assert.equal(0, rc, err)
    assert.is_truthy(out:find("> true\tfalse\n", 1, true), out)
    assert.is_truthy(out:find("> true\n", 1, true), out)
    assert.is_truthy(out:find("> 1\n", 1, true), out)
    assert.is_false(H.exists(tmp .. "/r.sock")) -- unlinked at end of input
  end)

  it("-l runs the module as a task (its top level may yield)", function()
    script("slowmod.lua", "bh.sleep(0.01) return { answer = 42 }")
    local rc, out, err = run("-l slowmod -e 'print(slowmod.answer)'")
    assert.equal(0, rc, err)
    assert.equal("42\n", out)
  end)

  it("stops at the first failing chunk, before the prompt", function()
    local rc, out, err = run("-e 'error(\"early\")' -i", "print('never')\n")
    assert.equal(1, rc)
    assert.is_nil(out:find("never", 1, true))
    assert.matches("bhprobe%-lua: %(command line%):1: early", err)
  end)
end)

describe("the prompt", function()
  it("=expr prints the value, as in Lua 5.1 and lua5.4 -i", function()
    local rc, out = run("-i", "=1 + 2\n= 'a', 'b'\n")
    assert.equal(0, rc)
    assert.is_truthy(out:find("> 3\n", 1, true), out)
    assert.is_truthy(out:find("> a\tb\n", 1, true), out)
  end)

  it("pretty-prints identities, errors, nested tables and cycles", function()
    local rc, out, err = run("-i", table.concat({
      "id = bh.identity.current{endpoint = {namespace_id = 'n', path = 'p.sock'}}",
      "id",
      "none = {namespace_id = 'n', path = os.getenv('PWD') .. '/none.sock'}",
      "select(2, bh.probe_response(none, id))",
      "t = {1, 'two', nested = {deep = {true}}} t.self = t",
      "t",
    }, "\n") .. "\n")
    assert.equal(0, rc, err)
    assert.matches("\n  pid = %d+,\n", out)
    assert.matches("ipc_endpoint = { namespace_id = \"n\", path = \"p.sock\" }", out)
    assert.matches("> bh%.error{\n  code = \"connect\",\n  message = "
      .. "\"connect to [^\"]*none%.sock: [^\"]*\",\n  stage = \"response\",\n"
      .. "  timings = { connect = [%d.e-]+ },\n}\n", out)
    assert.is_truthy(out:find('{ 1, "two", nested = { deep = { true } }, self = <cycle> }',
      1, true), out)
  end)

  it("keeps whole chunks in ~/.bhprobe_history (mode 0600) across sessions", function()
    run_tty("-i", [[printf 'for i = 1, 2 do\nprint(i)\nend\nx = 1\n'; sleep 0.3; printf '\004']])
    local hist = slurp(tmp .. "/.bhprobe_history")
    assert.is_truthy(hist, slurp(tmp .. "/tty.out"))
    assert.matches("#%d+\nfor i = 1, 2 do\nprint%(i%)\nend\n#%d+\nx = 1\n", hist)
    local p = io.popen("stat -c %a " .. q(tmp .. "/.bhprobe_history"))
    assert.equal("600", p:read("l"))
    p:close()
    -- The next session starts with it: up arrow brings back the chunk.
    local out = run_tty("-i", [[sleep 0.3; printf '\033[A\033[A\r'; sleep 0.3; printf '\004']])
    assert.is_truthy(out:find("1\r\n2\r\n", 1, true), out)
  end)

  it("completes globals and bh. fields with tab", function()
    local out = run_tty("-i", [[sleep 0.3; printf 'y = bh.identity.to_js\t\n'; ]]
      .. [[printf '=type(y)\n'; printf 'prin\t("done")\n'; sleep 0.3; printf '\004']])
    assert.is_truthy(out:find("y = bh.identity.to_json\r", 1, true), out)
    assert.is_truthy(out:find("function\r\n", 1, true), out)
    assert.is_truthy(out:find("print(\"done\")", 1, true), out)
  end)

  it("puts background output above the line being typed", function()
    local out = run_tty("-i", [[sleep 0.3; ]]
      .. [[printf 'bg = bh.spawn(function() for i = 1, 3 do ]]
      .. [[bh.sleep(0.2) print("tick" .. i) end end)\n'; ]]
      .. [[sleep 0.1; printf 'x = '; sleep 1; printf '42\n=x\n'; sleep 0.3; printf '\004']])
    for i = 1, 3 do
      assert.is_truthy(out:find("tick" .. i, 1, true), out)
      assert.is_nil(out:find("x = tick" .. i, 1, true), "tick" .. i .. " glued to the line")
    end
    assert.is_truthy(out:find("> x = 42\r", 1, true), out) -- the line came back, whole
    assert.matches("=x\r\n[^\n]-42\r\n", out)
  end)
end)
