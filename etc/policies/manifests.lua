-- Probe every daemon recorded in cache manifests: those under each ROOT
-- given, or with no ROOT those of running-process's central registry
-- (bh.manifest.open_central()). Classify each record (design §1.11:
-- verified, stale, impostor, unreachable, foreign, invalid, squatted,
-- outdated), report one JSON line each, log each record's verdict when it
-- changes and one summary line per round, keep the metrics up to date.
-- With --apply, clean up stale records only (clear the manifest's daemon;
-- remove its socket when nothing accepts on it, its successor does not
-- hold it, and the record's owner could have removed it); every other
-- verdict is never touched, and each reaction is logged and counted.
-- Default is a dry run.
--
--   bhprobe-lua [--report FILE] [--metrics FILE] [--listen HOST:PORT]
--       manifests.lua [ROOT...] [--apply] [--every DURATION] [--allow-empty]
--       [--max-depth N] [--concurrency N] [--timeout DURATION] [--attempts N]
--
-- Exit status of a one-shot run (no --every), as a monitoring plugin's:
-- 0 every record verified; 1 (WARNING) a stale, unreachable or outdated
-- record; 2 (CRITICAL) an impostor, a squatted or an invalid record;
-- 3 (UNKNOWN) a usage error, a root, a directory under it or the
-- registry that could not be read, or no record found at all (unless
-- --allow-empty). A CRITICAL finding outranks an incomplete scan. With
-- --every it runs until SIGTERM/SIGINT (the host's 143/130); a round that
-- could not read something, or found nothing, is logged and counted in
-- bhprobe_round_errors_total{reason} instead.
local bh = bh or require "bh"

local SPEC = {
  name = "manifests.lua",
  about = "Probes the daemons recorded in cache manifests under each ROOT (none: the "
    .. "central registry),\nreports one JSON line per record and keeps the metrics.",
  args = { name = "ROOT", key = "roots" },
  options = {
    { "--apply", help = "clean up stale records (dry run without it)" },
    { "--every", "duration", max = 1e9, help = "a round every DURATION, until stopped" },
    { "--allow-empty", help = "a scan that finds no record is OK, not UNKNOWN" },
    { "--max-depth", "integer", default = 8, min = 0, max = 64,
      help = "directory levels searched below a ROOT" },
    { "--concurrency", "integer", default = 64, min = 1, max = 100000, help = "probes at once" },
    { "--timeout", "duration", default = 0.5, max = 86400, help = "deadline of one probe" },
    { "--attempts", "integer", default = 3, min = 1, max = 100,
      help = "attempts of a probe that may clear up by itself" },
  },
  exits = "exit status (one round): 0 all verified; 1 stale, unreachable or outdated;\n"
    .. "2 impostor, squatted or invalid; 3 usage error, something unreadable, or no\n"
    .. "record found (unless --allow-empty)",
}

-- Retry what may clear up by itself: timeouts, I/O, a refused connection
-- (a daemon restarting), an executable we could not read.
local RETRY_ON = { timeout = true, io = true, connect = true, exe_path = true, exe_hash = true }

-- A string from a record or a peer, at most n bytes in a log line (the
-- one cut of strings from records, bh.cut, with its mark).
local function cap(s, n)
  return bh.cut(tostring(s), n or 256)
end

-- The directory part of a path.
local function dir_of(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- A record's file, read and cleared where it was found: through the
-- registry's checked descriptor, or by path under a root.
local function reader(reg)
  if reg then
    return {
      read = function(path) return reg:read(path) end,
      clear = function(path, d) return reg:clear_daemon(path, { only_if = d }) end,
    }
  end
  return {
    read = function(path) return bh.manifest.read(path) end,
    clear = function(path, d) return bh.manifest.clear_daemon(path, { only_if = d }) end,
  }
end

-- Clear the record (only if it still names the daemon probed): said,
-- counted, carried in action.
local function clear_record(path, daemon, src, action)
  local cleared, why = src.clear(path, daemon)
  action.cleared = cleared or false
  if cleared then
    bh.log.notice(string.format("cleared the stale record %s (pid %s, %s)", path,
      tostring(daemon.pid), cap(daemon.ipc_endpoint.path)))
    bh.metrics.reaction("clear_record", "done")
  elseif cleared == false then
    action.left = why -- decided, not failed: it names another daemon now, ...
  else
    action.error = why.code .. ": " .. tostring(why)
    bh.log.error(string.format("could not clear the stale record %s: %s", path, action.error))
    bh.metrics.reaction("clear_record", "failed")
  end
end

-- Remove the record's socket: only when nothing accepts on it and the
-- record's owner could remove it itself (or it lies in the record's own
-- directory); never the socket its successor listens on.
local function remove_socket(path, daemon, info, successor, action)
  local sock_path = daemon.ipc_endpoint.path
  action.socket_removed = false
  if successor then
    action.socket_left = "its successor, pid " .. successor .. ", listens on it"
    return
  end
  local sock, err = bh.fs.remove_stale_socket(sock_path,
    { owner = info.uid, within = dir_of(path) })
  if not sock then
    action.socket_error = err.code .. ": " .. tostring(err)
    bh.log.error(string.format("could not remove the socket %s of the stale record %s: %s",
      cap(sock_path), path, action.socket_error))
    bh.metrics.reaction("remove_socket", "failed")
  elseif sock.removed then
    action.socket_removed = true
    bh.log.notice(string.format("removed the stale socket %s of %s", cap(sock_path), path))
    bh.metrics.reaction("remove_socket", "done")
  elseif sock.forbidden then
    action.socket_left = "the record's owner could not remove it: " .. sock.reason
  end
end

-- The reaction to a record under --apply: stale ones are cleaned, every
-- other verdict is skipped (the verdict is the reason).
local function react(rec, path, daemon, info, src)
  if rec.verdict ~= "stale" then
    rec.action = { skipped = rec.verdict }
    return
  end
  local action = {}
  clear_record(path, daemon, src, action)
  remove_socket(path, daemon, info, rec.successor, action)
  rec.action = action
end

-- The record of a manifest that is not probed: unreadable, corrupt, or
-- another machine's.
local function unprobed(path, err, m, o)
  local d = m and m.current_daemon
  local rec = bh.probe_record{ err = err, service = m and m.service_name, expected = d }
  rec.manifest = path
  rec.apply = o.apply
  if o.apply then rec.action = { skipped = rec.verdict } end
  return rec
end

-- Probe the daemon of one manifest; returns its record, or nil when the
-- manifest records no daemon, or nil and a message when this process
-- could not read it for want of a resource (descriptors, memory: the
-- round's problem, not the record's). Connections are made on behalf of
-- the manifest's owner: to an endpoint it could not connect to itself,
-- never.
local function check(path, o, src)
  local m, info = src.read(path)
  if not m and info.code == "system" then return nil, tostring(info) end
  if not m then return unprobed(path, info, nil, o) end
  local d = m.current_daemon
  if not d then return nil end
  local local_host, ferr = bh.manifest.check_host(m)
  if not local_host then return unprobed(path, ferr, m, o) end
  local started = bh.now()
  local h, perr = bh.retry(function()
    return bh.probe(d.ipc_endpoint, d, { timeout = o.timeout, owner = info.uid })
  end, { attempts = o.attempts, backoff = 0.1, retry_on = RETRY_ON })
  local rec = bh.probe_record{ service = m.service_name, expected = d, handle = h,
    err = perr, elapsed = h and h.elapsed or (bh.now() - started) }
  rec.manifest = path
  rec.generation = d.exe_hash and 2 or 1 -- a manifest holds one (design §1.9)
  rec.apply = o.apply
  if h and h.close then h:close() end
  if o.apply then react(rec, path, d, info, src) end
  return rec
end

-- Log priority and wording of a verdict line.
local LOUD = { impostor = "IMPOSTOR", squatted = "SQUATTED" }
local WARN = { stale = true, unreachable = true, outdated = true, invalid = true }

-- Say a record's verdict: the first time it is seen and when it changes.
local function log_verdict(o, rec)
  local key = rec.verdict .. "\0" .. tostring(rec.code)
  if o.last[rec.manifest] == key then return end
  o.last[rec.manifest] = key
  local ep = rec.endpoint and rec.endpoint.path
  if LOUD[rec.verdict] then
    local by = ""
    if rec.peer then
      by = string.format(" held by pid %s (uid %s, %s)", tostring(rec.peer.pid),
        tostring(rec.peer.uid), cap(rec.peer.exe or "executable unknown"))
    end
    bh.log.error(string.format("%s at %s%s (manifest %s): %s; record left untouched",
      LOUD[rec.verdict], cap(ep), by, rec.manifest, cap(rec.message or rec.code)))
  elseif WARN[rec.verdict] then
    bh.log.warn(string.format("%s: %s (%s: %s)", rec.manifest, rec.verdict, tostring(rec.code),
      cap(rec.message or "")))
  else
    bh.log.info(string.format("%s: %s", rec.manifest, rec.verdict))
  end
end

-- The manifests to probe and what could not be read: every ROOT's, or
-- the central registry's (refused when insecure, as running-process
-- refuses it). Returns {paths, problems = {message...}, empty_why,
-- reason (of a failed scan), src}.
local function scan(o)
  local s = { paths = {}, problems = {} }
  if #o.roots == 0 then
    if o.registry then o.registry:close() end
    local reg, err = bh.manifest.open_central()
    o.registry = reg
    if not reg then
      s.problems[1], s.reason = tostring(err), err.code == "insecure_registry"
        and "insecure_registry" or "unreadable"
      return s
    end
    s.src = reader(reg)
    if not reg.exists then
      s.empty_why = "the central registry " .. reg.path .. " does not exist"
      return s
    end
    local paths, lerr = reg:list()
    if not paths then
      s.problems[1], s.reason = tostring(lerr), "unreadable"
      return s
    end
    s.paths = paths
    s.empty_why = "the central registry " .. reg.path .. " holds no record"
    return s
  end
  s.src = reader(nil)
  for _, root in ipairs(o.roots) do
    local paths, problems = bh.manifest.find(root, { max_depth = o.max_depth })
    if not paths then problems = { tostring(problems) } end
    table.move(paths or {}, 1, #(paths or {}), #s.paths + 1, s.paths)
    table.move(problems, 1, #problems, #s.problems + 1, s.problems)
  end
  if #s.problems > 0 then s.reason = "unreadable" end
  s.empty_why = "no record found under " .. table.concat(o.roots, ", ")
  return s
end

-- "3 verified, 1 stale" for the counts, in the order of bh.VERDICTS.
local function count_text(counts)
  local parts = {}
  for _, v in ipairs(bh.VERDICTS) do
    if (counts[v] or 0) > 0 then parts[#parts + 1] = counts[v] .. " " .. v end
  end
  return #parts > 0 and table.concat(parts, ", ") or "nothing"
end

-- One round: scan, probe all, report each, log changes and a summary,
-- flush metrics. Returns the counts of each verdict and whether the round
-- did its work (read everything it should, found something).
local function round(o)
  local started = bh.now()
  o.rounds = o.rounds + 1
  local s = scan(o)
  local known, seen, counts, records = {}, {}, {}, 0
  for _, p in ipairs(s.paths) do known[p] = s.src end
  o.known = known
  bh.map(s.paths, function(path)
    local rec, problem = check(path, o, s.src)
    if problem then
      s.problems[#s.problems + 1] = problem
      s.reason = "unreadable"
      seen[path] = o.last[path] ~= nil or nil -- not read: nothing new to say
    end
    if rec then
      records = records + 1
      seen[path] = true
      counts[rec.verdict] = (counts[rec.verdict] or 0) + 1
      local ok, rerr = bh.report(rec)
      if not ok then bh.log.error(tostring(rerr)) end
      bh.metrics.observe(rec)
      log_verdict(o, rec)
    end
  end, { concurrency = o.concurrency })
  for path in pairs(o.last) do if not seen[path] then o.last[path] = nil end end
  for _, p in ipairs(s.problems) do bh.log.error(p) end
  local reason = s.reason
  if not reason and records == 0 and not o.allow_empty then
    reason = "empty"
    bh.log.error(string.format("%s (%d manifest(s) read, none names a daemon): "
      .. "nothing was checked", s.empty_why or "no record found", #s.paths))
  end
  if reason then bh.metrics.round_error(reason) end
  local took = bh.now() - started
  bh.log.info(string.format("round %d: %d record(s) in %.3f s: %s%s", o.rounds, records, took,
    count_text(counts), #s.problems > 0 and string.format("; %d unreadable", #s.problems) or ""))
  bh.metrics.end_round{ duration = took, success = reason == nil }
  local ok, merr = bh.metrics.flush()
  if not ok then bh.log.error("metrics: " .. tostring(merr)) end
  return counts, reason == nil
end

-- GET /probe?manifest=PATH (with --listen): probe that record now and
-- answer with its metrics. Only a record the last scan found is probed
-- (PATH is the scraper's input: nothing outside the roots is ever read);
-- a scrape never cleans up (no --apply), reports, logs or counts in the
-- rounds.
local function probe_handler(o)
  local dry = setmetatable({ apply = false }, { __index = o })
  return function(path)
    local src = o.known and o.known[path]
    if not src then return nil, "not a record found by the last scan", 404 end
    local rec, problem = check(path, dry, src)
    if problem then return nil, problem, 503 end
    if not rec then return nil, "the record names no daemon", 404 end
    return rec
  end
end

-- The one-shot exit status (see the head): the worst severity found,
-- CRITICAL before an incomplete scan (UNKNOWN).
local SEVERITY = { stale = 1, unreachable = 1, outdated = 1, impostor = 2, squatted = 2,
  invalid = 2 }
local function exit_status(counts, complete)
  local worst = 0
  for _, v in ipairs(bh.VERDICTS) do
    if (counts[v] or 0) > 0 then worst = math.max(worst, SEVERITY[v] or 0) end
  end
  if worst < 2 and not complete then return 3 end
  return worst
end

local o = bh.cli.parse({ ... }, SPEC)
o.last, o.rounds = {}, 0
if bh.options.listen then bh.metrics.serve{ probe = probe_handler(o) } end
if o.every then
  bh.every(o.every, function() round(o) end, { jitter = 0.1, name = "manifests" }):wait()
else
  os.exit(exit_status(round(o)))
end
