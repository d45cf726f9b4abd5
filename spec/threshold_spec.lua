-- bh.threshold: Kubernetes-style success/failure thresholds (lua/bh/threshold.lua).
-- The helper is pure Lua, so the module file is loaded here by itself; the
-- last test checks that the real module carries it too.
-- labels: helpers

local function load_threshold()
  return assert(loadfile("lua/bh/threshold.lua"))("bh.threshold").threshold
end

local threshold = load_threshold()

-- Feeds a list of results; returns the states and changed flags seen.
local function feed(t, results)
  local states, changes = {}, {}
  for i, ok in ipairs(results) do
    states[i], changes[i] = t:observe(ok)
  end
  return states, changes
end

describe("bh.threshold", function()
  it("starts unknown and uses success = 1, failure = 3 by default", function()
    local t = threshold()
    assert.are.equal("unknown", t.state)
    assert.are.equal(1, t.success)
    assert.are.equal(3, t.failure)
  end)

  it("turns healthy after `success` consecutive successes", function()
    local t = threshold{ success = 2, failure = 2 }
    local states, changes = feed(t, { true, true, true })
    assert.are.same({ "unknown", "healthy", "healthy" }, states)
    assert.are.same({ false, true, false }, changes)
  end)

  it("turns unhealthy only after `failure` consecutive failures", function()
    local t = threshold{ success = 1, failure = 3 }
    local states, changes = feed(t, { true, false, false, false, false })
    assert.are.same({ "healthy", "healthy", "healthy", "unhealthy", "unhealthy" }, states)
    assert.are.same({ true, false, false, true, false }, changes)
  end)

  it("resets the streak on an opposite result", function()
    local t = threshold{ success = 1, failure = 2 }
    local states = feed(t, { true, false, true, false, true, false, false })
    assert.are.same({ "healthy", "healthy", "healthy", "healthy", "healthy", "healthy",
      "unhealthy" }, states)
    assert.are.equal(2, t.failures)
    assert.are.equal(0, t.successes)
  end)

  it("needs `success` successes in a row to recover", function()
    local t = threshold{ success = 3, failure = 1, initial = "unhealthy" }
    local states, changes = feed(t, { true, true, false, true, true, true })
    assert.are.same({ "unhealthy", "unhealthy", "unhealthy", "unhealthy", "unhealthy",
      "healthy" }, states)
    assert.are.same({ false, false, false, false, false, true }, changes)
  end)

  it("counts any true value as success, nil and false as failure", function()
    local t = threshold{ success = 1, failure = 1 }
    assert.are.equal("healthy", (t:observe({})))
    assert.are.equal("unhealthy", (t:observe(nil)))
    assert.are.equal("healthy", (t:observe(0)))
    assert.are.equal("unhealthy", (t:observe(false)))
  end)

  it("resets to a given state", function()
    local t = threshold{ failure = 1 }
    t:observe(false)
    t:reset()
    assert.are.equal("unknown", t.state)
    assert.are.equal(0, t.failures)
    t:reset("healthy")
    assert.are.equal("healthy", t.state)
    assert.has_error(function() t:reset("sick") end,
      "bad argument #1 to 'threshold:reset' (\"unknown\", \"healthy\" or \"unhealthy\" "
      .. "expected, got \"sick\")")
  end)

  it("describes itself", function()
    local t = threshold{ success = 2, failure = 3 }
    t:observe(true)
    assert.are.equal("threshold: unknown (1 ok, 0 failed in a row; needs 2/3)", tostring(t))
  end)

  it("raises on misuse, naming the option", function()
    assert.has_error(function() threshold(5) end,
      "bh.threshold: options must be a table, got number")
    assert.has_error(function() threshold{ sucess = 2 } end,
      "bh.threshold: unknown option 'sucess'")
    assert.has_error(function() threshold{ success = 0 } end,
      "bh.threshold: option 'success' must be an integer in [1, 1000000], got 0")
    assert.has_error(function() threshold{ failure = 1.5 } end,
      "bh.threshold: option 'failure' must be an integer in [1, 1000000], got 1.5")
    assert.has_error(function() threshold{ failure = "3" } end,
      "bh.threshold: option 'failure' must be an integer in [1, 1000000], got string")
    assert.has_error(function() threshold{ initial = "ok" } end,
      "bh.threshold: option 'initial' must be \"unknown\", \"healthy\" or \"unhealthy\", "
      .. "got \"ok\"")
  end)

  it("is part of the bh module", function()
    local bh = require "bh"
    assert.are.equal("function", type(bh.threshold))
    assert.are.equal("unknown", bh.threshold().state)
  end)
end)
