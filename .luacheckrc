-- luacheck configuration: bhprobe-lua preloads the `bh` module as a global.
std = "lua54"
read_globals = { "bh" }
max_line_length = 100
files["spec"] = { std = "+busted" }
