-- The helpers are real modules: from a plain lua5.4, require "bh.<name>"
-- works first (before require "bh"), returns the module table, and bh
-- carries the same functions. As a user has it: bh.so on LUA_CPATH, and
-- the source tree's lua/ (which scripts/env puts on LUA_PATH for the
-- specs) not on the path, or the file would be a second copy.
-- labels: helpers
local H = require "helpers"

describe("helper modules", function()
  for _, m in ipairs { { "retry", "retry" }, { "map", "map" }, { "every", "every" },
                       { "threshold", "threshold" }, { "pretty", "pretty" },
                       { "verdict", "verdict" }, { "metrics", "flush" } } do
    it("require 'bh." .. m[1] .. "' works from a fresh lua5.4", function()
      local dir = H.tmpdir()
      local ok, out, err = H.lua(dir, string.format([[
        package.path = package.path:gsub("[^;]*/lua/%%?%%.lua;", "")
        local mod = require "bh.%s"
        local bh = require "bh"
        local f = mod.%s
        assert(type(f) == "function", "no function %s")
        local carried = type(bh.%s) == "table" and bh.%s.%s or bh.%s
        assert(f == carried, "bh does not carry it")
        print("ok")
      ]], m[1], m[2], m[2], m[1], m[1], m[2], m[2]))
      H.rmdir(dir)
      assert.is_true(ok, err)
      assert.equal("ok\n", out)
    end)
  end
end)
