-- Hashing cannot be monopolised by one user's records (docs/hostile-peers.md,
-- "A local user against the service"): user nobody runs processes of huge
-- (sparse) and of many distinct small executables and records them under
-- the scanned root, before (in scan order) the records of root's own
-- daemons. Root's daemons must still be verified in every run of the
-- shipped policy: the hasher serves owners in turn, a slice at a time,
-- and an executable over 1 GiB is refused at once (exe_too_large).
-- BH_HASH_FLOOD_RUNS sets how many one-shot runs are measured (default 2;
-- each starts with an empty digest cache, as a cron or Nagios check does).
-- labels: hasher digest probe policy program
local H = require "helpers"
local bh = require "bh"

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")
local ROOT = assert(io.popen("pwd")):read("l")
local q, slurp = H.q, H.slurp

local function sh(cmd)
  local ok = H.system(cmd)
  assert(ok, "failed: " .. cmd)
end

-- A record of pid running exe (no digest computed here: the 1 GiB ones
-- would take the test a second each; a wrong one is as good, the service
-- hashes the executable either way).
local function record(dir, pid, exe)
  sh("mkdir -p " .. q(dir))
  assert(bh.manifest.write(dir .. "/.running-process-manifest.pb", {
    service_name = "flood", current_daemon = {
      pid = pid, exe_path = exe, boot_id = bh.boot_id(),
      exe_hash_algorithm = "blake3", exe_hash = string.rep("0", 64),
      ipc_endpoint = { namespace_id = "flood", path = dir .. ".sock" } } }))
end

describe("the digest hasher under one user's records", function()
  local tmp
  before_each(function()
    tmp = H.tmpdir()
    sh("chmod 755 " .. q(tmp))
  end)
  after_each(function()
    for pid in (slurp(tmp .. "/nb/pids") or ""):gmatch("%S+ (%d+)") do
      H.system("kill -KILL " .. pid .. " 2>/dev/null")
    end
    H.rmdir(tmp)
  end)

  it("verifies root's daemons every run while nobody's executables wait #root", function()
    local runs = tonumber(os.getenv("BH_HASH_FLOOD_RUNS")) or 2
    local small = tonumber(os.getenv("BH_HASH_FLOOD_SMALL")) or 50
    -- nobody's executables: two of 1 GiB (the largest hashed: about a
    -- second each), one of 4 GiB (refused), `small` distinct copies
    local nb = tmp .. "/nb"
    sh("mkdir " .. q(nb) .. " && cp /bin/sleep " .. q(nb .. "/big1") .. " && truncate -s 1G "
      .. q(nb .. "/big1") .. " && cp " .. q(nb .. "/big1") .. " " .. q(nb .. "/big2")
      .. " && printf 2 >>" .. q(nb .. "/big2") .. " && cp /bin/sleep " .. q(nb .. "/huge")
      .. " && truncate -s 4G " .. q(nb .. "/huge"))
    sh(string.format("i=1; while [ $i -le %d ]; do cp /bin/sleep %s/s$i && printf $i >>%s/s$i; "
      .. "i=$((i+1)); done && chown -R nobody %s", small, q(nb), q(nb), q(nb)))
    local names = { "big1", "big2", "huge" }
    for i = 1, small do names[#names + 1] = "s" .. i end
    sh(string.format("cd %s && env -u LD_PRELOAD setpriv --reuid=nobody --regid=nogroup "
      .. "--clear-groups sh -c %s", q(nb), q("for n in " .. table.concat(names, " ")
      .. "; do ./$n 1000 </dev/null >/dev/null 2>&1 & echo $n $! >>pids; done")))
    local recs = tmp .. "/recs"
    for line in assert(slurp(nb .. "/pids")):gmatch("[^\n]+") do
      local name, pid = line:match("(%S+) (%d+)")
      record(recs .. "/a-" .. name, tonumber(pid), nb .. "/" .. name)
    end
    -- root's daemons, recorded after nobody's in scan order
    local daemons = {}
    for i = 1, 10 do
      local d = H.start_daemon(bh, tmp, "d" .. i)
      daemons[i] = d
      sh("mkdir -p " .. q(recs .. "/z-d" .. i))
      assert(bh.manifest.write(recs .. "/z-d" .. i .. "/.running-process-manifest.pb",
        { service_name = "daemon" .. i, current_daemon = d.identity }))
    end
    local verified_runs, lines, huge = 0, {}, {}
    for run = 1, runs do
      local report = tmp .. "/r" .. run .. ".jsonl"
      H.system(string.format("%s --report %s %s %s >/dev/null 2>%s", q(BIN), q(report),
        q(ROOT .. "/etc/policies/manifests.lua"), q(recs), q(tmp .. "/err")))
      local ok = 0
      for line in (slurp(report) or ""):gmatch("[^\n]+") do
        if line:match('"service":"daemon%d+"') and line:match('"verdict":"verified"') then
          ok = ok + 1
        end
        if line:match("/a%-huge/") then huge[run] = line end
      end
      lines[run] = ok
      if ok == 10 then verified_runs = verified_runs + 1 end
    end
    for _, d in ipairs(daemons) do d.kill() end
    print(string.format("\n  %d runs, root's daemons verified per run: %s; the 4 GiB one: %s",
      runs, table.concat(lines, ", "), (huge[1] or ""):match('"code":"([^"]*)"')))
    assert.equal(runs, verified_runs)
    for run = 1, runs do
      assert.matches('"code":"exe_too_large"', huge[run] or "no line for the 4 GiB executable")
      assert.matches("is 4%.0 GiB, over the 1 GiB hashing limit", huge[run])
    end
  end)
end)
