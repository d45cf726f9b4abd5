-- bh.retry (lua/bh/retry.lua). Most tests load the helper into a table
-- whose bh.sleep records the delays instead of sleeping, so the backoff
-- arithmetic is checked exactly; the last ones run it in the real module
-- against a real socket.
-- labels: helpers probe

-- Loads the module retry.lua with a fake bh (what its require "bh"
-- finds); returns retry and the list of delays it asked to sleep.
local function fake_retry()
  local slept = {}
  local real = require "bh"
  local fake = { sleep = function(d) slept[#slept + 1] = d end,
                 _check_arg = real._check_arg, _check_opts = real._check_opts }
  local saved = package.loaded.bh
  package.loaded.bh = fake
  local ok, m = pcall(assert(loadfile("lua/bh/retry.lua")), "bh.retry")
  package.loaded.bh = saved
  assert(ok, m)
  return m.retry, slept
end

-- A function failing with the given codes in turn, then succeeding.
local function failing(codes, ...)
  local calls, results = 0, table.pack(...)
  return function()
    calls = calls + 1
    local code = codes[calls]
    if code then return nil, { code = code, stage = "response", message = code } end
    return table.unpack(results, 1, results.n)
  end, function() return calls end
end

local function near(expected, actual)
  assert(math.abs(expected - actual) < 1e-9,
    string.format("expected %.12g, got %.12g", expected, actual))
end

describe("bh.retry", function()
  it("returns at once, with all values, when fn succeeds", function()
    local retry, slept = fake_retry()
    local fn, calls = failing({}, "a", nil, "c")
    local r = table.pack(retry(fn))
    assert.are.same({ n = 3, "a", nil, "c" }, r)
    assert.are.equal(1, calls())
    assert.are.same({}, slept)
  end)

  it("retries timeout, connect and io, then returns the success", function()
    local retry, slept = fake_retry()
    local fn, calls = failing({ "timeout", "connect", "io" }, "ok")
    assert.are.equal("ok", retry(fn, { attempts = 4, jitter = 0 }))
    assert.are.equal(4, calls())
    assert.are.equal(3, #slept)
    near(0.1, slept[1]); near(0.2, slept[2]); near(0.4, slept[3])
  end)

  it("gives up after `attempts` and returns the last failure", function()
    local retry, slept = fake_retry()
    local fn, calls = failing({ "timeout", "timeout", "connect", "io" }, "late")
    local h, err = retry(fn, { jitter = 0 })
    assert.is_nil(h)
    assert.are.equal("connect", err.code)
    assert.are.equal(3, calls())
    assert.are.equal(2, #slept)
  end)

  it("does not retry a code that is not retryable", function()
    local retry, slept = fake_retry()
    local fn, calls = failing({ "identity_mismatch" }, "never")
    local h, err = retry(fn, { attempts = 5 })
    assert.is_nil(h)
    assert.are.equal("identity_mismatch", err.code)
    assert.are.equal(1, calls())
    assert.are.same({}, slept)
  end)

  it("does not retry a failure without an error table", function()
    local retry = fake_retry()
    local fn, calls = failing({}, nil, "just a string")
    assert.are.same({ n = 2, nil, "just a string" }, table.pack(retry(fn)))
    assert.are.equal(1, calls())
  end)

  it("grows the delay by factor and caps it at max_backoff", function()
    local retry, slept = fake_retry()
    local fn = failing({ "io", "io", "io", "io", "io" }, true)
    retry(fn, { attempts = 6, backoff = 0.5, factor = 3, max_backoff = 2, jitter = 0 })
    assert.are.equal(5, #slept)
    near(0.5, slept[1]); near(1.5, slept[2])
    near(2, slept[3]); near(2, slept[4]); near(2, slept[5])
  end)

  it("keeps the jittered delay within ±jitter of the nominal one", function()
    local retry, slept = fake_retry()
    local codes = {}
    for i = 1, 200 do codes[i] = "timeout" end
    retry(failing(codes, true), { attempts = 201, backoff = 1, factor = 1, jitter = 0.25 })
    local lo, hi = math.huge, -math.huge
    for _, d in ipairs(slept) do lo, hi = math.min(lo, d), math.max(hi, d) end
    assert.is_true(lo >= 0.75 and hi <= 1.25, ("range %g..%g"):format(lo, hi))
    assert.is_true(hi - lo > 0.1, "jitter should spread the delays")
  end)

  it("does not sleep when backoff is 0", function()
    local retry, slept = fake_retry()
    local fn, calls = failing({ "timeout", "timeout" }, "ok")
    assert.are.equal("ok", retry(fn, { backoff = 0 }))
    assert.are.equal(3, calls())
    assert.are.same({}, slept)
  end)

  it("takes retry_on as a set, a list or a function", function()
    local retry = fake_retry()
    local fn, calls = failing({ "pid_not_found" }, "up")
    assert.are.equal("up", retry(fn, { retry_on = { pid_not_found = true }, backoff = 0 }))
    assert.are.equal(2, calls())
    fn, calls = failing({ "exe_hash", "timeout" }, "up")
    local h, err = retry(fn, { retry_on = { "exe_hash" }, backoff = 0 })
    assert.is_nil(h)
    assert.are.equal("timeout", err.code)
    assert.are.equal(2, calls())
    fn, calls = failing({ "a", "b" }, "up")
    assert.are.equal("up", retry(fn, {
      retry_on = function(e) return e.code ~= "c" end, backoff = 0 }))
    assert.are.equal(3, calls())
  end)

  it("raises on misuse, naming the argument or option", function()
    local retry = fake_retry()
    local ok = function() return true end
    assert.has_error(function() retry(nil) end,
      "bad argument #1 to 'bh.retry' (function expected, got nil)")
    assert.has_error(function() retry(ok, 3) end,
      "bh.retry: options must be a table, got number")
    assert.has_error(function() retry(ok, { atempts = 3 }) end,
      "bh.retry: unknown option 'atempts'")
    assert.has_error(function() retry(ok, { attempts = 0 }) end,
      "bh.retry: option 'attempts' must be an integer in [1, 1000000], got 0")
    assert.has_error(function() retry(ok, { attempts = 2.5 }) end,
      "bh.retry: option 'attempts' must be an integer in [1, 1000000], got 2.5")
    assert.has_error(function() retry(ok, { backoff = "1" }) end,
      "bh.retry: option 'backoff' must be a number in [0, 86400], got string")
    assert.has_error(function() retry(ok, { backoff = -1 }) end,
      "bh.retry: option 'backoff' must be a number in [0, 86400], got -1")
    assert.has_error(function() retry(ok, { factor = 0.5 }) end,
      "bh.retry: option 'factor' must be a number in [1, 1000], got 0.5")
    assert.has_error(function() retry(ok, { jitter = 2 }) end,
      "bh.retry: option 'jitter' must be a number in [0, 1], got 2")
    assert.has_error(function() retry(ok, { jitter = 0 / 0 }) end,
      "bh.retry: option 'jitter' must be a number in [0, 1], got nan")
    assert.has_error(function() retry(ok, { retry_on = "io" }) end,
      "bh.retry: option 'retry_on' must be a table or function, got string")
  end)

  describe("in the real module", function()
    local bh = require "bh"

    it("retries a real probe that cannot connect, sleeping between tries", function()
      local dir = assert(io.popen("mktemp -d /tmp/bhr.XXXXXX")):read("l")
      local ep = { namespace_id = "retry", path = dir .. "/none.sock" }
      local id = bh.identity.current{ endpoint = ep }
      local calls, t0, t1 = 0, nil, nil
      local h, err = bh.run(function()
        t0 = bh.now()
        local a, b = bh.retry(function()
          calls = calls + 1
          return bh.probe(ep, id, { timeout = 0.5 })
        end, { attempts = 3, backoff = 0.05, factor = 2, jitter = 0 })
        t1 = bh.now()
        return a, b
      end)
      os.remove(dir)
      assert.is_nil(h)
      assert.are.equal("connect", err.code)
      assert.are.equal(3, calls)
      -- slept 0.05 + 0.1; the upper bound is generous for a loaded machine
      assert.is_true(t1 - t0 >= 0.15 - 1e-3, "elapsed " .. (t1 - t0))
    end)

    it("stops retrying once the responder appears", function()
      local dir = assert(io.popen("mktemp -d /tmp/bhr.XXXXXX")):read("l")
      local ep = { namespace_id = "retry", path = dir .. "/late.sock" }
      local id = bh.identity.current{ endpoint = ep }
      local calls, r = 0, nil
      local h, err = bh.run(function()
        return bh.retry(function()
          calls = calls + 1
          if calls == 2 then r = bh.respond(ep, id) end
          return bh.probe(ep, id)
        end, { attempts = 5, backoff = 0.01, jitter = 0 })
      end)
      if r then r:close() end
      os.remove(ep.path)
      os.remove(dir)
      assert.is_nil(err)
      assert.are.equal(id.pid, h.identity.pid)
      assert.are.equal(2, calls)
    end)
  end)
  describe("as a module", function()
    it("is require \"bh.retry\" from plain lua5.4, found in bh.so alone", function()
      -- No LUA_PATH: the module must come from bh.so's own opener, not
      -- from lua/bh/retry.lua on disk.
      local cpath = os.getenv("BH_BUILD_DIR") .. "/?.so"
      local cmd = "env -u LUA_PATH LUA_CPATH='" .. cpath .. "' lua5.4 -e '"
        .. "local m = require \"bh.retry\"; local bh = require \"bh\"; "
        .. "io.write(type(m.retry), \" \", tostring(bh.retry == m.retry))' 2>&1"
      local p = assert(io.popen(cmd))
      local out = p:read("a")
      p:close()
      assert.are.equal("function true", out)
    end)
  end)
end)
