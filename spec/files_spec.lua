-- Files are never waited on: a FIFO where a manifest or an executable
-- should be is refused at once, by bh.manifest.read and bh.sha256_file
-- alike (opening a FIFO without a writer used to hang the whole loop).
-- Each call runs in its own lua5.4 under timeout(1), so a hang fails the
-- spec instead of stalling it.
-- labels: manifest fsutil digest hasher
local H = require "helpers"

describe("files that are not regular", function()
  local dir
  before_each(function()
    dir = H.tmpdir()
    assert(os.execute("mkfifo " .. H.q(dir .. "/fifo")))
  end)
  after_each(function() H.rmdir(dir) end)

  -- Run code (with bh loaded and FIFO set to the FIFO's path) in lua5.4,
  -- at most 10 s; returns what it printed and its exit status.
  local function run(code)
    local prelude = 'local bh = require "bh"\nlocal FIFO = ' .. string.format("%q", dir .. "/fifo")
    H.spit(dir .. "/run.lua", prelude .. "\n" .. code)
    local cmd = "timeout 10 lua5.4 " .. H.q(dir .. "/run.lua") .. " 2>&1; echo \"exit $?\""
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    return out
  end

  it("bh.manifest.read refuses a FIFO with manifest_io", function()
    local out = run([[
      local m, err = bh.manifest.read(FIFO)
      print(m, err.code, err.stage, err.message)
    ]])
    assert.matches("^nil\tmanifest_io\tmanifest\t.*is a FIFO, not a regular file\nexit 0\n$", out)
  end)

  it("bh.sha256_file refuses a FIFO with exe_hash", function()
    local out = run([[
      local h, err = bh.sha256_file(FIFO)
      print(h, err.code, err.stage)
    ]])
    assert.matches("^nil\texe_hash\tverify_pid\nexit 0\n$", out)
  end)

  it("bh.manifest.read refuses a manifest swapped for a FIFO after find", function()
    local out = run([[
      local root = FIFO:gsub("/fifo$", "/root")
      os.execute("mkdir " .. root)
      local f = assert(io.open(root .. "/" .. bh.manifest.NAME, "wb"))
      f:write("\10\1s")
      f:close()
      local found = assert(bh.manifest.find(root))
      assert(os.rename(FIFO, found[1]))
      local m, err = bh.manifest.read(found[1])
      print(#found, m, err.code)
    ]])
    assert.matches("^1\tnil\tmanifest_io\nexit 0\n$", out)
  end)
end)
