-- Running the real bhprobe-lua binary in a fresh temporary directory (mode
-- 0755) per test, for the specs of the host as a service (signals_spec,
-- startup_spec, sinks_spec, log_spec, http_spec, local_user_spec). Every
-- wait is bounded.
--   local R = require("hostrun")()
--   local tmp
--   before_each(function() tmp = R.enter() end)   -- a fresh directory
--   after_each(R.leave)                             -- removed
--   local p = R.start("-e ...")      -- in tmp; p.kill("TERM"); p.status()
local H = require "helpers"
local q, slurp = H.q, H.slurp

local BIN = assert(os.getenv("BH_BIN"), "BH_BIN must name the bhprobe-lua binary")

return function()
  local R = { BIN = BIN }
  local tmp

  -- A fresh directory (0755) for the next test; returns it.
  function R.enter()
    tmp = H.tmpdir()
    R.sh("chmod 755 " .. q(tmp))
    return tmp
  end

  -- Removes the test's directory.
  function R.leave() H.rmdir(tmp) end

  function R.sh(cmd)
    local ok, _, code = os.execute(cmd)
    return ok, code
  end
  local sh = R.sh

  function R.sleep(s) os.execute("sleep " .. s) end
  local sleep = R.sleep

  -- Waits (up to 20 s) for pattern in the file name of tmp; returns the
  -- capture.
  function R.poll_file(name, pattern)
    for _ = 1, 400 do
      local m = (slurp(tmp .. "/" .. name) or ""):match(pattern)
      if m then return m end
      sleep(0.05)
    end
    error("timed out waiting for " .. pattern .. " in " .. name .. "; stderr: "
      .. tostring(slurp(tmp .. "/err")))
  end

  -- Waits (up to 20 s) until a file named name exists in tmp.
  function R.wait_exists(name)
    for _ = 1, 400 do
      if H.exists(tmp .. "/" .. name) then return end
      sleep(0.05)
    end
    error("timed out waiting for " .. name)
  end

  -- Runs `prefix BIN args` in the background in tmp (SIGINT/SIGTERM at
  -- their default disposition); returns {pid(), kill(sig), status()};
  -- status() waits at most 30 s, then kills the process and fails.
  function R.start(args, prefix)
    sh(string.format("cd %s && (env --default-signal=INT,TERM %s %s %s <%s >out 2>err & "
      .. "echo $! >pid; wait $!; echo $? >rc) >/dev/null 2>&1 &", q(tmp), prefix or "",
      q(BIN), args, "/dev/null"))
    local p = {}
    function p.pid() return R.poll_file("pid", "(%d+)") end
    function p.kill(sig) sh("kill -" .. sig .. " " .. p.pid()) end
    function p.status()
      for _ = 1, 600 do
        local s = slurp(tmp .. "/rc")
        if s and s:match("%d+") then return tonumber(s:match("%d+")) end
        sleep(0.05)
      end
      p.kill("KILL")
      error("process did not exit")
    end
    return p
  end

  -- Runs BIN args in tmp to the end; returns exit status, stdout, stderr.
  function R.run(args, prefix)
    local _, code = sh(string.format("cd %s && %s %s %s </dev/null >out 2>err", q(tmp),
      prefix or "", q(BIN), args))
    return code, slurp(tmp .. "/out"), slurp(tmp .. "/err")
  end

  function R.is_root() return sh("test \"$(id -u)\" = 0") == true end

  -- Runs a shell command as nobody (the other user of the attacks).
  function R.as_nobody(cmd)
    return sh("setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c " .. q(cmd))
  end

  function R.mode_of(path)
    local p = assert(io.popen("stat -c %a " .. q(path)))
    local m = p:read("l")
    p:close()
    return m
  end

  return R
end
