#!/usr/bin/env lua5.4
-- Writes the seed corpora of the fuzz targets into spec/fuzz/corpus/<target>/
-- (run from anywhere: `lua5.4 spec/fuzz/make_corpus.lua`). The seeds are
-- committed; run this again only to change them. The protobuf here is written
-- by a few lines of Lua rather than by our C encoder on purpose: seeds made
-- by an independent writer also check that our decoders read what another
-- protobuf writer produces; the manifest and identity seeds also include
-- the bytes the real running-process wrote (copied from spec/fixtures). The
-- fixed nonce and identity match spec/fuzz/fuzzcheck.h.

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local dir = here .. "/corpus"
local fixtures = here .. "/../fixtures"

-- protobuf wire primitives ---------------------------------------------------
local function varint(v)
  local out = {}
  repeat
    local b = v & 0x7f
    v = v >> 7
    if v ~= 0 then b = b | 0x80 end
    out[#out + 1] = string.char(b)
  until v == 0
  return table.concat(out)
end
local function key(field, wt) return varint(field << 3 | wt) end
local function vfield(field, v) return key(field, 0) .. varint(v) end
local function bfield(field, s) return key(field, 2) .. varint(#s) .. s end
local function frame(body) return string.pack("<BI4", 1, #body) .. body end

-- messages --------------------------------------------------------------------
local NONCE = {}
for i = 0, 31 do NONCE[#NONCE + 1] = string.char(i) end
NONCE = table.concat(NONCE)
local REQUEST_ID = string.unpack("<i8", NONCE)
local SHA = {}
for i = 0, 31 do SHA[#SHA + 1] = string.char(0xa0 + i) end
SHA = table.concat(SHA)
local HASH = {}
for i = 0, 31 do HASH[#HASH + 1] = string.char(0xc0 + i) end
HASH = table.concat(HASH)
local TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

local function endpoint(ns, path) return bfield(1, ns) .. bfield(2, path) end

-- DaemonProcess; o overrides fields of the fixed identity (false = omit).
-- Generation 1 by default (tag 3); gen2 = true writes tags 8/9 instead
-- (alg and hash override them), trailer = true appends tag 3 after
-- everything, out of tag order, as a 4.10 daemon answers.
local function identity(o)
  o = o or {}
  local function pick(k, default)
    if o[k] == nil then return default end
    return o[k]
  end
  local parts = {}
  local pid = pick("pid", 4242)
  if pid then parts[#parts + 1] = vfield(1, pid) end
  local exe = pick("exe_path", "/usr/bin/daemon")
  if exe then parts[#parts + 1] = bfield(2, exe) end
  local sha = pick("sha", not o.gen2 and SHA)
  if sha then parts[#parts + 1] = bfield(3, sha) end
  local ep = pick("endpoint", endpoint("ns", "/tmp/d.sock"))
  if ep then parts[#parts + 1] = bfield(4, ep) end
  local started = pick("started", 1700000000000)
  if started then parts[#parts + 1] = vfield(5, started) end
  local boot = pick("boot_id", "6f1c1b9e-3f0a-4d52-9d1e-0c6a1f1f2b3c")
  if boot then parts[#parts + 1] = bfield(6, boot) end
  local idle = pick("idle", 30)
  if idle then parts[#parts + 1] = vfield(7, idle) end
  local alg = pick("alg", o.gen2 and "blake3")
  if alg then parts[#parts + 1] = bfield(8, alg) end
  local hash = pick("hash", o.gen2 and HASH)
  if hash then parts[#parts + 1] = bfield(9, hash) end
  if o.trailer then parts[#parts + 1] = bfield(3, SHA) end
  parts[#parts + 1] = o.extra or ""
  return table.concat(parts)
end

-- Frame; o gives the fields (absent = proto3 default, omitted).
local function frame_body(o)
  local parts = {}
  local function v(field, x) if x and x ~= 0 then parts[#parts + 1] = vfield(field, x) end end
  local function b(field, x) if x and #x > 0 then parts[#parts + 1] = bfield(field, x) end end
  v(1, o.version)
  v(2, o.kind)
  v(3, o.protocol)
  b(4, o.payload)
  v(5, o.request_id)
  v(6, o.encoding)
  v(7, o.deadline)
  b(8, o.traceparent)
  b(9, o.tracestate)
  parts[#parts + 1] = o.extra or ""
  return table.concat(parts)
end

local function request(o)
  local f = {version = 1, kind = 0, protocol = 0xB232, payload = NONCE,
             request_id = REQUEST_ID, traceparent = TRACEPARENT}
  for k, x in pairs(o or {}) do f[k] = x end
  return frame_body(f)
end

local function response(o)
  local f = {version = 1, kind = 1, protocol = 0xB232,
             payload = NONCE .. identity(o and o.identity),
             request_id = REQUEST_ID, traceparent = TRACEPARENT}
  for k, x in pairs(o or {}) do
    if k ~= "identity" then f[k] = x end
  end
  return frame_body(f)
end

-- writing -------------------------------------------------------------------
local function write(target, name, bytes)
  os.execute("mkdir -p '" .. dir .. "/" .. target .. "'")
  local f = assert(io.open(dir .. "/" .. target .. "/" .. name, "wb"))
  assert(f:write(bytes))
  assert(f:close())
end

local function fixture(name)
  local f = assert(io.open(fixtures .. "/" .. name, "rb"))
  local bytes = f:read("a")
  assert(f:close())
  return bytes
end

local UNKNOWN = vfield(50, 7) .. bfield(51, "future")

-- request ---------------------------------------------------------------------
write("request", "valid", request())
write("request", "valid_no_trace", request({traceparent = false}))
write("request", "valid_tracestate", request({tracestate = "k=v,x=y"}))
write("request", "valid_unknown_fields", request({extra = UNKNOWN}))
write("request", "zero_length", "")
write("request", "truncated", request():sub(1, 20))
write("request", "version_2", request({version = 2}))
write("request", "kind_response", request({kind = 1}))
write("request", "kind_cancel", request({kind = 3}))
write("request", "protocol_wrong", request({protocol = 0xB233}))
write("request", "encoding_zstd", request({encoding = 1}))
write("request", "payload_31", request({payload = NONCE:sub(1, 31)}))
write("request", "payload_33", request({payload = NONCE .. "x"}))
write("request", "payload_empty", request({payload = false}))
write("request", "trace_nul", request({traceparent = "00-\0-01"}))
write("request", "trace_bad_utf8", request({traceparent = "00-\xc3\x28-01"}))
write("request", "deadline_set", request({deadline = 1700000000000}))
-- over the pre-scan's limits (257 unknown fields, 1,025 fields in all)
write("request", "unknown_fields_257", request({extra = vfield(10, 0):rep(257)}))
write("request", "fields_1025", request({extra = vfield(1, 1):rep(1025 - 5)}))

-- response ------------------------------------------------------------------
write("response", "valid", response())
write("response", "valid_idle_absent", response({identity = {idle = false}}))
write("response", "valid_idle_zero", response({identity = {idle = 0}}))
write("response", "valid_unknown_identity_fields",
  response({identity = {extra = UNKNOWN}}))
write("response", "valid_unknown_frame_fields", response({extra = UNKNOWN}))
write("response", "valid_lexical_path", response({identity = {exe_path = "/usr//bin/./daemon/"}}))
write("response", "mismatch_pid", response({identity = {pid = 4243}}))
write("response", "mismatch_exe", response({identity = {exe_path = "/usr/bin/other"}}))
write("response", "mismatch_sha", response({identity = {sha = ("\1"):rep(32)}}))
write("response", "mismatch_boot", response({identity = {boot_id = "other"}}))
write("response", "mismatch_endpoint", response({identity = {endpoint = endpoint("ns", "/x")}}))
write("response", "mismatch_namespace",
  response({identity = {endpoint = endpoint("ns2", "/tmp/d.sock")}}))
write("response", "missing_endpoint", response({identity = {endpoint = false}}))
write("response", "sha_31", response({identity = {sha = SHA:sub(1, 31)}}))
write("response", "sha_absent", response({identity = {sha = false}}))
write("response", "exe_nul", response({identity = {exe_path = "/usr/bin/\0daemon"}}))
write("response", "boot_bad_utf8", response({identity = {boot_id = "\xff\xfe"}}))
write("response", "identity_truncated", response():sub(1, -5))
write("response", "zero_length", "")
write("response", "kind_request", response({kind = 0}))
write("response", "request_id_wrong", response({request_id = 1}))
write("response", "nonce_wrong", frame_body({version = 1, kind = 1, protocol = 0xB232,
  payload = ("\0"):rep(32) .. identity(), request_id = REQUEST_ID}))
write("response", "payload_31", response({payload = NONCE:sub(1, 31)}))
write("response", "payload_nonce_only", response({payload = NONCE}))
write("response", "encoding_lz4", response({encoding = 3}))
write("response", "valid_gen2_answer", response({identity = {gen2 = true, trailer = true}}))
write("response", "valid_gen2_only", response({identity = {gen2 = true}}))
write("response", "mismatch_hash",
  response({identity = {gen2 = true, hash = ("\2"):rep(32)}}))
write("response", "mismatch_both",
  response({identity = {gen2 = true, trailer = true, hash = ("\2"):rep(32), pid = 1}}))
write("response", "gen2_hash_31", response({identity = {gen2 = true, hash = HASH:sub(1, 31)}}))
write("response", "gen2_alg_sha1", response({identity = {gen2 = true, alg = "sha1"}}))
write("response", "gen2_hash_no_alg", response({identity = {gen2 = true, alg = false}}))
write("response", "unknown_fields_257", response({extra = vfield(10, 0):rep(257)}))
write("response", "identity_unknown_fields_257",
  response({identity = {extra = vfield(10, 0):rep(257)}}))

-- identity_pb -----------------------------------------------------------------
write("identity_pb", "valid", identity())
write("identity_pb", "idle_absent", identity({idle = false}))
write("identity_pb", "idle_zero", identity({idle = 0}))
write("identity_pb", "unknown_fields", identity({extra = UNKNOWN}))
write("identity_pb", "empty_strings", identity({exe_path = "", boot_id = "", endpoint = ""}))
write("identity_pb", "utf8_strings",
  identity({exe_path = "/opt/d\xc3\xa6mon/\xe2\x82\xac", boot_id = "\xf0\x9f\x98\x80"}))
write("identity_pb", "missing_endpoint", identity({endpoint = false}))
write("identity_pb", "sha_33", identity({sha = SHA .. "x"}))
write("identity_pb", "exe_nul", identity({exe_path = "a\0b"}))
write("identity_pb", "surrogate", identity({boot_id = "\xed\xa0\x80"}))
write("identity_pb", "overlong", identity({boot_id = "\xc0\xaf"}))
write("identity_pb", "truncated", identity():sub(1, 30))
write("identity_pb", "zero_length", "")
write("identity_pb", "pid_max", identity({pid = 0xffffffff, started = -1}))
write("identity_pb", "endpoint_unknown", identity({endpoint = endpoint("n", "/p") .. UNKNOWN}))
write("identity_pb", "gen2", identity({gen2 = true}))
write("identity_pb", "answer", identity({gen2 = true, trailer = true}))
write("identity_pb", "both_in_order", identity({gen2 = true, sha = SHA}))
write("identity_pb", "gen2_hash_31", identity({gen2 = true, hash = HASH:sub(1, 31)}))
write("identity_pb", "gen2_alg_sha1", identity({gen2 = true, alg = "sha1"}))
write("identity_pb", "gen2_alg_without_hash", identity({gen2 = true, hash = false}))
write("identity_pb", "gen2_hash_without_alg", identity({gen2 = true, alg = false}))
write("identity_pb", "no_digest", identity({sha = false}))
write("identity_pb", "unknown_fields_257", identity({extra = vfield(10, 0):rep(257)}))
write("identity_pb", "endpoint_unknown_257",
  identity({endpoint = endpoint("n", "/p") .. vfield(3, 0):rep(257)}))

-- identity_json ---------------------------------------------------------------
local HEX = SHA:gsub(".", function(c) return string.format("%02x", c:byte()) end)
local function json(o)
  o = o or {}
  local fields = {
    {"pid", o.pid or "4242"},
    {"exe_path", o.exe_path or '"/usr/bin/daemon"'},
    {"exe_sha256", o.sha or ('"' .. HEX .. '"')},
    {"boot_id", o.boot_id or '"6f1c1b9e-3f0a-4d52-9d1e-0c6a1f1f2b3c"'},
    {"ipc_endpoint", o.endpoint or '{"namespace_id":"ns","path":"/tmp/d.sock"}'},
    {"started_at_unix_ms", o.started or "1700000000000"},
    {"idle_timeout_secs", o.idle or "30"},
  }
  local parts = {}
  for _, f in ipairs(fields) do
    if f[2] ~= "OMIT" then parts[#parts + 1] = '"' .. f[1] .. '":' .. f[2] end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
write("identity_json", "valid", json())
write("identity_json", "idle_null", json({idle = "null"}))
write("identity_json", "idle_absent", json({idle = "OMIT"}))
write("identity_json", "idle_zero", json({idle = "0"}))
write("identity_json", "escapes", json({exe_path = '"/opt/d\\u00e6mon/\\ud83d\\ude00\\n"'}))
write("identity_json", "hex_upper", json({sha = '"' .. HEX:upper() .. '"'}))
write("identity_json", "hex_short", json({sha = '"' .. HEX:sub(1, 62) .. '"'}))
write("identity_json", "hex_bad", json({sha = '"' .. HEX:sub(1, 63) .. 'g"'}))
write("identity_json", "missing_pid", json({pid = "OMIT"}))
write("identity_json", "missing_endpoint", json({endpoint = "OMIT"}))
write("identity_json", "endpoint_not_object", json({endpoint = '"ns:/p"'}))
write("identity_json", "pid_string", json({pid = '"4242"'}))
write("identity_json", "pid_negative", json({pid = "-1"}))
write("identity_json", "pid_too_big", json({pid = "4294967296"}))
write("identity_json", "pid_float", json({pid = "4242.5"}))
write("identity_json", "started_huge", json({started = "18446744073709551616"}))
write("identity_json", "nul_escape", json({exe_path = '"/a\\u0000b"'}))
write("identity_json", "lone_surrogate", json({boot_id = '"\\ud800"'}))
write("identity_json", "extra_field", json():sub(1, -2) .. ',"extra":[1,{"a":null}]}')
write("identity_json", "duplicate_key", json():sub(1, -2) .. ',"pid":7}')
write("identity_json", "not_object", "[1,2,3]")
write("identity_json", "truncated", json():sub(1, 40))
write("identity_json", "empty", "")
write("identity_json", "trailing_garbage", json() .. " x")
local HASH_HEX = HASH:gsub(".", function(c) return string.format("%02x", c:byte()) end)
local GEN2 = ',"exe_hash_algorithm":"blake3","exe_hash":"' .. HASH_HEX .. '"}'
write("identity_json", "gen2", json({sha = "OMIT"}):sub(1, -2) .. GEN2)
write("identity_json", "both", json():sub(1, -2) .. GEN2)
write("identity_json", "gen2_alg_sha1",
  json({sha = "OMIT"}):sub(1, -2) .. GEN2:gsub("blake3", "sha1"))
write("identity_json", "gen2_hash_short",
  json({sha = "OMIT"}):sub(1, -2) .. ',"exe_hash_algorithm":"blake3","exe_hash":"'
  .. HASH_HEX:sub(1, 62) .. '"}')
write("identity_json", "gen2_hash_no_alg",
  json({sha = "OMIT"}):sub(1, -2) .. ',"exe_hash":"' .. HASH_HEX .. '"}')
write("identity_json", "no_digest", json({sha = "OMIT"}))
write("identity_json", "serde_rp41", fixture("rp41/identity.json"))
write("identity_json", "serde_rplatest", fixture("rplatest/identity.json"))
write("identity_json", "project_rplatest", fixture("rplatest/identity-project.json"))

-- frame_reader: byte 0 = (number of chunk-size bytes - 1), the sizes, the
-- stream (see fuzz_frame_reader.c)
local function chunked(sizes, stream)
  return string.char(#sizes - 1) .. string.char(table.unpack(sizes)) .. stream
end
write("frame_reader", "request_bytewise", chunked({1}, frame(request())))
write("frame_reader", "request_header_then_body", chunked({5, 255}, frame(request())))
write("frame_reader", "response_trickle", chunked({3, 0, 7, 1}, frame(response())))
write("frame_reader", "zero_length_body", chunked({2}, frame("")))
write("frame_reader", "header_4gib", chunked({1}, string.pack("<BI4", 1, 0xffffffff)))
write("frame_reader", "header_16mib_plus_1",
  chunked({4}, string.pack("<BI4", 1, 16 * 1024 * 1024 + 1)))
write("frame_reader", "header_16mib",
  chunked({200}, string.pack("<BI4", 1, 16 * 1024 * 1024) .. ("x"):rep(64)))
write("frame_reader", "version_2", chunked({1}, string.pack("<BI4", 2, 4) .. "abcd"))
write("frame_reader", "version_0_huge", chunked({9}, string.pack("<BI4", 0, 0xffffffff)))
write("frame_reader", "truncated_body", chunked({6}, string.pack("<BI4", 1, 100) .. ("y"):rep(10)))
write("frame_reader", "partial_header", chunked({1}, "\1\0\0"))
write("frame_reader", "trailing_bytes", chunked({13, 2}, frame(request()) .. frame(request())))
write("frame_reader", "empty", string.char(0))

-- manifest (CacheManifest) ----------------------------------------------------
-- Fields 50 and 51 are known in a CacheManifest (depends_on, provides), so
-- its unknown fields come from its reserved range instead; UNKNOWN there is
-- a wire type the schema does not allow (a decode error, as in prost).
local MUNKNOWN = vfield(150, 7) .. bfield(151, "future")
local function manifest(o)
  o = o or {}
  return bfield(1, "cache") .. bfield(2, "1.2.3") .. bfield(3, "1")
    .. vfield(4, 1700000000000) .. vfield(5, 1700000001000)
    .. (o.daemon == false and "" or bfield(20, o.daemon or identity()))
    .. bfield(40, "inst-1") .. (o.extra or "")
end
write("manifest", "valid", manifest())
write("manifest", "no_daemon", manifest({daemon = false}))
write("manifest", "unknown_top", manifest({extra = MUNKNOWN}))
write("manifest", "wrong_wire_type", manifest({extra = UNKNOWN}))
write("manifest", "unknown_daemon", manifest({daemon = identity({extra = UNKNOWN})}))
write("manifest", "daemon_missing_endpoint", manifest({daemon = identity({endpoint = false})}))
write("manifest", "daemon_sha_31", manifest({daemon = identity({sha = SHA:sub(1, 31)})}))
write("manifest", "bad_utf8", bfield(1, "\xff") .. bfield(40, "x"))
write("manifest", "truncated", manifest():sub(1, 50))
write("manifest", "empty", "")
write("manifest", "unknown_fields_4097", manifest({extra = vfield(6, 0):rep(4097)}))
write("manifest", "daemon_unknown_4097",
  manifest({daemon = identity({extra = vfield(10, 0):rep(4097)})}))
write("manifest", "field_out_of_order",
  bfield(40, "inst") .. bfield(1, "svc") .. MUNKNOWN .. bfield(2, "v"))
write("manifest", "daemon_gen2", manifest({daemon = identity({gen2 = true})}))
write("manifest", "daemon_both_generations",
  manifest({daemon = identity({gen2 = true, sha = SHA})}))
write("manifest", "daemon_gen2_alg_sha1",
  manifest({daemon = identity({gen2 = true, alg = "sha1"})}))
write("manifest", "schema_2", manifest({extra = vfield(100, 2)}))
write("manifest", "seal_short", manifest({extra = bfield(102, SHA:sub(1, 31))}))
write("manifest", "host", manifest({extra = bfield(103, bfield(1, "vm") .. bfield(2, "abc"))}))
-- sealed by the real implementation: generation 1 and 2, with and
-- without a daemon
write("manifest", "rp41_with_daemon", fixture("rp41/manifest-with-daemon.pb"))
write("manifest", "rp41_cleared", fixture("rp41/manifest-cleared.pb"))
write("manifest", "rplatest_with_daemon", fixture("rplatest/manifest-with-daemon.pb"))
write("manifest", "rplatest_cleared", fixture("rplatest/manifest-cleared.pb"))
