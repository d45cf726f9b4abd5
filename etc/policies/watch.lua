-- watch.lua: keep probing daemons and report when their health changes.
--
--   bhprobe-lua etc/policies/watch.lua [--every DURATION] [--timeout DURATION]
--       [--success N] [--failure N] IDENTITY.json...
--
-- Every period each identity file is re-read (a daemon that restarted
-- rewrites it) and probed, retrying transient failures (timeout, connect,
-- io) with bh.retry. A bh.threshold per file turns the results into a
-- state that changes only after N results in a row, like Kubernetes'
-- success/failure thresholds; each change prints one line. Runs until
-- SIGINT/SIGTERM (exit 130/143); a bad option is exit 3 before any probe.

local SPEC = {
  name = "watch.lua",
  about = "Probes each recorded identity every period and prints a line when its "
    .. "state changes.",
  args = { name = "IDENTITY.json", key = "files", min = 1 },
  options = {
    { "--every", "duration", default = 5, max = 86400, help = "the period" },
    { "--timeout", "duration", default = 0.5, max = 86400, help = "deadline of one probe" },
    { "--success", "integer", default = 1, min = 1, max = 1000000,
      help = "successes in a row that make it healthy" },
    { "--failure", "integer", default = 3, min = 1, max = 1000000,
      help = "failures in a row that make it unhealthy" },
  },
  exits = "runs until SIGINT/SIGTERM (exit 130/143); 3 for a usage error",
}

-- Reads an identity file: identity, or nil and an error table like the
-- probe's (stage "identity"), so both kinds of failure look alike.
local function read_identity(path)
  local f, ferr = io.open(path)
  if not f then return nil, { code = "unreadable", stage = "identity", message = ferr } end
  local text = f:read("a")
  f:close()
  return bh.identity.from_json(text)
end

-- One check: read the file, then probe with retries. → handle or nil, err
local function check(path, o)
  local id, err = read_identity(path)
  if not id then return nil, err end
  return bh.retry(function()
    return bh.probe(id.ipc_endpoint, id, { timeout = o.timeout })
  end, { attempts = 3, backoff = math.min(0.1, o.every / 10), max_backoff = o.every / 2 })
end

local function say(path, state, detail)
  print(string.format("%s %-9s %s %s", os.date("!%Y-%m-%dT%H:%M:%SZ"), state, path, detail))
end

-- Watches one file forever.
local function watch(path, o)
  local t = bh.threshold{ success = o.success, failure = o.failure }
  while true do
    local h, err = check(path, o)
    local state, changed = t:observe(h)
    if changed then
      if h then
        say(path, state, string.format("(pid %d, %.1f ms)", h.identity.pid, h.elapsed * 1000))
      else
        say(path, state, string.format("(%s: %s)", tostring(err and err.code),
          tostring(err and err.message)))
      end
    end
    bh.sleep(o.every)
  end
end

local o = bh.cli.parse({ ... }, SPEC)
io.stdout:setvbuf("line")
print(string.format("watching %d file(s) every %g s (success %d, failure %d)",
  #o.files, o.every, o.success, o.failure))
local tasks = {}
for _, path in ipairs(o.files) do tasks[#tasks + 1] = bh.spawn(watch, path, o) end
for _, task in ipairs(tasks) do task:wait() end
