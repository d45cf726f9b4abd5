-- The host's one run: the main task of bh.run (or, with -i, of the
-- session lbh_session) that runs the command line's chunks in order,
-- each as a task it waits for (LUA_INIT, -e CODE, -l NAME, the script or
-- stdin; -W turns warnings on where it stands), then, with -i, the
-- prompt. Everything shares this one loop, so what a
-- chunk opens (a responder, a background task) is still there for the
-- next chunk and at the prompt. Embedded into the host at build time.
--
-- host: load(step) -> fn | nil, message, status (1 or 2: a usage error,
-- already printed, has no message); report(msg,
-- bare) prints an error; spawn = bh.spawn; prompt: the prompt's function
-- (lua/host/prompt.lua), nil without -i. Returns the exit status (nil: 0).
local steps, host, prompt = ...
local unpack = table.unpack
local warn = warn -- as the run starts: a step may replace the global

-- -l NAME: what require does, except that the module's loader runs as
-- the step's task (require, a C function, cannot yield). Returns the
-- loader and its arguments, or nil, message.
local function find_module(name)
  local msgs = {}
  for _, searcher in ipairs(package.searchers) do
    local loader, extra = searcher(name)
    if type(loader) == "function" then return loader, { name, extra, n = 2 } end
    if type(loader) == "string" then msgs[#msgs + 1] = loader end
  end
  return nil, "module '" .. name .. "' not found:" .. table.concat(msgs)
end

-- Runs one step as a task; returns ok, its first result (or the error).
local function run(step)
  local f, args
  if step.kind == "l" then
    if package.loaded[step.module] ~= nil then return true, package.loaded[step.module] end
    f, args = find_module(step.module)
    if not f then return false, args end
  else
    local msg, status
    f, msg, status = host.load(step)
    if not f then return false, msg, status end
    args = step.args or { n = 0 }
  end
  local t = host.spawn(f, unpack(args, 1, args.n))
  local ok, res = pcall(t.wait, t)
  if ok and step.kind == "l" then
    if res ~= nil then package.loaded[step.module] = res end
    if package.loaded[step.module] == nil then package.loaded[step.module] = true end
    res = package.loaded[step.module]
  end
  return ok, res
end

for _, step in ipairs(steps) do
  if step.kind == "W" then
    warn("@on")
  else
    local ok, res, status = run(step)
    if not ok then
      if res ~= nil then host.report(res) end
      return status or 1
    end
    if step.kind == "l" then _G[step.global] = res end
  end
end
if prompt then return prompt(host) end
