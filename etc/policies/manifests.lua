-- Probe every daemon recorded in cache manifests: those under each ROOT
-- given, or with no ROOT those of running-process's central registry
-- (bh.manifest.open_central()); with --all-users those of every user's
-- central registry too (a service running as root: each registry in its
-- user's home, checked as private to that user). Classify each record
-- (design §1.11: verified, stale, impostor, unreachable, foreign,
-- invalid, squatted, outdated), report one JSON line each, log each
-- record's verdict when it changes and one summary line per round, keep
-- the metrics up to date.
-- With --apply, clean up stale records only (clear the manifest's daemon;
-- remove its socket when nothing accepts on it, its successor does not
-- hold it, and the record's owner could have removed it); every other
-- verdict is never touched, and each reaction is logged and counted.
-- Default is a dry run.
--
--   bhprobe-lua [--report FILE] [--metrics FILE] [--listen HOST:PORT]
--       manifests.lua [ROOT...] [--apply] [--every DURATION] [--allow-empty]
--       [--all-users] [--max-depth N] [--concurrency N] [--timeout DURATION]
--       [--attempts N]
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
    { "--all-users", help = "every user's central registry too, each private to its user "
      .. "(as root)" },
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
local function unprobed(path, err, m, o, steps)
  local d = m and m.current_daemon
  local rec = bh.probe_record{ err = err, service = m and m.service_name, expected = d }
  rec.manifest = path
  rec.apply = o.apply
  rec.steps = steps
  if o.apply then rec.action = { skipped = rec.verdict } end
  return rec
end

-- Note a step of checking one record (only when steps is a list: the
-- debug view of /probe), timed from t0 (bh.now()).
local function note(steps, t0, step, result, detail)
  if steps then
    steps[#steps + 1] = { step = step, ms = (bh.now() - t0) * 1000, result = result,
      detail = detail }
  end
end

-- Probe the daemon of one manifest; returns its record, or nil when the
-- manifest records no daemon (unless o.no_daemon_record: then a record of
-- that, code no_daemon, verdict stale), or nil and a message when this
-- process could not read it for want of a resource (descriptors, memory:
-- the round's problem, not the record's). Connections are made on behalf
-- of the manifest's owner: to an endpoint it could not connect to itself,
-- never. With o.debug, the record carries its steps and their timings.
local function check(path, o, src)
  local steps = o.debug and {} or nil
  local t0 = bh.now()
  local m, info = src.read(path)
  if not m and info.code == "system" then return nil, tostring(info) end
  note(steps, t0, "read the record", m and "ok" or info.code,
    m and string.format("owner uid %d, mode %04o", info.uid, info.mode) or nil)
  if not m then return unprobed(path, info, nil, o, steps) end
  local d = m.current_daemon
  if not d then
    if not o.no_daemon_record then return nil end
    return unprobed(path, { code = "no_daemon", stage = "manifest",
      message = "the record names no daemon (cleared, or the daemon stopped)" }, m, o, steps)
  end
  t0 = bh.now()
  local local_host, ferr = bh.manifest.check_host(m)
  note(steps, t0, "check the host", local_host and "this machine" or ferr.code)
  if not local_host then return unprobed(path, ferr, m, o, steps) end
  local rec = bh.check_daemon(d, { service = m.service_name, timeout = o.timeout,
    attempts = o.attempts, owner = info.uid, steps = steps })
  rec.manifest = path
  rec.generation = d.exe_hash and 2 or 1 -- a manifest holds one (design §1.9)
  rec.apply = o.apply
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

-- A problem of the scan: said, and the round's reason (the first).
local function problem(s, msg, reason)
  s.problems[#s.problems + 1] = msg
  s.reason = s.reason or reason
end

-- Add the records of one central registry (ours without opts; a user's
-- with {path =, owner = uid}) to the scan s; returns the registry, or nil
-- when it could not be opened (refused when it is not private to its
-- owner, as running-process refuses it).
local function add_registry(s, opts)
  local reg, err = bh.manifest.open_central(opts)
  if not reg then
    problem(s, tostring(err), err.code == "insecure_registry" and "insecure_registry"
      or "unreadable")
    return nil
  end
  s.registries[#s.registries + 1] = reg
  if not reg.exists then return reg end
  local paths, lerr = reg:list()
  if not paths then
    problem(s, tostring(lerr), "unreadable")
    return reg
  end
  local src = reader(reg)
  for _, p in ipairs(paths) do
    s.paths[#s.paths + 1], s.srcs[p] = p, src
  end
  return reg
end

-- The manifests to probe and what could not be read: every ROOT's; with
-- --all-users every user's central registry (each in its user's home,
-- checked as private to that user); with neither, our own central
-- registry. Returns {paths, srcs = {path -> reader}, problems =
-- {message...}, empty_why, reason (of a failed scan), registries (open
-- ones, to close once a later scan replaced them)}.
local function scan(o)
  local s = { paths = {}, srcs = {}, problems = {}, registries = {} }
  local src = reader(nil)
  for _, root in ipairs(o.roots) do
    local paths, problems = bh.manifest.find(root, { max_depth = o.max_depth })
    if not paths then problems = { tostring(problems) } end
    for _, p in ipairs(paths or {}) do
      s.paths[#s.paths + 1], s.srcs[p] = p, src
    end
    for _, msg in ipairs(problems) do problem(s, msg, "unreadable") end
  end
  local where = #o.roots > 0 and { "under " .. table.concat(o.roots, ", ") } or {}
  if o.all_users then
    local users, uerr = bh.manifest.user_registries()
    if not users then
      problem(s, tostring(uerr), "unreadable")
    else
      for _, u in ipairs(users) do add_registry(s, { path = u.path, owner = u.uid }) end
      where[#where + 1] = "in the central registries of " .. #users .. " user(s)"
    end
  elseif #o.roots == 0 then
    local reg = add_registry(s)
    if reg then
      s.empty_why = "the central registry " .. reg.path
        .. (reg.exists and " holds no record" or " does not exist")
    end
    return s
  end
  s.empty_why = "no record found " .. table.concat(where, " or ")
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
  local seen, counts, records = {}, {}, 0
  o.known = s.srcs
  -- the previous round's registries: no /probe reads through them now
  for _, reg in ipairs(o.registries) do reg:close() end
  o.registries = s.registries
  bh.map(s.paths, function(path)
    local rec, trouble = check(path, o, s.srcs[path])
    if trouble then
      problem(s, trouble, "unreadable")
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
  bh.metrics.end_round{ duration = took, success = reason == nil, period = o.every }
  local ok, merr = bh.metrics.flush()
  if not ok then bh.log.error("metrics: " .. tostring(merr)) end
  return counts, reason == nil
end

-- GET /probe?manifest=PATH[&debug=true] (with --listen): probe that
-- record now and answer with its metrics (with debug, the record's steps
-- and timings). Only a record the last scan found is probed (PATH is the
-- scraper's input: nothing outside the roots is ever read); one that
-- names no daemon (cleared by --apply since) answers as a record of that
-- (stale, no_daemon), so that Prometheus sees "no daemon", not a target
-- down. A scrape never cleans up (no --apply), reports, logs or counts in
-- the rounds.
local function probe_handler(o)
  local dry = setmetatable({ apply = false, no_daemon_record = true }, { __index = o })
  local debug = setmetatable({ debug = true }, { __index = dry })
  return function(path, want_debug)
    local src = o.known and o.known[path]
    if not src then return nil, "not a record found by the last scan", 404 end
    local rec, trouble = check(path, want_debug and debug or dry, src)
    if trouble then return nil, trouble, 503 end
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
o.last, o.rounds, o.registries = {}, 0, {}
if bh.options.listen then bh.metrics.serve{ probe = probe_handler(o) } end
if o.every then
  bh.every(o.every, function() round(o) end, { jitter = 0.1, name = "manifests" }):wait()
else
  os.exit(exit_status(round(o)))
end
