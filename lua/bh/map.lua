-- bh.map(items, fn, {concurrency = 64}): fn(item, i) for every item with at
-- most `concurrency` calls in flight, results in order. Built on bh.spawn
-- and task:wait: a fixed pool of worker tasks takes the next index in turn,
-- so 10,000 items cost `concurrency` tasks, not 10,000.
--
-- Returns results, errs: results[i] is fn's first value, errs[i] its second
-- when the first is nil (the `nil, err` convention), so a failed probe
-- leaves its error where its handle would be. results.n = #items. An error
-- raised by fn propagates (after the other workers finish their item).
local bh = require "bh"

local M = {}

local OPTIONS = { concurrency = { "integer", 1, 100000, default = 64 } }

function M.map(items, fn, opts)
  bh._check_arg("bh.map", 1, items, "table")
  bh._check_arg("bh.map", 2, fn, "function")
  local concurrency = bh._check_opts("bh.map", opts, OPTIONS).concurrency
  if not bh._in_task() then
    error("bh.map must be called from a task; wrap your code in bh.run", 2)
  end
  local n = #items
  local results, errs = { n = n }, {}
  local next_i = 0
  local function worker()
    while next_i < n do
      next_i = next_i + 1
      local i = next_i
      local v, err = fn(items[i], i)
      results[i] = v
      if v == nil then errs[i] = err end
    end
  end
  local workers = {}
  for w = 1, math.min(concurrency, n) do
    workers[w] = bh.spawn(worker)
  end
  local first_error
  for w = 1, #workers do
    local ok, e = pcall(workers[w].wait, workers[w])
    if not ok and first_error == nil then first_error = e end
  end
  if first_error ~= nil then error(first_error, 0) end
  return results, errs
end

return M
