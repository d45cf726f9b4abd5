-- bh.pretty (lua/bh/pretty.lua): what the -i prompt prints.
-- labels: helpers
local bh = require "bh"
local pretty = bh.pretty

describe("bh.pretty", function()
  it("renders scalars as Lua would write them", function()
    assert.equal('"a\\"b\\n"', pretty('a"b\n'))
    assert.equal("42", pretty(42))
    assert.equal("0.5", pretty(0.5))
    assert.equal("nil", pretty(nil))
    assert.equal("true", pretty(true))
  end)

  it("prints floats in tables with 4 significant digits, a number alone in full", function()
    assert.equal("0.33333333333333", pretty(1 / 3))
    assert.equal("9.061200000815e-05", pretty(9.061200000815e-05))
    assert.equal("{ connect = 2.1e-05, exchange = 0.1005, verify = 9.061e-05 }",
      pretty({ connect = 2.1e-05, exchange = 0.10051234, verify = 9.061200000815e-05 }))
    -- A whole float stays a float; integers, keys, inf and nan as Lua writes them.
    assert.equal("{ 1.0, 100.0, 1.235e+04, 12345, -0.5, inf, -inf }",
      pretty({ 1.0, 100.0, 12346.0, 12345, -0.5, math.huge, -math.huge }))
    assert.equal("{ [0.123456789] = 0.1235 }", pretty({ [0.123456789] = 0.123456789 }))
    assert.matches("^{ x = %-?nan }$", pretty({ x = 0 / 0 }))
  end)

  it("puts the list first, then sorted keys, quoting odd ones", function()
    assert.equal('{ 1, 2, ["a b"] = 3, ["end"] = 4, x = 5, [true] = 6 }',
      pretty({ 1, 2, x = 5, ["a b"] = 3, ["end"] = 4, [true] = 6 }))
    assert.equal("{}", pretty({}))
  end)

  it("breaks long tables over lines, indented", function()
    local t = { name = string.rep("n", 40), inner = { value = string.rep("v", 40) } }
    assert.equal('{\n  inner = { value = "' .. string.rep("v", 40) .. '" },\n  name = "'
      .. string.rep("n", 40) .. '",\n}', pretty(t))
  end)

  it("marks cycles and cuts depth and length", function()
    local t = {}
    t.me = t
    assert.equal("{ me = <cycle> }", pretty(t))
    local shared = { 1 }
    assert.equal("{ { 1 }, { 1 } }", pretty({ shared, shared })) -- not a cycle
    local deep = {}
    local cur = deep
    for _ = 1, 20 do cur.next = {}; cur = cur.next end
    assert.matches("{%.%.%.}", pretty(deep))
    local long = {}
    for i = 1, 500 do long[i] = i end
    assert.matches("%.%.%. %(300 more%)", pretty(long))
  end)

  it("names error tables and uses __tostring where a table has one", function()
    local _, err = bh.identity.from_json("{")
    assert.matches('^bh%.error{\n  code = "invalid_json",\n  message = "invalid JSON', pretty(err))
    local t = setmetatable({}, { __tostring = function() return "custom thing" end })
    assert.equal("custom thing", pretty(t))
    assert.matches("^bh%.task", pretty(bh.run(function() return bh.spawn(print) end)))
  end)

  it("is a module too", function()
    assert.equal(pretty, require("bh.pretty").pretty)
  end)
end)
