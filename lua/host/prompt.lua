-- The -i prompt, lua.c's doREPL written in Lua because it waits (for
-- stdin and for each line's task), which a C function could only do
-- through continuations. It runs in the main task of the session
-- (lbh_session) after the command line's chunks, so the loop serves
-- responders, spawned tasks and timers across lines and while the prompt
-- waits. Each chunk is tried as "return LINE" first (expressions print
-- their values; "=expr" as in Lua 5.1), continued with ">> " while
-- unfinished, kept whole in the history, then run as its own task; the
-- prompt waits for it and prints its values (bh.pretty) or its error.
-- host.readline is lbh_readline: a line, nil at the end, false after ^C.
-- Embedded into the host at build time.
local host = ...
local read, report, spawn, history = host.readline, host.report, host.spawn, host.history
local pretty = host.pretty
local pack, concat = table.pack, table.concat
local stdout = io.stdout -- as the prompt starts: a line may replace io

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]]):gmatch("%a+") do
  KEYWORDS[#KEYWORDS + 1] = w
end

-- The names t offers after "." (fields and methods) or ":" (methods
-- only) that start with prefix, added to out as head .. sep .. name: its
-- own keys when a table, then along its metatables' __index tables
-- (strings, classes written in Lua), the method tables of the userdata
-- classes (methods, __methods) and the names their __index function
-- answers (__fields: a handle's identity, timings, ...). Internal names,
-- those starting with "_" (bh._check_arg), only when prefix does.
local function add_keys(out, t, head, sep, prefix)
  local seen = {}
  local internal = prefix:sub(1, 1) == "_"
  local function offer(k, v)
    if type(k) == "string" and not seen[k] and k:sub(1, #prefix) == prefix
      and k:match("^[%a_][%w_]*$") and (internal or k:sub(1, 1) ~= "_")
      and (sep ~= ":" or type(v) == "function") then
      seen[k] = true
      out[#out + 1] = head .. sep .. k
    end
  end
  local function scan(tbl)
    if type(tbl) ~= "table" then return end
    for k, v in next, tbl do offer(k, v) end
  end
  if type(t) == "table" then scan(t) end
  local mt = getmetatable(t)
  for _ = 1, 8 do -- a chain of classes, not a loop of them
    if type(mt) ~= "table" then break end
    scan(rawget(mt, "methods"))
    scan(rawget(mt, "__methods"))
    local fields = rawget(mt, "__fields")
    if sep ~= ":" and type(fields) == "table" then
      for _, k in ipairs(fields) do offer(k, nil) end
    end
    local index = rawget(mt, "__index")
    scan(index)
    mt = type(index) == "table" and getmetatable(index) or nil
  end
end

-- The completions of word ("pri", "bh.pro", "r:cl"): globals and
-- keywords, or the fields of what the dotted path before it names.
local function complete(word)
  local out = {}
  local head, sep, prefix = word:match("^(.*)([.:])([%w_]*)$")
  if head == nil then
    add_keys(out, _G, "", "", word)
    for _, kw in ipairs(KEYWORDS) do
      if kw:sub(1, #word) == word then out[#out + 1] = kw end
    end
  else
    local t = _G
    for name in head:gmatch("[^.:]+") do
      local ok, v = pcall(function() return t[name] end)
      if not ok or v == nil then return {} end
      t = v
    end
    add_keys(out, t, head, sep, prefix)
  end
  table.sort(out)
  return out
end

-- The prompt to show: _PROMPT (first line) or _PROMPT2 (continuation)
-- through tostring, when not nil, as lua.c's get_prompt.
local function get_prompt(firstline)
  -- luacheck: read globals _PROMPT _PROMPT2
  local p
  if firstline then p = _PROMPT else p = _PROMPT2 end
  if p == nil then return firstline and "> " or ">> " end
  return tostring(p)
end

local function loadline()
  local line = read(get_prompt(true), complete)
  if not line then return line, nil, line == nil end
  local typed = line
  if line:sub(1, 1) == "=" then line = "return " .. line:sub(2) end
  local f, err = load('return ' .. line .. ';', '=stdin')
  while not f do
    f, err = load(line, '=stdin')
    if f or not err:find('<eof>$') then break end
    local more = read(get_prompt(false), complete)
    if not more then return more, more == nil and err, more == nil end
    line, typed = line .. '\n' .. more, typed .. '\n' .. more
  end
  history(typed)
  return f, err
end

-- Print a line's values: strings as they are (like print), the rest
-- through bh.pretty.
local function show(r)
  local parts = {}
  for i = 2, r.n do
    local v = r[i]
    parts[#parts + 1] = type(v) == "string" and v or pretty(v)
  end
  print(concat(parts, "\t"))
end

while true do
  local f, err, ended = loadline()
  if f then
    local t = spawn(f)
    local r = pack(pcall(t.wait, t))
    if not r[1] then
      report(r[2], true)
    elseif r.n > 1 then
      local ok, e = pcall(show, r)
      if not ok then report("error printing the result (" .. tostring(e) .. ')', true) end
    end
  elseif err then
    report(err, true)
  end
  if ended then break end
end
-- At the end of input, end the prompt's line (lua.c's doREPL does too;
-- a prompt that never started prints nothing).
stdout:write("\n")
stdout:flush()
