-- Benchmark prober as an operator writes one (run by bench_driver, never
-- a test): bh.probe_response (or, with "full", bh.probe: pid verified,
-- digest cached after the first) of the identity in ID_FILE (a plain
-- table), on commands
-- from stdin, one answer line each on stdout:
--   "warm N" -> "F"               N probes, F of them failed
--   "run N"  -> "F T1 T2 ... Tk"  N probes timed start to answer (bh.now),
--                                 in microseconds, the k that succeeded
-- Usage: bhprobe-lua lua_prober.lua PATH ID_FILE [full]
local path, id_file, mode = arg[1], arg[2], arg[3]
assert(path and id_file, "usage: lua_prober.lua PATH ID_FILE [full]")
local ep = {namespace_id = "bench", path = path}
local f = assert(io.open(id_file))
-- A plain table, as an operator writes it: converted once and kept by the
-- binding (docs/lua-api.md, bh.identity.prepare), not prepared here.
local expected = assert(bh.identity.from_json(f:read("a")))
f:close()
local opts = {timeout = 5} -- a loaded machine must not turn into failures

local probe
if mode == "full" then
  probe = function()
    local h = bh.probe(ep, expected, opts)
    if h == nil then return false end
    h:close()
    return true
  end
else
  probe = function() return bh.probe_response(ep, expected, opts) ~= nil end
end

local now = bh.now
for line in io.lines() do
  local cmd, n = line:match("^(%a+) (%d+)$")
  n = tonumber(n)
  local failed, times = 0, {}
  if cmd == "warm" then
    for _ = 1, n do
      if not probe() then failed = failed + 1 end
    end
  elseif cmd == "run" then
    for _ = 1, n do
      local t0 = now()
      if probe() then
        times[#times + 1] = string.format("%.3f", (now() - t0) * 1e6)
      else
        failed = failed + 1
      end
    end
  else
    error("unknown command: " .. line)
  end
  io.write(failed, #times > 0 and " " or "", table.concat(times, " "), "\n")
  io.stdout:flush()
end
