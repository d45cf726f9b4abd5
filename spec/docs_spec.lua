-- docs/lua-api.md documents the whole bh module: every function and field
-- of the bh table (walked here, so a new name fails this test until the
-- page mentions it: add a line about it, in the section where a user
-- would look), every method of its objects, every error code of the core
-- and every reply mode of the responder. The three policies of its tour
-- (lua-api.md §12) are run through the real binary. Last, the design is in
-- the repository: every section cited in the tree exists in docs/design.md,
-- nothing points outside the repository, no Markdown link is broken.
-- labels: docs status hostile

local bh = require "bh"
local H = require "helpers"

local DOC = assert(H.slurp("docs/lua-api.md"), "run from the repository root")
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")

-- Does the page mention name as a whole word (not as the start of a
-- longer name: "bh.probe" is not mentioned by "bh.probe_record")?
local function mentions(name)
  local pat = name:gsub("%p", "%%%0") .. "[^%w_]"
  return (DOC .. "\n"):find(pat) ~= nil
end

-- Every public name of t as prefix.key, sub-tables included (two levels).
local function names(t, prefix, out, depth)
  for k, v in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      local full = prefix .. "." .. k
      out[#out + 1] = full
      if type(v) == "table" and depth > 1 and k ~= "options" and #v == 0 then
        names(v, full, out, depth - 1)
      end
    end
  end
  return out
end

local function undocumented(list)
  local missing = {}
  for _, n in ipairs(list) do
    if not mentions(n) then missing[#missing + 1] = n end
  end
  table.sort(missing)
  return missing
end

-- The quoted names of a C table in a source file ({"name", ...} entries).
local function c_names(path, pattern)
  local out = {}
  for n in assert(H.slurp(path)):gmatch(pattern) do out[#out + 1] = "`" .. n .. "`" end
  return out
end

describe("docs/lua-api.md", function()
  it("mentions every public name of the bh table", function()
    assert.same({}, undocumented(names(bh, "bh", {}, 2)))
    assert.same({}, undocumented { "bh._VERSION", "bh._RUNNING_PROCESS" })
  end)

  it("mentions every method and field of bh's objects", function()
    local reg = debug.getregistry()
    local list = {}
    for mt, prefix in pairs { ["bh.task"] = "task:", ["bh.handle"] = "h:",
                              ["bh.responder"] = "r:", ["bh.registry"] = "registry:" } do
      local m = reg[mt].methods or reg[mt].__index
      for k in pairs(m) do list[#list + 1] = prefix .. k end
    end
    for k in pairs(getmetatable(bh.threshold()).__index) do
      if k:sub(1, 2) ~= "__" then list[#list + 1] = "t:" .. k end
    end
    for _, f in ipairs { "h.identity", "h.peer_pid", "h.peer", "h.elapsed", "h.timings",
                         "err.peer", "err.successor", "registry.path", "registry.exists",
                         "err.timings", "err.code", "err.stage", "err.message", "err.field",
                         "r.served", "r.rejected", "r.closed", "r.endpoint", "t.state",
                         "t.successes", "t.failures", "req.request_id", "req.nonce",
                         "results.n" } do
      list[#list + 1] = f
    end
    assert.same({}, undocumented(list))
  end)

  it("lists every error code of the core", function()
    local codes = c_names("src/core/status.c", '%] = {"([%w_]+)", "[%w_]+"}')
    assert.is_true(#codes > 20)
    local missing = {}
    for _, c in ipairs(codes) do
      if c ~= "`ok`" and not DOC:find(c, 1, true) then missing[#missing + 1] = c end
    end
    assert.same({}, missing)
  end)

  it("lists every reply mode of the responder", function()
    local modes = c_names("src/core/hostile.c", '%] = {"([%w_]+)", "[%w_]+"}')
    assert.is_true(#modes > 20)
    for _, m in ipairs { "normal", "drop", "silent", "trickle", "raw" } do
      modes[#modes + 1] = "`" .. m .. "`"
    end
    local missing = {}
    for _, m in ipairs(modes) do
      if not DOC:find("| " .. m .. " |", 1, true) then missing[#missing + 1] = m end
    end
    assert.same({}, missing)
  end)
end)

-- The tour's policies: each ```lua block starting "-- tour/NAME" is
-- written to NAME and run by the case of that name.
describe("the tour's policies", function()
  local blocks = {}
  for code in DOC:gmatch("```lua\n(.-)```") do
    local name = code:match("^%-%- tour/([%w_]+%.lua)")
    if name then blocks[name] = code end
  end

  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  local function policy(name)
    assert.is_truthy(blocks[name], "the tour has no " .. name)
    H.spit(dir .. "/" .. name, blocks[name])
    return name
  end

  local function run(args)
    local _, how, code = os.execute(string.format("cd %s && timeout 60 %s %s >out 2>err",
      H.q(dir), H.q(BIN), args))
    assert.equal("exit", how)
    return code, H.slurp(dir .. "/out"), H.slurp(dir .. "/err")
  end

  it("has a case for each policy", function()
    local n = 0
    for name in pairs(blocks) do
      n = n + 1
      assert.is_truthy(({ ["check_one.lua"] = 1, ["watch_all.lua"] = 1,
                          ["simulate.lua"] = 1 })[name], "no test runs tour/" .. name)
    end
    assert.equal(3, n)
  end)

  it("check_one.lua verifies a live daemon and rejects a stale record", function()
    local d = H.start_daemon(bh, dir, "live")
    local stale = H.copy(bh, d.identity)
    stale.pid = 2 ^ 31 - 2
    H.spit(dir .. "/live.json", bh.identity.to_json(d.identity))
    H.spit(dir .. "/stale.json", bh.identity.to_json(stale))
    local rc, out, err = run(policy("check_one.lua") .. " live.json")
    d.kill("KILL")
    assert.equal(0, rc, err)
    assert.matches("^verified pid %d+ in [%d.]+ ms %(exchange [%d.]+ ms%)\n$", out)
    rc, out = run("check_one.lua stale.json")
    assert.equal(1, rc)
    assert.matches("^stale: pid_not_found", out)
    assert.equal(2, (run("check_one.lua")))
  end)

  it("watch_all.lua reports each state change until SIGTERM", function()
    local d = H.start_daemon(bh, dir, "watched")
    H.spit(dir .. "/w.json", bh.identity.to_json(d.identity))
    policy("watch_all.lua")
    os.execute(string.format("cd %s && (%s watch_all.lua 0.2 w.json >out 2>err & echo $! >pid; "
      .. "wait $!; echo $? >rc) >/dev/null 2>&1 &", H.q(dir), H.q(BIN)))
    local function wait_for(pattern)
      for _ = 1, 300 do
        local s = H.slurp(dir .. "/out") or ""
        if s:find(pattern) then return s end
        os.execute("sleep 0.05")
      end
      error("timed out waiting for " .. pattern .. "; stderr: " .. tostring(H.slurp(dir .. "/err")))
    end
    wait_for('"state":"healthy"')
    d.kill("KILL")
    local out = wait_for('"state":"unhealthy"')
    -- gone (pid_not_found), or a zombie nobody reaped yet (exe_path)
    assert.matches('"code":"[%w_]+","file":"w.json","state":"unhealthy"', out)
    local pid = H.slurp(dir .. "/pid"):match("%d+")
    os.execute("kill -TERM " .. pid)
    for _ = 1, 200 do
      if (H.slurp(dir .. "/rc") or ""):match("%d") then break end
      os.execute("sleep 0.05")
    end
    assert.equal("143", H.slurp(dir .. "/rc"):match("%d+"))
  end)

  it("simulate.lua sees each behaviour get its verdict", function()
    local rc, out, err = run(policy("simulate.lua") .. " " .. H.q(dir))
    assert.equal(0, rc, (out or "") .. (err or ""))
    assert.matches("normal%s+verified", out)
    assert.matches("slow%s+verified", out)
    assert.matches("silent%s+unreachable%s+timeout", out)
    assert.matches("wrong_nonce%s+impostor", out)
    assert.matches("served 4, rejected 2", out) -- hostile answers are sent in full
  end)
end)

-- The design lives in the repository (docs/design.md) and everything that
-- cites it resolves there. A citation is a section sign and a number
-- ("§1.11", "§1.5 step 3", "§1.2–1.4": both ends); it refers to the page
-- named last before it in its sentence (lua-api.md, design.md, or the
-- word "design", as the code says it), else, in a page with numbered
-- headings of its own, to that page, else to design.md. It resolves when
-- that page has a heading starting with the number. The checks work on
-- {path = text} tables, so the cases below can prove they fail.

local TREE = { "README.md", "CMakeLists.txt", ".ci", "cmake", "docs", "etc", "lua", "proto",
               "scripts", "spec", "src" }
local EN_DASH = "\226\128\147"

-- Every text file of the tree (not the fuzz corpora, nothing binary).
local function tree_files()
  local files = {}
  local p = assert(io.popen("find " .. table.concat(TREE, " ")
    .. " -type f -not -path 'spec/fuzz/corpus/*' 2>/dev/null | sort"))
  for path in p:lines() do
    local text = H.slurp(path)
    if text and not text:find("\0", 1, true) then files[path] = text end
  end
  p:close()
  return files
end

local function without_code(md)
  return (md:gsub("\n```.-\n```", "\n"):gsub("``?[^`\n]*``?", ""))
end

-- The numbers of a Markdown page's numbered headings ("## 1.", "### 1.10").
local function headings(md)
  local set = {}
  for num in ("\n" .. md:gsub("\n```.-\n```", "\n")):gmatch("\n#+%s+(%d[%d%.]*)") do
    set[(num:gsub("%.+$", ""))] = true
  end
  return set
end

-- The text after the last match of pattern in s (all of s without one).
local function after_last(s, pattern)
  local from = 1
  for e in s:gmatch(pattern .. "()") do from = e end
  return s:sub(from)
end

-- The page a citation at position pos of text refers to: a basename such
-- as "lua-api.md", or nil when its sentence names none.
local function qualifier(text, pos)
  local sentence = after_last(text:sub(math.max(1, pos - 600), pos - 1), "[%.!?:;]%s")
  sentence = after_last(sentence, "\n[%s%*/#%-]*\n")
  local best, at = nil, 0
  for p, name in sentence:gmatch("()([%w_%-]+%.md)") do
    if p > at then best, at = name, p end
  end
  for p in sentence:gmatch("()%f[%w][Dd][Ee][Ss][Ii][Gg][Nn]%f[^%w_%-]") do
    if p > at then best, at = "design.md", p end
  end
  return best
end

-- Every citation of every file that does not resolve, as "path:line: §N
-- (page)". pages maps a basename to its headings; the files' own Markdown
-- pages are added to it.
local function unresolved_citations(files, pages)
  pages = pages or {}
  for path, text in pairs(files) do
    if path:match("%.md$") then pages[path:match("[^/]+$")] = headings(text) end
  end
  local bad = {}
  for path, text in pairs(files) do
    local own = path:match("%.md$") and next(headings(text)) and path:match("[^/]+$")
    for pos, num, after in text:gmatch("()§(%d[%d%.]*)()") do
      local nums = { (num:gsub("%.+$", "")) }
      local upper = text:match("^" .. EN_DASH .. "(%d[%d%.]*)", after)
      if upper then nums[2] = upper:gsub("%.+$", "") end
      local page = qualifier(text, pos) or own or "design.md"
      for _, n in ipairs(nums) do
        if not (pages[page] and pages[page][n]) then
          local line = select(2, text:sub(1, pos):gsub("\n", "")) + 1
          bad[#bad + 1] = string.format("%s:%d: §%s (%s)", path, line, n, page)
        end
      end
    end
  end
  table.sort(bad)
  return bad
end

-- The directory beside a checkout that held the product brief while the
-- project had no design of its own, and the brief's name: spelt in pieces,
-- so that this guard against pointing at them is not itself a reference.
local BRIEF_DIR, BRIEF = ".." .. "/" .. "sha" .. "red", "DES" .. "IGN"

-- Files that point outside the repository for the design or anything else
-- the product brief's directory held.
local function outside_references(files)
  local bad = {}
  local patterns = { BRIEF_DIR:gsub("%p", "%%%0"), BRIEF .. "%.md", BRIEF .. "[%s%*/#%-]*§" }
  for path, text in pairs(files) do
    for _, pat in ipairs(patterns) do
      local pos = text:find(pat)
      if pos then
        local line = select(2, text:sub(1, pos):gsub("\n", "")) + 1
        bad[#bad + 1] = string.format("%s:%d: %s", path, line,
          (text:match(pat, pos):gsub("%s+", " ")))
      end
    end
  end
  table.sort(bad)
  return bad
end

-- Relative links of the Markdown files that name no file.
local function broken_links(files, exists)
  local bad = {}
  for path, text in pairs(files) do
    if path:match("%.md$") then
      local dir = path:match("^(.*)/") or "."
      for target in without_code(text):gmatch("%]%(([^)%s]+)[^)]*%)") do
        local file = target:gsub("#.*$", "")
        if not target:match("^%a[%w+.%-]*:") and file ~= ""
            and not exists(dir .. "/" .. file) then
          bad[#bad + 1] = path .. ": " .. target
        end
      end
    end
  end
  table.sort(bad)
  return bad
end

describe("the design in the repository", function()
  local files = tree_files()

  it("is docs/design.md, under the section numbers the code cites", function()
    local h = headings(assert(files["docs/design.md"], "no docs/design.md"))
    local missing = {}
    for _, n in ipairs { "0", "1", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8",
                         "1.9", "1.10", "1.11", "2", "3", "4" } do
      if not h[n] then missing[#missing + 1] = n end
    end
    assert.same({}, missing)
  end)

  it("resolves every § cited anywhere in the tree", function()
    local n = 0
    for _, text in pairs(files) do n = n + select(2, text:gsub("§%d", "")) end
    assert.is_true(n > 50, "found only " .. n .. " citations: is the walk broken?")
    assert.same({}, unresolved_citations(files),
      "a cited section is not a numbered heading of the page cited (docs/design.md by default)")
  end)

  it("is never looked for outside the repository", function()
    assert.same({}, outside_references(files),
      "cite docs/design.md: 'design §N.N' in code, a link to docs/design.md in Markdown")
  end)

  it("has no relative Markdown link to a missing file", function()
    assert.same({}, broken_links(files, H.exists))
  end)

  it("has checks that fail when they should", function()
    -- Spelt apart, or this file would fail its own checks.
    local OLD, S, D = BRIEF, "\194\167", EN_DASH
    local pages = { ["design.md"] = headings("# d\n## 1. W\n### 1.4 X\n### 1.11 V\n"),
                    ["lua-api.md"] = headings("## 3. Tasks\n") }
    assert.same({}, unresolved_citations({
      ["a.c"] = "/* design " .. S .. "1.4, " .. S .. "1.11 */\n/* " .. OLD .. "\n * " .. S
        .. "1.4 */",
      ["b.lua"] = "-- Tasks (docs/lua-api.md " .. S .. "3). See " .. S .. "1.4" .. D .. "1.11",
      ["README.md"] = "[design](docs/design.md) " .. S .. "1.11; [api](docs/lua-api.md) "
        .. S .. "3",
    }, pages))
    assert.same({ "a.c:2: " .. S .. "1.12 (design.md)", "b.lua:1: " .. S .. "1.9 (design.md)",
                  "b.lua:1: " .. S .. "1.9 (design.md)",
                  "c.md:1: " .. S .. "2 (lua-api.md)", "c.md:1: " .. S .. "9 (design.md)" },
      unresolved_citations({
        ["a.c"] = "/* x */\n/* design " .. S .. "1.12 */",
        ["b.lua"] = "-- " .. S .. "1.4" .. D .. "1.9, " .. S .. "1.4, " .. S .. "1.9",
        ["c.md"] = "See [lua-api.md](lua-api.md) " .. S .. "2 and design " .. S .. "9.",
      }, pages))
    assert.same({ "w.h:2: " .. OLD .. " * " .. S, "x.c:1: " .. BRIEF_DIR,
                  "y.md:2: " .. OLD .. ".md", "z.lua:1: " .. OLD .. " " .. S },
      outside_references { ["x.c"] = "/* " .. BRIEF_DIR .. "/vectors */",
                           ["w.h"] = "/*\n * (" .. OLD .. "\n * " .. S .. "1.4) */",
                           ["y.md"] = "\n`" .. OLD .. ".md`",
                           ["z.lua"] = "-- " .. OLD .. " " .. S .. "1.6",
                           ["ok.c"] = "/* design " .. S .. "1 */" })
    assert.same({ "docs/a.md: missing.md#x" },
      broken_links({ ["docs/a.md"] = "[a](missing.md#x) [b](b.md) [w](https://x) `[c](c.md)`" },
        function(p) return p == "docs/b.md" end))
  end)
end)
