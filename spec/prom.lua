-- Helpers of the specs that run the real monitoring tools against the
-- real binary: Debian's prometheus and prometheus-node-exporter, curl,
-- and bhprobe-lua services in the background, each in its own directory.
-- Ports are dynamic (free ones on 127.0.0.1, found by binding port 0);
-- every wait is bounded and every process started is stopped by the
-- spec, on every path (M.cleanup). External tools run with
-- `env -u LD_PRELOAD`: in the sanitized tree the ASan runtime is
-- preloaded for lua5.4, and Go programs and curl do not want it.
local H = require "helpers"
local json = require "dkjson"
local q = H.q
local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")

local M = {}

-- The source tree (ctest runs the specs from it).
M.ROOT = assert(io.popen("pwd")):read("l")
M.POLICY = M.ROOT .. "/etc/policies/manifests.lua"
M.RULES = M.ROOT .. "/etc/prometheus/bhprobe-lua.rules.yml"

local function sleep(s) os.execute("sleep " .. s) end
M.sleep = sleep

-- Polls fn() every `every` seconds for at most `limit` seconds until it
-- returns a true value, and returns what it returned; else raises with
-- what(), the last state worth saying.
function M.wait(limit, every, fn, what)
  local deadline = os.time() + limit
  repeat
    local r = table.pack(fn())
    if r[1] then return table.unpack(r, 1, r.n) end
    sleep(every)
  until os.time() > deadline
  error("timed out after " .. limit .. " s: " .. tostring(what and what() or ""))
end

-- A free TCP address on 127.0.0.1 (bound once by the host, then released).
function M.free_addr()
  local p = assert(io.popen(q(BIN) .. " --listen 127.0.0.1:0 -e "
    .. q("print(bh.options.listen_address)") .. " 2>/dev/null"))
  local a = p:read("l")
  p:close()
  return assert(a and a:match("^127%.0%.0%.1:%d+$") and a, "no free port")
end

-- GET url: returns the status, the body and the content type.
function M.curl(url, opts)
  local p = assert(io.popen("env -u LD_PRELOAD curl -s --noproxy '*' --max-time 20 "
    .. (opts or "") .. " -w '\\n%{http_code} %{content_type}' " .. q(url)))
  local out = p:read("a")
  p:close()
  local body, code, ctype = out:match("^(.-)\n?(%d+) ([^\n]*)$")
  return tonumber(code), body, ctype
end

-- Starts the shell command cmd in the background in directory d, its
-- output in d/log; returns {pid =, stop = fn} (stop: SIGTERM, then
-- SIGKILL after 10 s; returns the exit status when it had one).
function M.background(d, cmd)
  os.execute(string.format("cd %s && (%s >log 2>&1 & echo $! >pid; wait $!; echo $? >rc) "
    .. ">/dev/null 2>&1 &", q(d), cmd))
  local pid = M.wait(10, 0.02, function() return (H.slurp(d .. "/pid") or ""):match("%d+") end,
    function() return "no pid in " .. d end)
  local p = { pid = pid, dir = d }
  function p.log() return H.slurp(d .. "/log") or "" end
  function p.status() return tonumber((H.slurp(d .. "/rc") or ""):match("%d+")) end
  function p.stop()
    if p.status() then return p.status() end
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 200 do
      if p.status() then return p.status() end
      sleep(0.05)
    end
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    return nil
  end
  return p
end

-- The processes a spec started, stopped by M.cleanup() (an after_each).
local started = {}

function M.cleanup()
  for i = #started, 1, -1 do started[i].stop() end
  started = {}
end

