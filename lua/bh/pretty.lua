-- bh.pretty(value) -> string: a value as a person wants to read it (the
-- -i prompt prints with it): tables nested and indented with sorted keys
-- (the list part first), on one line when short; strings quoted; floats
-- inside tables with 4 significant digits (timings fit on one line), a
-- number alone in full;
-- identities, manifests and error tables readable at a glance (an error
-- shows as bh.error{...}, from its metatable's name); a table met again
-- inside itself as <cycle>; very deep or very long tables cut with a
-- note. A module (require "bh.pretty"); luaopen_bh also puts it in bh.
local M = {}

local MAX_DEPTH = 8    -- deeper tables show as {...}
local MAX_ITEMS = 200  -- more entries show as "... (n more)"
local WIDTH = 72       -- a table fitting in this many columns stays on one line

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]]):gmatch("%a+") do
  KEYWORDS[w] = true
end

local function scalar(v)
  local t = type(v)
  if t == "string" then return (string.format("%q", v):gsub("\\\n", "\\n")) end
  return tostring(v)
end

-- A float inside a table: 4 significant digits are what a person reads
-- in timings and ratios; ".0" keeps a whole one a float, as tostring does.
local function compact(x)
  local s = string.format("%.4g", x)
  if s:match("^%-?%d+$") then s = s .. ".0" end
  return s
end

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then return k end
  return "[" .. scalar(k) .. "]"
end

-- Keys in a stable order, without the list part 1..n: numbers first
-- (ascending), then strings, then anything else by its text.
local function sorted_keys(t, n)
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  local rank = { number = 1, string = 2 }
  table.sort(keys, function(a, b)
    local ra, rb = rank[type(a)] or 3, rank[type(b)] or 3
    if ra ~= rb then return ra < rb end
    if ra == 3 then return tostring(a) < tostring(b) end
    return a < b
  end)
  return keys
end

-- The name a table announces through its metatable (bh.error), if any.
local function type_name(t)
  local mt = getmetatable(t)
  if type(mt) == "table" and type(rawget(mt, "__name")) == "string" then
    return rawget(mt, "__name")
  end
end

local render

-- The entries of t as strings: the list part, then the rest by key.
local function entries(t, indent, seen, depth)
  local out = {}
  local n = #t
  for i = 1, math.min(n, MAX_ITEMS) do
    out[#out + 1] = render(rawget(t, i), indent, seen, depth)
  end
  local keys = sorted_keys(t, n)
  for _, k in ipairs(keys) do
    if #out >= MAX_ITEMS then break end
    out[#out + 1] = key_text(k) .. " = " .. render(rawget(t, k), indent, seen, depth)
  end
  local total = n + #keys
  if total > #out then out[#out + 1] = string.format("... (%d more)", total - #out) end
  return out
end

function render(v, indent, seen, depth)
  if type(v) ~= "table" then
    if depth > 0 and math.type(v) == "float" then return compact(v) end
    return scalar(v)
  end
  local name = type_name(v)
  local mt = getmetatable(v)
  if not name and type(mt) == "table" and rawget(mt, "__tostring") then
    return tostring(v)
  end
  if seen[v] then return "<cycle>" end
  local prefix = name and name or ""
  if depth >= MAX_DEPTH then return prefix .. "{...}" end
  if next(v) == nil then return prefix .. "{}" end
  seen[v] = true
  local inner = indent .. "  "
  local items = entries(v, inner, seen, depth + 1)
  seen[v] = nil
  local one = prefix .. "{ " .. table.concat(items, ", ") .. " }"
  if #one + #indent <= WIDTH and not one:find("\n", 1, true) then return one end
  return prefix .. "{\n" .. inner .. table.concat(items, ",\n" .. inner) .. ",\n" .. indent .. "}"
end

function M.pretty(v)
  return render(v, "", {}, 0)
end

return M
