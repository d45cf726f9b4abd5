-- The one argument checker (src/lua/lbh_args.c, lbh_check.c; design §4.5):
-- every Lua-facing function, in C or in the Lua helpers, raises misuse in
-- the same words, naming itself in full.
-- labels: args
local bh = require "bh"

describe("the argument checker", function()
  it("names C functions in full, in Lua's words", function()
    for _, c in ipairs {
      { function() bh.manifest.read(nil) end,
        "bad argument #1 to 'bh.manifest.read' (string expected, got nil)" },
      { function() bh.manifest.find() end,
        "bad argument #1 to 'bh.manifest.find' (string expected, got no value)" },
      { function() bh.fs.write_atomic("/tmp/x", {}) end,
        "bad argument #2 to 'bh.fs.write_atomic' (string expected, got table)" },
      { function() bh.identity.from_json(false) end,
        "bad argument #1 to 'bh.identity.from_json' (string expected, got boolean)" },
      { function() bh.report("x") end,
        "bad argument #1 to 'bh.report' (table expected, got string)" },
      { function() bh.cut("x", 10) end,
        "bad argument #2 to 'bh.cut' (max must be an integer in [64, 2147483647], got 10)" },
      { function() bh.timestamp(1e13) end,
        "bad argument #1 to 'bh.timestamp' (time must be a number in "
          .. "(-1000000000000, 1000000000000], got 10000000000000)" },
      { function() bh.log.level("loud") end,
        "bad argument #1 to 'bh.log.level' (\"error\", \"warn\", \"notice\", \"info\" or "
          .. "\"debug\" expected, got \"loud\")" },
    } do
      assert.has_error(c[1], c[2])
    end
  end)

  it("gives the Lua helpers the same words: allowed values, shapes, required options",
    function()
    assert.has_error(function() bh.metrics.reaction("clear", "done") end,
      "bad argument #1 to 'bh.metrics.reaction' (\"clear_record\" or \"remove_socket\" "
        .. "expected, got \"clear\")")
    assert.has_error(function() bh.metrics.reaction("clear_record", 1) end,
      "bad argument #2 to 'bh.metrics.reaction' (string expected, got number)")
    assert.has_error(function() bh.metrics.round_error("Not Snake") end,
      "bad argument #1 to 'bh.metrics.round_error' (reason must match "
        .. "\"^[a-z][a-z0-9_]*$\" in at most 64 bytes, got \"Not Snake\")")
    assert.has_error(function() bh.metrics.round_error(string.rep("a", 65)) end,
      "bad argument #1 to 'bh.metrics.round_error' (reason must match "
        .. "\"^[a-z][a-z0-9_]*$\" in at most 64 bytes, got \"" .. string.rep("a", 65) .. "\")")
    assert.has_error(function() bh.verdict("x") end,
      "bad argument #1 to 'bh.verdict' (table expected, got string)")
    assert.has_error(function() bh.cli.parse({}, { args = {} }) end,
      "bh.cli.parse: option 'name' is required")
  end)

  it("checks for helpers: one_of, pattern, max_len, defaults; quotes at most 80 bytes",
    function()
    local d = { "string", one_of = { "a", "b" }, default = "a" }
    assert.equal("a", bh._check_arg("f", 1, nil, d))
    assert.equal("b", bh._check_arg("f", 1, "b", d))
    local long = string.rep("x", 100)
    assert.has_error(function() bh._check_arg("f", 1, long, d) end,
      "bad argument #1 to 'f' (\"a\" or \"b\" expected, got \"" .. string.rep("x", 80)
        .. "...\")")
    assert.has_error(function() bh._check_arg("o:m", 2, "c", d) end,
      "bad argument #1 to 'o:m' (\"a\" or \"b\" expected, got \"c\")")
    local o = bh._check_opts("f", { mode = "b" }, { mode = d })
    assert.equal("b", o.mode)
    assert.has_error(function() bh._check_opts("f", { mode = "c" }, { mode = d }) end,
      "f: option 'mode' must be \"a\" or \"b\", got \"c\"")
    assert.has_error(function()
      bh._check_opts("f", { w = "ab" }, { w = { "string", max_len = 1 } })
    end, "f: option 'w' must be at most 1 bytes, got \"ab\"")
    assert.has_error(function() bh._check_opts("f", {}, { w = { "string", required = true } }) end,
      "f: option 'w' is required")
    assert.has_error(function() bh._check_arg("f", 0, 1, "number") end,
      "bad argument #2 to 'bh._check_arg' (n must be an integer in [1, 32], got 0)")
  end)
end)