local function track(p)
  started[#started + 1] = p
  return p
end

-- bhprobe-lua host_args POLICY args in the background in a fresh
-- directory d (with --listen 127.0.0.1:0 in host_args, p.addr() is the
-- address it bound, read from its log line).
function M.policy(d, host_args, args)
  os.execute("rm -rf " .. q(d) .. " && mkdir -p " .. q(d))
  local p = track(M.background(d, string.format("env --default-signal=INT,TERM %s %s %s %s",
    q(BIN), host_args, q(M.POLICY), args)))
  function p.addr()
    return M.wait(20, 0.05, function()
      return p.log():match("serving metrics on http://([^/]+)/metrics")
    end, p.log)
  end
  return p
end

-- A real Prometheus (Debian's) with config (YAML text) in a fresh
-- directory d, on a free port; returns {web = "127.0.0.1:PORT", stop,
-- log, query(promql) -> the API's decoded answer, alerts() -> the firing
-- and pending alerts}. Waits until it is ready.
function M.prometheus(d, config)
  os.execute("rm -rf " .. q(d) .. " && mkdir -p " .. q(d))
  H.spit(d .. "/prometheus.yml", config)
  local web = M.free_addr()
  local p = track(M.background(d, "env -u LD_PRELOAD prometheus "
    .. "--config.file=prometheus.yml --storage.tsdb.path=data --web.listen-address=" .. web))
  p.web = web
  M.wait(30, 0.1, function() return M.curl("http://" .. web .. "/-/ready") == 200 end, p.log)
  local function api(path)
    local code, body = M.curl("http://" .. web .. path)
    if code ~= 200 then return nil end
    return json.decode(body, 1, json.null), body
  end
  function p.query(promql)
    return api("/api/v1/query?query=" .. promql:gsub("[^%w%-%._~]", function(c)
      return string.format("%%%02X", c:byte())
    end))
  end
  function p.alerts()
    local r = api("/api/v1/alerts")
    return r and r.data and r.data.alerts
  end
  function p.targets()
    local r = api("/api/v1/targets")
    return r and r.data and r.data.activeTargets
  end
  return p
end

-- The YAML of a string list, quoted.
function M.yaml_list(items)
  local out = {}
  for i, v in ipairs(items) do out[i] = "'" .. v:gsub("'", "''") .. "'" end
  return "[" .. table.concat(out, ", ") .. "]"
end

-- A process of ours holding real daemons for the specs: for each host h of
-- hosts (a name -> list of {service =, kind = "verified" | "impostor" |
-- "stale" | "silent"}), a cache root d/h with one manifest per service,
-- each recorded daemon a responder on a socket under d (an impostor
-- answers with a lying identity; a silent one reads the request and never
-- answers; a stale record names a pid that does not run, and nothing
-- listens). Runs until stopped; returns it, once every root is written.
local FIXTURE = [=[
local d, spec = ...
local hosts = assert(load("return " .. spec))()
local keep = {}
for host, services in pairs(hosts) do
  for _, s in ipairs(services) do
    local dir = d .. "/" .. host .. "/" .. s.service
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    local ep = { namespace_id = host, path = d .. "/" .. host .. "-" .. s.service .. ".sock" }
    local id = assert(bh.identity.current{ endpoint = ep })
    local answer
    if s.kind == "impostor" then
      answer = bh.identity.from_json(bh.identity.to_json(id))
      answer.boot_id = "not-this-boot"
    end
    if s.kind == "stale" then -- a pid that does not run: nothing listens either
      id = bh.identity.from_json(bh.identity.to_json(id))
      id.pid = 4194000
    else
      keep[#keep + 1] = assert(bh.respond(ep, id, { on_request = function() return answer end,
        reply = s.kind == "silent" and "silent" or nil }))
    end
    assert(bh.manifest.write(dir .. "/" .. bh.manifest.NAME,
      { service_name = s.service, current_daemon = id }))
  end
end
io.open(d .. "/fixture.ready", "w"):close()
bh.sleep(600)
]=]

-- Serialises a hosts table for the fixture's command line.
local function lua_literal(hosts)
  local parts = {}
  for host, services in pairs(hosts) do
    local list = {}
    for i, s in ipairs(services) do
      list[i] = string.format("{service=%q,kind=%q}", s.service, s.kind or "verified")
    end
    parts[#parts + 1] = string.format("[%q]={%s}", host, table.concat(list, ","))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function M.daemons(d, hosts)
  local fd = d .. "/fixture"
  os.execute("mkdir -p " .. q(fd))
  H.spit(fd .. "/fixture.lua", FIXTURE)
  local p = track(M.background(fd, string.format("%s %s %s %s", q(BIN), q(fd .. "/fixture.lua"),
    q(d), q(lua_literal(hosts)))))
  M.wait(20, 0.05, function() return H.exists(d .. "/fixture.ready") end, p.log)
  return p
end

return M
