-- The -i prompt, lua.c's doREPL written in Lua because it waits (for
-- stdin and for each line's task), which a C function could only do
-- through continuations. It runs as the main task of one session
-- (lbh_session), so the loop serves responders, spawned tasks and timers
-- across lines and while the prompt waits. Each chunk is tried as
-- "return LINE" first (expressions print their values), continued with
-- ">> " while unfinished, then run as its own task; the prompt waits for
-- it and prints its values or its error. read is lbh_readline: a line,
-- nil at the end, false after ^C. Embedded into the host at build time.
local read, report, spawn = ...
local pack, unpack = table.pack, table.unpack
local function loadline()
  local line = read('> ')
  if not line then return line, nil, line == nil end
  local f, err = load('return ' .. line .. ';', '=stdin')
  while not f do
    f, err = load(line, '=stdin')
    if f or not err:find('<eof>$') then break end
    local more = read('>> ')
    if not more then return more, more == nil and err, more == nil end
    line = line .. '\n' .. more
  end
  return f, err
end
while true do
  local f, err, ended = loadline()
  if f then
    local t = spawn(f)
    local r = pack(pcall(t.wait, t))
    if not r[1] then
      report(r[2])
    elseif r.n > 1 then
      local ok, e = pcall(print, unpack(r, 2, r.n))
      if not ok then report("error calling 'print' (" .. tostring(e) .. ')') end
    end
  elseif err then
    report(err)
  end
  if ended then break end
end
