-- Benchmark responder as an operator writes one (run by bench_driver,
-- never a test): bh.respond serves this process's own identity at PATH,
-- writes that identity as JSON to ID_FILE, prints "ready" once it listens
-- and serves until SIGTERM. It prints nothing more: its stdout is a pipe
-- the driver closes.
-- Usage: bhprobe-lua lua_responder.lua PATH ID_FILE
local path, id_file = arg[1], arg[2]
assert(path and id_file, "usage: lua_responder.lua PATH ID_FILE")
local ep = {namespace_id = "bench", path = path}
local id = assert(bh.identity.current{endpoint = ep})
local r = assert(bh.respond(ep, id, {max_conns = 16384}))
local f = assert(io.open(id_file, "w"))
assert(f:write(bh.identity.to_json(id)))
assert(f:close())
print("ready")
io.stdout:flush()
r:wait()
