-- Probe every daemon recorded in cache manifests: those under each ROOT
-- given, or with no ROOT those of running-process's central registry
-- (bh.manifest.central_dir()). Classify each record (verified / stale /
-- impostor / unreachable / foreign / invalid, design §1.11), report one
-- JSON line each, keep the metrics file up to date. With --apply, clean
-- up stale records only (clear the manifest's daemon, remove its socket if
-- nothing listens); an impostor is never touched, only reported loudly; a
-- foreign (another machine's) or invalid record is never touched either.
-- Default is a dry run.
--
--   bhprobe-lua [--report FILE] [--metrics FILE] [--listen HOST:PORT]
--       manifests.lua [ROOT...] [--apply] [--every SECONDS] [--max-depth N]
--       [--concurrency N] [--timeout SECONDS] [--attempts N]
--
-- Exit status of a one-shot run (no --every), for alerting as with a
-- Nagios plugin: 0 every record verified (or none found), 1 a stale or
-- unreachable record found, 2 an impostor or an invalid record found,
-- 3 a root (or the registry) could not be scanned; 2 also for a usage
-- error, as the host. With --every it runs until SIGTERM/SIGINT (the
-- host's 143/130).
local bh = bh or require "bh"

local USAGE = "usage: manifests.lua [ROOT...] [--apply] [--every SECONDS] [--max-depth N]"
  .. " [--concurrency N] [--timeout SECONDS] [--attempts N]\n"
  .. "exit status (one-shot): 0 all verified, 1 stale/unreachable found,"
  .. " 2 impostor/invalid found, 3 root unreadable; 2 for usage errors"

local function usage(msg)
  io.stderr:write("manifests.lua: ", msg, "\n", USAGE, "\n")
  os.exit(2)
end

-- Options from the script's arguments.
local function parse_args(args)
  local o = { apply = false, max_depth = 8, concurrency = 64, timeout = 0.5, attempts = 3,
    roots = {} }
  local numeric = { ["--every"] = "every", ["--max-depth"] = "max_depth",
    ["--concurrency"] = "concurrency", ["--timeout"] = "timeout", ["--attempts"] = "attempts" }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--apply" then
      o.apply = true
    elseif numeric[a] then
      local v = tonumber(args[i + 1])
      local least = a == "--max-depth" and 0 or 1e-9
      if not v or v < least then usage(a .. " needs a positive number") end
      o[numeric[a]] = v
      i = i + 1
    elseif a:sub(1, 2) == "--" then
      usage("unknown option " .. a)
    else
      o.roots[#o.roots + 1] = a
    end
    i = i + 1
  end
  o.max_depth = math.tointeger(o.max_depth) or usage("--max-depth needs an integer")
  o.concurrency = math.tointeger(o.concurrency) or usage("--concurrency needs an integer")
  o.attempts = math.tointeger(o.attempts) or usage("--attempts needs an integer")
  return o
end

-- Retry what may clear up by itself: timeouts, I/O, a refused connection
-- (a daemon restarting), an executable we could not read.
local RETRY_ON = { timeout = true, io = true, connect = true, exe_path = true, exe_hash = true }

-- The stale-record clean-up: clear the daemon only if the manifest still
-- names the one we probed, and remove its socket only if nothing listens.
local function clean_up(path, daemon)
  local action = {}
  local cleared, why = bh.manifest.clear_daemon(path, { only_if = daemon })
  action.cleared = cleared or false
  if cleared == false then action.left = why end
  if cleared == nil then action.error = why.code .. ": " .. tostring(why) end
  local sock = bh.fs.remove_stale_socket(daemon.ipc_endpoint.path)
  action.socket_removed = sock and sock.removed or false
  return action
end

-- The record of a manifest that is not probed: unreadable, corrupt, or
-- another machine's.
local function unprobed(path, err, m)
  local d = m and m.current_daemon
  local rec = bh.probe_record{ err = err, service = m and m.service_name, expected = d }
  rec.manifest = path
  return rec
end

-- Probe the daemon of one manifest; returns its record (or nil when the
-- manifest records no daemon).
local function check(path, o)
  local m, err = bh.manifest.read(path)
  if not m then return unprobed(path, err) end
  local d = m.current_daemon
  if not d then return nil end
  local local_host, ferr = bh.manifest.check_host(m)
  if not local_host then return unprobed(path, ferr, m) end
  local started = bh.now()
  local h, perr = bh.retry(function()
    return bh.probe(d.ipc_endpoint, d, { timeout = o.timeout })
  end, { attempts = o.attempts, backoff = 0.1, retry_on = RETRY_ON })
  local rec = bh.probe_record{ service = m.service_name, expected = d, handle = h,
    err = perr, elapsed = h and h.elapsed or (bh.now() - started) }
  rec.manifest = path
  rec.apply = o.apply
  if h and h.close then h:close() end
  if rec.verdict == "stale" and o.apply then
    rec.action = clean_up(path, d)
  elseif rec.verdict == "impostor" then
    bh.log.error(string.format("IMPOSTOR at %s (manifest %s): %s; record left untouched",
      d.ipc_endpoint.path, path, rec.message or rec.code))
  end
  return rec
end

-- The manifests to probe: those under every ROOT, or the central
-- registry's. nil, err when a root or the registry cannot be read (an
-- insecure registry is refused, as running-process refuses it).
local function manifest_paths(o)
  if #o.roots == 0 then return bh.manifest.scan_central() end
  local all = {}
  for _, root in ipairs(o.roots) do
    local paths, err = bh.manifest.find(root, { max_depth = o.max_depth })
    if not paths then return nil, err end
    table.move(paths, 1, #paths, #all + 1, all)
  end
  return all
end

-- End the round in the metrics (per-round series; targets not seen in
-- this round expire) and rewrite the metrics file.
local function flush_round(started, success)
  bh.metrics.end_round{ duration = bh.now() - started, success = success }
  local ok, merr = bh.metrics.flush()
  if not ok then bh.log.error("metrics: " .. tostring(merr)) end
end

-- One round: find, probe all, report each, flush metrics. Returns the
-- count of each verdict. o.known becomes the set of records found, the
-- only paths GET /probe?manifest= accepts.
local function round(o)
  local started = bh.now()
  local paths, err = manifest_paths(o)
  if not paths then
    bh.log.error(tostring(err))
    flush_round(started, false)
    return nil, err
  end
  local known = {}
  for _, p in ipairs(paths) do known[p] = true end
  o.known = known
  local counts = {}
  bh.map(paths, function(path)
    local rec = check(path, o)
    if rec then
      counts[rec.verdict] = (counts[rec.verdict] or 0) + 1
      local ok, rerr = bh.report(rec)
      if not ok then bh.log.error(tostring(rerr)) end
      bh.metrics.observe(rec)
    end
  end, { concurrency = o.concurrency })
  flush_round(started, true)
  return counts
end

-- GET /probe?manifest=PATH (with --listen): probe that record now and
-- answer with its metrics. Only a record the last scan found is probed
-- (PATH is the scraper's input: nothing outside the roots is ever read);
-- a scrape never cleans up (no --apply), reports or counts in the rounds.
local function probe_handler(o)
  local dry = setmetatable({ apply = false }, { __index = o })
  return function(path)
    if not (o.known and o.known[path]) then
      return nil, "not a record found by the last scan", 404
    end
    local rec = check(path, dry)
    if not rec then return nil, "the record names no daemon", 404 end
    return rec
  end
end

-- The one-shot exit status (see the header): the worst severity found.
-- Verdicts not named here (foreign: another machine's record) are fine.
local SEVERITY = { stale = 1, unreachable = 1, impostor = 2, invalid = 2 }
local function exit_status(counts)
  local worst = 0
  for _, v in ipairs(bh.VERDICTS) do
    if (counts[v] or 0) > 0 then worst = math.max(worst, SEVERITY[v] or 0) end
  end
  return worst
end

local o = parse_args({ ... })
if bh.options.listen then bh.metrics.serve{ probe = probe_handler(o) } end
if o.every then
  bh.every(o.every, function() round(o) end, { jitter = 0.1, name = "manifests" }):wait()
else
  local counts = round(o)
  os.exit(counts and exit_status(counts) or 3)
end
