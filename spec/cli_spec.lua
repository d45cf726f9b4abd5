-- The command line as lua5.4 has it (docs/lua-api.md §1), side by side:
-- each case runs the same arguments, environment and input through
-- Debian's lua5.4 and through the real binary ($BH_BIN), and compares
-- stdout, the exit status and the error lines (the program name aside;
-- tracebacks differ in their last frame). Then what the prompt adds,
-- through a pseudo-terminal (script(1)): completion of fields and
-- methods, internal names, numbers; and the names of stdout --report
-- accepts.
-- labels: program

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local LUA = "lua5.4"
local H = require "helpers"
local q, slurp, spit = H.q, H.slurp, H.spit

local tmp

before_each(function() tmp = H.tmpdir() end)
after_each(function() H.rmdir(tmp) end)

-- "env" clearing what the suite's own environment would add (its
-- LUA_PATH/LUA_CPATH for bh.so, the ASan preload of a sanitized tree:
-- lua5.4 is not instrumented), then setting env (name -> value).
local function env_prefix(env)
  local parts = { "env -u LD_PRELOAD" }
  for _, v in ipairs { "LUA_INIT", "LUA_INIT_5_4", "LUA_PATH", "LUA_PATH_5_4", "LUA_CPATH",
    "LUA_CPATH_5_4" } do
    parts[#parts + 1] = "-u " .. v
  end
  local names = {}
  for k in pairs(env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. q(env[k]) end
  return table.concat(parts, " ")
end

-- Runs prog with args (already quoted) in tmp; returns {rc=, out=, err=}.
local function run(prog, args, env, stdin)
  spit(tmp .. "/stdin", stdin or "")
  local _, how, code = os.execute(string.format("cd %s && %s timeout 30 %s %s <stdin >out 2>err",
    q(tmp), env_prefix(env), q(prog), args))
  assert.equal("exit", how)
  return { rc = code, out = slurp(tmp .. "/out"), err = slurp(tmp .. "/err") }
end

-- The error lines of stderr: up to a traceback, each program's name
-- replaced by PROG.
local function error_lines(err, prog)
  local name = prog:match("[^/]+$"):gsub("%p", "%%%0")
  local lines = {}
  for line in err:gmatch("[^\n]+") do
    if line == "stack traceback:" then break end
    lines[#lines + 1] = (line:gsub("^" .. name .. ": ", "PROG: "))
  end
  return table.concat(lines, "\n")
end

-- Runs both; asserts the same stdout, status and error lines; returns
-- bhprobe-lua's result.
local function same(args, env, stdin)
  local want = run(LUA, args, env, stdin)
  local got = run(BIN, args, env, stdin)
  assert.equal(want.out, got.out, "stdout")
  assert.equal(error_lines(want.err, LUA), error_lines(got.err, BIN), "stderr")
  assert.equal(want.rc, got.rc, "exit status; stderr: " .. got.err)
  return got
end

describe("lua5.4's environment", function()
  it("LUA_INIT runs first, before -e, with arg already set", function()
    local got = same("-e 'print(\"e\", X)'",
      { LUA_INIT = "X = 1 print('init', #arg, arg[0] ~= nil, arg[1], arg[2])" })
    assert.equal("init\t2\ttrue\t-e\tprint(\"e\", X)\ne\t1\n", got.out)
  end)

  it("LUA_INIT_5_4 wins over LUA_INIT", function()
    local got = same("-e 'print(X)'", { LUA_INIT_5_4 = "X = '5_4'", LUA_INIT = "X = 'plain'" })
    assert.equal("5_4\n", got.out)
  end)

  it("LUA_INIT=@FILE runs the file, before the script and its arguments", function()
    spit(tmp .. "/init.lua", "X = 'from file'\nprint('init', ...)\n")
    spit(tmp .. "/s.lua", "print('script', X, ...)\n")
    local got = same("-e 'print(X)' s.lua a b", { LUA_INIT = "@init.lua" })
    assert.equal("init\nfrom file\nscript\tfrom file\ta\tb\n", got.out)
  end)

  it("LUA_INIT runs before a script read from stdin", function()
    local got = same("- x", { LUA_INIT = "X = 42" }, "print(X, ...)\n")
    assert.equal("42\tx\n", got.out)
    got = same("", { LUA_INIT = "X = 43" }, "print(X)\n") -- no arguments: stdin too
    assert.equal("43\n", got.out)
  end)

  it("an error in LUA_INIT is named after its variable; nothing after it runs", function()
    local got = same("-e 'print(\"never\")'", { LUA_INIT = "error('boom')" })
    assert.equal(1, got.rc)
    assert.matches("^bhprobe%-lua: LUA_INIT:1: boom\n", got.err)
    got = same("-e 'print(\"never\")'", { LUA_INIT_5_4 = "print(" })
    assert.matches("^bhprobe%-lua: LUA_INIT_5_4:1: unexpected symbol near <eof>\n", got.err)
    got = same("-e 'print(\"never\")'", { LUA_INIT = "@" .. tmp .. "/missing.lua" })
    assert.matches("^bhprobe%-lua: cannot open [^\n]*missing%.lua", got.err)
    spit(tmp .. "/bad.lua", "local x = \n")
    got = same("-e 'print(\"never\")'", { LUA_INIT = "@bad.lua" })
    assert.matches("^bhprobe%-lua: bad%.lua:2: unexpected symbol near <eof>\n", got.err)
    -- Nor the prompt (the banners differ: compared without them).
    local want = run(LUA, "-i", { LUA_INIT = "error('boom')" }, "print('never')\n")
    got = run(BIN, "-i", { LUA_INIT = "error('boom')" }, "print('never')\n")
    assert.equal(1, want.rc)
    assert.equal(1, got.rc)
    assert.equal(want.out:gsub("^[^\n]*\n", ""), got.out:gsub("^[^\n]*\n", ""))
    assert.equal(error_lines(want.err, LUA), error_lines(got.err, BIN))
  end)

  it("-E ignores LUA_INIT and LUA_INIT_5_4", function()
    local got = same("-E -e 'print(X, Y)'", { LUA_INIT = "X = 1", LUA_INIT_5_4 = "Y = 2" })
    assert.equal("nil\tnil\n", got.out)
    got = same("-E", { LUA_INIT = "error('no')" }, "print('stdin')\n")
    assert.equal("stdin\n", got.out)
  end)

  it("require searches LUA_PATH/LUA_CPATH, and -E ignores them", function()
    os.execute("mkdir " .. q(tmp .. "/mods"))
    spit(tmp .. "/mods/mymod.lua", "return 'mine'\n")
    local env = { LUA_PATH_5_4 = "mods/?.lua", LUA_CPATH = "nowhere/?.so" }
    local code = q("print(package.path, package.cpath, pcall(require, 'mymod'))")
    local got = same("-e " .. code, env)
    assert.equal("mods/?.lua\tnowhere/?.so\ttrue\tmine\tmods/mymod.lua\n", got.out)
    got = same("-E -e " .. q("print(package.path ~= 'mods/?.lua', (pcall(require, 'mymod')))"), env)
    assert.equal("true\tfalse\n", got.out)
    same("-E -e " .. q("print(package.path, package.cpath)"), env) -- the same defaults
  end)

  it("-W turns warnings on where it stands", function()
    local got = same("-e 'warn(\"a\")' -W -e 'warn(\"b\")'", { LUA_INIT = "warn('init')" })
    assert.equal("Lua warning: b\n", got.err)
  end)

  it("-E is an option of its own: -Ex is refused (status 2 here, 1 in lua5.4)", function()
    local want = run(LUA, "-Ex")
    local got = run(BIN, "-Ex")
    assert.equal(1, want.rc)
    assert.equal(2, got.rc) -- a usage error is 2 (design §3)
    assert.equal(want.err:match("^[^\n]*"):gsub("^lua5%.4: ", ""),
      got.err:match("^[^\n]*"):gsub("^bhprobe%-lua: ", ""))
  end)
end)

-- Runs "prog args" on a pseudo-terminal (TERM=dumb: no escape sequences
-- of the terminal's own) with HOME = tmp, typing the keys of each step
-- once the terminal shows what the previous one waits for: a step is
-- KEYS (then wait for a prompt, "> ", after more output) or {KEYS, SUFFIX}
-- (wait for SUFFIX; false: no wait). A line typed while the previous one
-- still runs would be echoed by the terminal itself, before the prompt.
-- Ends with ^D. Returns what the terminal showed, from the line after the
-- banner on, and all of it.
local function tty(prog, args, env, steps)
  -- w SUFFIX: wait (at most 10 s) until tty.out grew past $n bytes and
  -- ends with SUFFIX; then n is its size.
  local feed = { [[w() { i=0; while [ $i -lt 200 ]; do s=$(stat -c %s tty.out); ]]
    .. [[if [ "$s" -gt "$n" ]; then case "$(tail -c 64 tty.out)" in *"$1") n=$s; return;; ]]
    .. [[esac; fi; sleep 0.05; i=$((i+1)); done; n=$(stat -c %s tty.out); }; n=0; w '> ']] }
  for _, step in ipairs(steps) do
    local keys, suffix = step, "> "
    if type(step) == "table" then keys, suffix = step[1], step[2] end
    feed[#feed + 1] = "printf '%s' " .. q(keys)
    if suffix then feed[#feed + 1] = "w " .. q(suffix) end
  end
  feed[#feed + 1] = "printf '\\004'"
  local cmd = env_prefix(env) .. " TERM=dumb HOME=" .. q(tmp) .. " " .. q(prog) .. " " .. args
  os.execute(string.format("cd %s && : >tty.out && (%s) | env -u LD_PRELOAD timeout 60 "
    .. "script -eqfc %s /dev/null >tty.out 2>&1", q(tmp), table.concat(feed, "; "), q(cmd)))
  local out = slurp(tmp .. "/tty.out") or ""
  return (out:gsub("^[^\n]*\n", "", 1)), out
end

describe("the prompt, as lua5.4's", function()
  it("shows _PROMPT and _PROMPT2 through tostring, read before each line", function()
    local lines = {
      "_PROMPT = 'P> '\n", "for i = 1, 1 do\n", "_PROMPT2 = setmetatable({}, "
        .. "{__tostring = function() return 'C>> ' end})\n", "end\n", "for i = 1, 1 do\n",
      "end\n", { "_PROMPT = 42\n", "42" }, "_PROMPT = nil\n", "1 + 1\n",
    }
    local want = tty(LUA, "-i", nil, lines)
    local got, all = tty(BIN, "-i", nil, lines)
    assert.truthy(got:find("C>> end\r\nP> _PROMPT = 42\r\n42_PROMPT = nil\r\n> 1 + 1\r\n2\r\n",
      1, true), all)
    assert.equal(want, got)
  end)

  it("LUA_INIT runs before the prompt (and may set it)", function()
    local env = { LUA_INIT = "_PROMPT = 'init> '" }
    local lines = { "x = 1\n" }
    local got, all = tty(BIN, "-i", env, lines)
    assert.truthy(got:find("init> x = 1\r\ninit> ", 1, true), all)
    assert.equal(tty(LUA, "-i", env, lines), got)
  end)
end)

describe("the prompt's completion", function()
  -- A probe handle h (and its responder r) at the prompt, then keys.
  local function at_prompt(keys)
    local setup = "ep = {namespace_id = 'c', path = os.getenv('HOME') .. '/c.sock'}; "
      .. "me = bh.identity.current{endpoint = ep}; r = bh.respond(ep, me); h = bh.probe(ep, me)\n"
    local lines = { setup }
    for _, k in ipairs(keys) do lines[#lines + 1] = k end
    return tty(BIN, "-i", nil, lines)
  end

  it("offers a handle's fields with its methods, and a table's fields", function()
    local out = at_prompt { { "h.\t\t", "> h." }, { "\021r.\t\t", "> r." },
      { "\021h.tim\t.\t\t", "> h.timings." }, "\021p = bh.identity.prepare(me)\n",
      "p.exe_p\t\n" }
    -- The list after h.<Tab><Tab>: every field, built on demand, and method.
    local list = out:match("%f[%w_]h%.\a?\r\n(.-)\r\n> ")
    assert.truthy(list, out)
    for _, name in ipairs { "identity", "peer_pid", "elapsed", "timings", "alive", "shutdown",
      "close" } do
      assert.truthy(list:find("h." .. name .. " ", 1, true), name .. " in: " .. list)
    end
    list = out:match("%f[%w_]r%.\a?\r\n(.-)\r\n> ")
    for _, name in ipairs { "served", "rejected", "closed", "endpoint", "close", "wait" } do
      assert.truthy(list:find("r." .. name, 1, true), name .. " in: " .. tostring(list))
    end
    -- h.tim<Tab> completes the field; then its table's keys.
    list = out:match("%f[%w_]h%.timings%.\a?\r\n(.-)\r\n> ")
    for _, name in ipairs { "connect", "exchange", "verify" } do
      assert.truthy(list:find("h.timings." .. name, 1, true), name .. " in: " .. tostring(list))
    end
    -- A prepared identity (a userdata) offers its fields too.
    assert.truthy(out:find("> p.exe_path\r\n/", 1, true), out)
  end)

  it("hides internal _ names until _ is typed", function()
    local out = at_prompt { { "bh.\t\t", "> bh." }, { "\021bh._\t\t", "> bh._" },
      { "\021h:\t\t", "> h:" }, { "\021", false } }
    local list = assert(out:match("%f[%w_]bh%.\a?\r\n(.-)\r\n> "), out)
    assert.truthy(list:find("bh.probe ", 1, true), list)
    assert.is_nil(list:find("bh._", 1, true), list)
    list = assert(out:match("%f[%w_]bh%._\a?\r\n(.-)\r\n> "), out)
    for _, name in ipairs { "_in_task", "_check_arg", "_check_opts", "_VERSION" } do
      assert.truthy(list:find("bh." .. name, 1, true), name .. " in: " .. list)
    end
    -- After a colon: methods only, no fields.
    list = assert(out:match("%f[%w_]h:\a?\r\n(.-)\r\n> "), out)
    assert.truthy(list:find("h:alive", 1, true), list)
    assert.is_nil(list:find("h:timings", 1, true), list)
  end)

  it("lists in __fields what the objects answer, and every field the docs name", function()
    local bh = require "bh"
    local reg = debug.getregistry()
    local ep = H.endpoint(tmp)
    bh.run(function()
      local me = assert(bh.identity.current { endpoint = ep, idle_timeout_secs = 5 })
      local r <close> = assert(bh.respond(ep, me))
      local h <close> = assert(bh.probe(ep, me))
      for class, obj in pairs { ["bh.handle"] = h, ["bh.responder"] = r,
        ["bh.identity"] = bh.identity.prepare(me) } do
        local fields = assert(reg[class].__fields, class)
        assert.truthy(#fields > 0, class)
        for _, f in ipairs(fields) do assert.is_not_nil(obj[f], class .. "." .. f) end
      end
    end)
    local docs = assert(slurp("docs/lua-api.md"))
    for var, class in pairs { h = "bh.handle", r = "bh.responder" } do
      local offered = {}
      for _, f in ipairs(reg[class].__fields) do offered[f] = true end
      for f in pairs(reg[class].methods) do offered[f] = true end
      local n = 0
      for f in docs:gmatch("%f[%w_]" .. var .. "%.([%a_][%w_]*)") do
        n = n + 1
        assert.truthy(offered[f], var .. "." .. f .. " is documented but not offered")
      end
      assert.truthy(n > 0, var)
    end
  end)
end)

describe("the prompt's numbers", function()
  it("prints a number alone in full, floats in tables with 4 digits", function()
    spit(tmp .. "/stdin", "x = 1 / 3\nx\n{x, 2.5e-05, 10}\n")
    local _, how, code = os.execute(string.format("cd %s && env -u LD_PRELOAD %s -i <stdin >out",
      q(tmp), q(BIN)))
    assert.equal("exit", how)
    assert.equal(0, code)
    local out = slurp(tmp .. "/out")
    assert.truthy(out:find("> 0.33333333333333\n> { 0.3333, 2.5e-05, 10 }\n", 1, true), out)
  end)

  it("h.timings fits on one line", function()
    local out = tty(BIN, "-i", nil, {
      "ep = {namespace_id = 'c', path = os.getenv('HOME') .. '/t.sock'}; "
        .. "me = bh.identity.current{endpoint = ep}; r = bh.respond(ep, me); "
        .. "h = bh.probe(ep, me)\n",
      "h.timings\n", "h.elapsed == tonumber(tostring(h.elapsed))\n" })
    local num = "%d[%d.]*e?[-+]?%d*"
    local line = out:match("> h%.timings\r\n([^\r\n]*)\r\n")
    assert.truthy(line, out)
    assert.matches("^{ connect = " .. num .. ", exchange = " .. num .. ", verify = " .. num
      .. " }$", line)
    for n in line:gmatch("= ([^,}]+)") do
      local mantissa = n:match("^([%d.]+)"):gsub("%.", ""):gsub("^0+", "")
      assert.truthy(#mantissa <= 4, n)
    end
  end)
end)

describe("--report names for stdout", function()
  for _, name in ipairs { "-", "/dev/stdout", "/proc/self/fd/1", "/dev/fd/1" } do
    it(name .. " is stdout, and leaves bh.options.report nil", function()
      local got = run(BIN, "--report " .. q(name)
        .. " -e 'print(bh.options.report) bh.report{a = 1} print(\"after\")'")
      assert.equal(0, got.rc, got.err)
      assert.equal("nil\n{\"a\":1}\nafter\n", got.out)
      assert.is_false(H.exists(tmp .. "/-"))
    end)
  end

  it("a file named like them elsewhere is still a file", function()
    local got = run(BIN, "--report ./- -e 'bh.report{a = 2}'")
    assert.equal(0, got.rc, got.err)
    assert.equal("", got.out)
    assert.equal("{\"a\":2}\n", slurp(tmp .. "/-"))
  end)
end)
