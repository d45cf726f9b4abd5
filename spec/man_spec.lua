-- The man pages the build makes (build/man, from docs/man/*.scd): each
-- renders through man-db without a warning, bhprobe-lua(1) documents
-- every option `bhprobe-lua --help` prints, and bhprobe-lua-policies(7)
-- every option the shipped policies' usage names, so the pages cannot
-- drift from the program.
-- External tools run with `env -u LD_PRELOAD` (the sanitized tree preloads
-- the ASan runtime into lua5.4 and its children).
-- labels: docs program
local H = require "helpers"
local BUILD = assert(os.getenv("BH_BUILD_DIR"), "BH_BUILD_DIR must name the build tree")
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local q, slurp = H.q, H.slurp

local PAGES = { "bhprobe-lua.1", "bhprobe-lua-policies.7" }

-- Runs cmd; returns its exit code, stdout and stderr.
local function run(dir, cmd)
  local _, _, code = os.execute(cmd .. " >" .. q(dir .. "/out") .. " 2>" .. q(dir .. "/err"))
  return code, slurp(dir .. "/out"), slurp(dir .. "/err")
end

-- The page as man shows it, one paragraph per line (wide enough that
-- nothing wraps or hyphenates); returns the text and man's warnings.
local function render(dir, page)
  local path = BUILD .. "/man/" .. page
  assert(H.exists(path), path .. " was not built (configured with -DBH_MAN=OFF?)")
  local code, out, err = run(dir, "env -u LD_PRELOAD LC_ALL=C.UTF-8 MANWIDTH=1000 "
    .. "man --warnings --local-file " .. q(path) .. " | col -b")
  assert.equal(0, code, err)
  return out, err
end

-- The lines of section name (a heading in capitals) of a rendered page.
local function section(text, name)
  local lines, inside = {}, false
  for line in text:gmatch("[^\n]*") do
    if line:match("^%u[%u%d%. ]*$") then
      inside = line == name
    elseif inside then
      lines[#lines + 1] = line
    end
  end
  assert(#lines > 0, "no section " .. name)
  return lines
end

-- The options a section documents: the first word of each comma-separated
-- part of every item heading (a line indented 7 columns that starts with
-- a dash), e.g. "-h, --help" and "--report FILE" give -h, --help, --report.
local function documented(lines)
  local set = {}
  for _, line in ipairs(lines) do
    local head = line:match("^       (%-.*)$")
    if head then
      for part in head:gmatch("[^,]+") do set[part:match("^%s*(%S+)")] = true end
    end
  end
  return set
end

-- The option words of a usage text: -x and --long, each once, in order.
local function options_in(text)
  local list, seen = {}, {}
  for token in text:gmatch("[^%s%[%]|,]+") do
    local word = token:match("^(%-%-?%w[%w-]*)[.:;)]*$")
    if word and not seen[word] then
      seen[word] = true
      list[#list + 1] = word
    end
  end
  return list
end

describe("the man pages", function()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rmdir(dir) end)

  for _, page in ipairs(PAGES) do
    it(page .. " renders without a warning", function()
      -- As lintian checks a page (at 120 columns), and on a terminal.
      for _, width in ipairs({ 80, 120 }) do
        local code, _, err = run(dir, "env -u LD_PRELOAD LC_ALL=C.UTF-8 MANWIDTH=" .. width
          .. " man --warnings -E UTF-8 -l -Tutf8 -Z " .. q(BUILD .. "/man/" .. page))
        assert.equal(0, code, err)
        assert.equal("", err, page .. " at " .. width .. " columns")
      end
      local text, err = render(dir, page)
      assert.equal("", err)
      assert.matches("^" .. page:gsub("%.(%d)$", "%%(%1%%)"):gsub("%-", "%%-"), text)
      for _, name in ipairs({ "NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "FILES",
        "EXAMPLES", "SEE ALSO" }) do
        section(text, name)
      end
    end)
  end

  it("bhprobe-lua(1) documents every option of bhprobe-lua --help", function()
    local code, help = run(dir, q(BIN) .. " --help")
    assert.equal(0, code)
    -- Option lines of the help: two spaces, then the option(s), then text.
    local wanted = {}
    for line in help:gmatch("[^\n]+") do
      local opts = line:match("^  (%-%S*,? ?%-?%-?%S*)")
      if opts then
        for o in opts:gmatch("[^,%s]+") do
          if o:match("^%-") then wanted[#wanted + 1] = o end
        end
      end
    end
    assert(#wanted >= 10, "too few options found in --help:\n" .. help)
    local text = render(dir, "bhprobe-lua.1")
    local have = documented(section(text, "OPTIONS"))
    for _, o in ipairs(wanted) do
      assert(have[o], "bhprobe-lua(1) OPTIONS does not document " .. o)
    end
    for _, env in ipairs({ "LUA_INIT_5_4", "LUA_INIT" }) do
      assert.matches(env, table.concat(section(text, "ENVIRONMENT"), "\n"), 1, true)
    end
  end)

  -- Each policy's usage (--help prints it, or a bad option does on stderr)
  -- against its section of the page.
  for _, policy in ipairs({ "manifests", "check", "watch" }) do
    it("bhprobe-lua-policies(7) documents every option " .. policy .. ".lua names", function()
      local _, out, err = run(dir, "timeout 30 " .. q(BIN) .. " etc/policies/" .. policy
        .. ".lua --help")
      local usage = (out or "") .. (err or "")
      local wanted = options_in(usage:match("usage:.*") or usage)
      assert(#wanted >= 1, "no options in the usage of " .. policy .. ".lua:\n" .. usage)
      local text = render(dir, "bhprobe-lua-policies.7")
      local have = documented(section(text, policy:upper() .. ".LUA"))
      for _, o in ipairs(wanted) do
        assert(have[o], "bhprobe-lua-policies(7) " .. policy:upper() .. ".LUA does not document "
          .. o)
      end
    end)
  end
end)
