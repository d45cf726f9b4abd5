/* bh.identity.*, bh.boot_id, bh.sha256_file, bh.blake3_file, and the table <->
 * C conversions of lbh_identity.h. */
#include "lbh_identity.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "expect.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_err.h"
#include "lbh_open.h"
#include "proc.h"
#include "procfs.h"

#define IDBOX_MT "bh.identity_box"
#define EPBOX_MT "bh.endpoint_box"
/* An identity table converted: a reference (idref) to its bh_expected. */
#define REF_MT "bh.identity_ref"
/* A prepared identity: converted once, immutable, readable like the table
 * it came from; an idref too. */
#define PREPARED_MT "bh.identity"

/* Converted tables are kept, by the table (a weak key: an entry goes with
 * its table), with the values of the fields they were converted from:
 * the next conversion of the same table compares those instead of
 * converting again, and converts again when one changed, so a table
 * changed after a probe is never served stale. The comparison is Lua
 * (CACHE_LUA): a field read and compared by the VM costs a fraction of
 * one through the C API. The answer encodings of a conversion (expect.h)
 * are made when it is used a second time: a table probed once does not
 * pay for them. */
static const char cache_key = 'c'; /* registry: {lookup_id, lookup_ep,
                                      keep_id, keep_ep} */
enum { LOOKUP_ID = 1, LOOKUP_EP, KEEP_ID, KEEP_EP };

/* lookup_*(t) → the box kept for t, or nil (none, or a field changed);
 * keep_*(t, box) keeps box for t with t's values. The fields are read
 * as the conversion reads them (metamethods included), so whatever would
 * convert differently is seen. Given the real type and setmetatable (a
 * script may replace the globals). */
static const char CACHE_LUA[] =
    "local type, setmetatable = ...\n"
    "local ids = setmetatable({}, {__mode = 'k'})\n"
    "local eps = setmetatable({}, {__mode = 'k'})\n"
    "local function lookup_id(t)\n"
    "  local k = ids[t]\n"
    "  if k == nil then return nil end\n"
    "  local e = t.ipc_endpoint\n"
    "  if t.pid == k[2] and t.exe_path == k[3] and t.exe_sha256 == k[4]\n"
    "      and t.exe_hash_algorithm == k[5] and t.exe_hash == k[6]\n"
    "      and t.boot_id == k[7] and t.started_at_unix_ms == k[8]\n"
    "      and t.idle_timeout_secs == k[9] and e == k[10]\n"
    "      and (not k[13] or e.namespace_id == k[11] and e.path == k[12]) "
    "then\n"
    "    return k[1]\n"
    "  end\n"
    "end\n"
    "local function lookup_ep(t)\n"
    "  local k = eps[t]\n"
    "  if k ~= nil and t.namespace_id == k[2] and t.path == k[3] then\n"
    "    return k[1]\n"
    "  end\n"
    "end\n"
    "local function keep_id(t, box)\n"
    "  local e = t.ipc_endpoint\n"
    "  local k = {box, t.pid, t.exe_path, t.exe_sha256, t.exe_hash_algorithm,\n"
    "    t.exe_hash, t.boot_id, t.started_at_unix_ms, t.idle_timeout_secs, e}\n"
    "  if type(e) == 'table' then\n"
    "    k[11], k[12], k[13] = e.namespace_id, e.path, true\n"
    "  end\n"
    "  ids[t] = k\n"
    "end\n"
    "local function keep_ep(t, box)\n"
    "  eps[t] = {box, t.namespace_id, t.path}\n"
    "end\n"
    "return {lookup_id, lookup_ep, keep_id, keep_ep}\n";

/* Call the cache's function fn with the value at t (and box, when not 0):
 * lookups leave their result on the stack. */
static void cache_call(lua_State *L, int fn, int t, int box) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
  lua_rawgeti(L, -1, fn);
  lua_remove(L, -2);
  lua_pushvalue(L, t);
  if (box != 0) lua_pushvalue(L, box);
  lua_call(L, box != 0 ? 2 : 1, box != 0 ? 0 : 1);
}

/* A converted identity (REF_MT, PREPARED_MT). scratch is what a table is
 * read into: the collector frees a half-read one when reading raises. */
typedef struct idref {
  bh_expected *e;
  bh_identity scratch;
} idref;

/* ---- Lua tables from C ----------------------------------------------- */

void lbh_push_endpoint(lua_State *L, const bh_endpoint *ep) {
  lua_createtable(L, 0, 2);
  lua_pushstring(L, ep->namespace_id ? ep->namespace_id : "");
  lua_setfield(L, -2, "namespace_id");
  lua_pushstring(L, ep->path ? ep->path : "");
  lua_setfield(L, -2, "path");
}

/* Set t[name] (t on top) to the digest as 64 lowercase hex digits. */
static void set_hex(lua_State *L, const char *name, const uint8_t *d) {
  char hex[BH_DIGEST_HEX_LEN + 1];
  bh_hex_encode(d, BH_DIGEST_LEN, hex);
  lua_pushstring(L, hex);
  lua_setfield(L, -2, name);
}

void lbh_push_identity(lua_State *L, const bh_identity *id) {
  lua_createtable(L, 0, 9);
  lua_pushinteger(L, (lua_Integer)id->pid);
  lua_setfield(L, -2, "pid");
  lua_pushstring(L, id->exe_path ? id->exe_path : "");
  lua_setfield(L, -2, "exe_path");
  if (id->digests.algs & BH_ALG_SHA256)
    set_hex(L, "exe_sha256", id->digests.sha256);
  if (id->digests.algs & BH_ALG_BLAKE3) {
    lua_pushliteral(L, BH_BLAKE3_NAME);
    lua_setfield(L, -2, "exe_hash_algorithm");
    set_hex(L, "exe_hash", id->digests.blake3);
  }
  lua_pushstring(L, id->boot_id ? id->boot_id : "");
  lua_setfield(L, -2, "boot_id");
  if (bh_identity_has_endpoint(id)) { /* else of_pid(pid): none */
    lbh_push_endpoint(L, &id->endpoint);
    lua_setfield(L, -2, "ipc_endpoint");
  }
  lua_pushinteger(L, (lua_Integer)id->started_at_unix_ms);
  lua_setfield(L, -2, "started_at_unix_ms");
  if (id->has_idle_timeout) {
    lua_pushinteger(L, (lua_Integer)id->idle_timeout_secs);
    lua_setfield(L, -2, "idle_timeout_secs");
  }
}

/* ---- C from Lua tables ----------------------------------------------- */

/* __gc of an identity box. */
static int idbox_gc(lua_State *L) {
  bh_identity_clear(lua_touserdata(L, 1));
  return 0;
}

/* __gc of an idref (a converted or prepared identity). */
static int idref_gc(lua_State *L) {
  idref *r = lua_touserdata(L, 1);
  bh_identity_clear(&r->scratch);
  bh_expected_unref(r->e);
  r->e = NULL;
  return 0;
}

static int epbox_gc(lua_State *L) {
  bh_endpoint_clear(lbh_arg_udata(L, 1, NULL, EPBOX_MT));
  return 0;
}

/* Raise "<prefix>.<sub>.<field>: <expected>" (empty prefix, NULL sub and
 * their dots left out). The table's name comes in two parts so that the
 * name of a nested table (identity.ipc_endpoint) is only put together
 * when something is wrong, not on every conversion. */
static int sub_field_error(lua_State *L, int arg, const char *prefix,
                           const char *sub, const char *field,
                           const char *expected) {
  return lbh_arg_fail(L, arg, NULL, "%s%s%s%s%s: %s", prefix,
                      *prefix && sub ? "." : "", sub ? sub : "",
                      *prefix || sub ? "." : "", field, expected);
}

static int field_error(lua_State *L, int arg, const char *prefix,
                       const char *field, const char *expected) {
  return sub_field_error(L, arg, prefix, NULL, field, expected);
}

/* The string field t[name] (t at absolute index t) of the table named
 * prefix[.sub]; NULL when nil and optional. Strings with NUL bytes are
 * refused. Leaves the stack as is (the string stays reachable through
 * t). */
static const char *get_sub_string(lua_State *L, int t, int arg,
                                  const char *prefix, const char *sub,
                                  const char *name, bool required,
                                  size_t *len) {
  int type = lua_getfield(L, t, name);
  if (type == LUA_TNIL && !required) {
    lua_pop(L, 1);
    return NULL;
  }
  if (type != LUA_TSTRING)
    sub_field_error(
        L, arg, prefix, sub, name,
        lua_pushfstring(L, "expected a string, got %s", luaL_typename(L, -1)));
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  if (strlen(s) != n)
    sub_field_error(L, arg, prefix, sub, name, "contains a NUL byte");
  lua_pop(L, 1);
  if (len) *len = n;
  return s;
}

static const char *get_string(lua_State *L, int t, int arg, const char *prefix,
                              const char *name, bool required, size_t *len) {
  return get_sub_string(L, t, arg, prefix, NULL, name, required, len);
}

/* The integer field t[name] in [0, max]; *present false when nil and
 * optional (then *out is 0). */
static uint64_t get_uint(lua_State *L, int t, int arg, const char *prefix,
                         const char *name, uint64_t max, bool required,
                         bool *present) {
  int type = lua_getfield(L, t, name);
  if (present) *present = type != LUA_TNIL;
  if (type == LUA_TNIL && !required) {
    lua_pop(L, 1);
    return 0;
  }
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (type != LUA_TNUMBER || !isnum || v < 0 || (uint64_t)v > max)
    field_error(
        L, arg, prefix, name,
        lua_pushfstring(L, "expected an integer in [0, %I]", (lua_Integer)max));
  lua_pop(L, 1);
  return (uint64_t)v;
}

/* The value at idx must be a table, named prefix[.sub]. */
static void check_table(lua_State *L, int idx, int arg, const char *prefix,
                        const char *sub) {
  if (lua_type(L, idx) == LUA_TTABLE) return;
  lbh_arg_fail(L, arg, NULL, "%s%s%s%sexpected a table, got %s", prefix,
               *prefix && sub ? "." : "", sub ? sub : "",
               *prefix || sub ? ": " : "", luaL_typename(L, idx));
}

/* Set *ep (owned by the caller's box, which frees it) from the endpoint
 * table at idx (absolute), named prefix[.sub] in errors. */
static void read_endpoint(lua_State *L, int idx, int arg, const char *prefix,
                          const char *sub, bh_endpoint *ep) {
  check_table(L, idx, arg, prefix, sub);
  const char *ns =
      get_sub_string(L, idx, arg, prefix, sub, "namespace_id", false, NULL);
  const char *path =
      get_sub_string(L, idx, arg, prefix, sub, "path", true, NULL);
  bh_err err;
  if (bh_endpoint_set(ep, ns ? ns : "", path, &err) != BH_OK)
    luaL_error(L, "%s", err.message);
}

/* The endpoint box of an endpoint table (kept by the cache). */
bh_endpoint *lbh_check_endpoint(lua_State *L, int idx, int arg,
                                const char *prefix) {
  idx = lua_absindex(L, idx);
  bool table = lua_type(L, idx) == LUA_TTABLE;
  if (table) {
    cache_call(L, LOOKUP_EP, idx, 0);
    if (lua_type(L, -1) == LUA_TUSERDATA) return lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  bh_endpoint *ep = lua_newuserdatauv(L, sizeof *ep, 0);
  memset(ep, 0, sizeof *ep);
  luaL_setmetatable(L, EPBOX_MT);
  read_endpoint(L, idx, arg, prefix, NULL, ep);
  cache_call(L, KEEP_EP, idx, lua_gettop(L));
  return ep;
}

/* An optional digest field: 64 hex digits; true when present. */
static bool get_hex(lua_State *L, int t, int arg, const char *prefix,
                    const char *name, uint8_t out[BH_DIGEST_LEN]) {
  size_t n;
  const char *hex = get_string(L, t, arg, prefix, name, false, &n);
  if (hex == NULL) return false;
  if (!bh_hex_decode(hex, n, out, BH_DIGEST_LEN))
    field_error(L, arg, prefix, name, "expected 64 hex digits");
  return true;
}

/* exe_sha256, and exe_hash_algorithm ("blake3") with exe_hash: at least
 * one digest (design §1.9). */
static void get_digests(lua_State *L, int t, int arg, const char *prefix,
                        bh_digests *d) {
  memset(d, 0, sizeof *d);
  if (get_hex(L, t, arg, prefix, "exe_sha256", d->sha256))
    d->algs |= BH_ALG_SHA256;
  const char *alg =
      get_string(L, t, arg, prefix, "exe_hash_algorithm", false, NULL);
  bool has_hash = get_hex(L, t, arg, prefix, "exe_hash", d->blake3);
  if (alg != NULL && strcmp(alg, BH_BLAKE3_NAME) != 0)
    field_error(L, arg, prefix, "exe_hash_algorithm",
                lua_pushfstring(L, "expected \"blake3\", got \"%s\"", alg));
  if ((alg != NULL) != has_hash)
    field_error(L, arg, prefix, has_hash ? "exe_hash_algorithm" : "exe_hash",
                "expected both exe_hash_algorithm and exe_hash, or neither");
  if (has_hash) d->algs |= BH_ALG_BLAKE3;
  if (d->algs == 0)
    field_error(L, arg, prefix, "exe_sha256",
                "expected an executable digest (exe_sha256, or "
                "exe_hash_algorithm and exe_hash)");
}

/* The fields of an identity that are not strings. */
static void get_identity_numbers(lua_State *L, int t, int arg,
                                 const char *prefix, bh_identity *id) {
  id->pid =
      (uint32_t)get_uint(L, t, arg, prefix, "pid", UINT32_MAX, true, NULL);
  id->started_at_unix_ms =
      get_uint(L, t, arg, prefix, "started_at_unix_ms", INT64_MAX, false, NULL);
  id->idle_timeout_secs =
      (uint32_t)get_uint(L, t, arg, prefix, "idle_timeout_secs", UINT32_MAX,
                         false, &id->has_idle_timeout);
}

/* An identity without ipc_endpoint (bh.identity.of_pid(pid)) where one is
 * needed: say which field is missing and where one comes from, rather
 * than "expected a table, got nil". */
static int missing_endpoint(lua_State *L, int arg, const char *prefix) {
  return field_error(L, arg, prefix, "ipc_endpoint",
                     "missing, and this needs one; an identity from "
                     "bh.identity.of_pid without an endpoint has none");
}

/* Read the identity table at idx into *id (freed by the caller's box if
 * this raises). */
static void read_identity(lua_State *L, int idx, int arg, const char *prefix,
                          bool need_endpoint, bh_identity *id) {
  int top = lua_gettop(L);
  get_identity_numbers(L, idx, arg, prefix, id);
  const char *exe = get_string(L, idx, arg, prefix, "exe_path", true, NULL);
  get_digests(L, idx, arg, prefix, &id->digests);
  const char *boot = get_string(L, idx, arg, prefix, "boot_id", true, NULL);
  if (lua_getfield(L, idx, "ipc_endpoint") != LUA_TNIL)
    read_endpoint(L, lua_gettop(L), arg, prefix, "ipc_endpoint", &id->endpoint);
  else if (need_endpoint)
    missing_endpoint(L, arg, prefix);
  id->exe_path = strdup(exe);
  id->boot_id = strdup(boot);
  if (id->exe_path == NULL || id->boot_id == NULL)
    luaL_error(L, "out of memory");
  lua_settop(L, top);
}

/* Convert the table at idx: an idref pushed. Kept in the cache when the
 * table and its ipc_endpoint table have no metatable. */
static idref *convert_identity(lua_State *L, int idx, int arg,
                               const char *prefix, bool need_endpoint) {
  idref *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->e = NULL;
  bh_identity_init(&r->scratch);
  luaL_setmetatable(L, REF_MT);
  int box = lua_gettop(L);
  read_identity(L, idx, arg, prefix, need_endpoint, &r->scratch);
  bh_err err;
  if ((r->e = bh_expected_take(&r->scratch, &err)) == NULL)
    luaL_error(L, "%s", err.message);
  cache_call(L, KEEP_ID, idx, box);
  return r;
}

/* The identity at idx as an expected identity (a box pushed): a prepared
 * one, a table's kept conversion, or the table converted now. */
static bh_expected *check_expected(lua_State *L, int idx, int arg,
                                   const char *prefix, bool need_endpoint) {
  idx = lua_absindex(L, idx);
  idref *r = luaL_testudata(L, idx, PREPARED_MT);
  if (r != NULL) {
    if (need_endpoint && !bh_identity_has_endpoint(bh_expected_identity(r->e)))
      missing_endpoint(L, arg, prefix);
    lua_pushvalue(L, idx);
    return r->e;
  }
  check_table(L, idx, arg, prefix, NULL);
  cache_call(L, LOOKUP_ID, idx, 0);
  if (lua_type(L, -1) == LUA_TUSERDATA) {
    r = lua_touserdata(L, -1);
    if (need_endpoint && !bh_identity_has_endpoint(bh_expected_identity(r->e)))
      missing_endpoint(L, arg, prefix);
    bh_expected_encode(r->e); /* used again: worth its encodings */
    return r->e;
  }
  lua_pop(L, 1);
  return convert_identity(L, idx, arg, prefix, need_endpoint)->e;
}

bh_expected *lbh_check_expected(lua_State *L, int idx, int arg,
                                const char *prefix) {
  return check_expected(L, idx, arg, prefix, true);
}

const bh_identity *lbh_check_identity(lua_State *L, int idx, int arg,
                                      const char *prefix) {
  return bh_expected_identity(check_expected(L, idx, arg, prefix, true));
}

const bh_identity *lbh_check_identity_any(lua_State *L, int idx, int arg,
                                          const char *prefix) {
  return bh_expected_identity(check_expected(L, idx, arg, prefix, false));
}

bool lbh_is_prepared_identity(lua_State *L, int idx) {
  return luaL_testudata(L, idx, PREPARED_MT) != NULL;
}

/* ---- bh.identity.* ----------------------------------------------------- */

/* Push the identity at *id as a table, or nil, err. */
static int identity_result(lua_State *L, bh_status st, bh_identity *id,
                           const bh_err *err) {
  if (st != BH_OK) return lbh_fail(L, err);
  lbh_push_identity(L, id);
  return 1;
}

/* A scratch identity freed by the collector if a push fails. */
static bh_identity *new_box(lua_State *L) {
  bh_identity *id = lua_newuserdatauv(L, sizeof *id, 0);
  bh_identity_init(id);
  luaL_setmetatable(L, IDBOX_MT);
  return id;
}

/* identity.current{endpoint = {...}, idle_timeout_secs = n} → identity of
 * this process, or nil, err. */
static int l_current(lua_State *L) {
  static const char *const keys[] = {"endpoint", "idle_timeout_secs", NULL};
  lbh_arg_checktype(L, 1, "bh.identity.current", LUA_TTABLE);
  lbh_opts_check(L, 1, "bh.identity.current", keys);
  lua_getfield(L, 1, "endpoint");
  bh_endpoint *ep = lbh_check_endpoint(L, -1, 1, "endpoint");
  bool has_idle;
  uint32_t idle = (uint32_t)get_uint(L, 1, 1, "", "idle_timeout_secs",
                                     UINT32_MAX, false, &has_idle);
  bh_identity *id = new_box(L);
  bh_err err;
  bh_status st = bh_identity_current(ep, has_idle ? &idle : NULL, id, &err);
  return identity_result(L, st, id, &err);
}

/* identity.of_pid(pid [, endpoint]) → identity of a live process, or
 * nil, err (stage verify_pid). Without an endpoint the identity has no
 * ipc_endpoint ("who is this pid?"); what needs one says so. */
static int l_of_pid(lua_State *L) {
  lua_Integer pid =
      lbh_arg_integer(L, 1, "bh.identity.of_pid", "pid", 0, UINT32_MAX);
  lua_settop(L, 2); /* the endpoint box goes above the arguments */
  bh_endpoint *ep =
      lua_isnil(L, 2) ? NULL : lbh_check_endpoint(L, 2, 2, "endpoint");
  bh_identity *id = new_box(L);
  bh_err err;
  bh_status st = bh_identity_of_pid((uint32_t)pid, ep, id, &err);
  return identity_result(L, st, id, &err);
}

/* identity.prepare(id) → a prepared identity: the table converted once,
 * accepted wherever an identity table is (bh.probe converts nothing per
 * call then). A prepared identity is returned as it is. */
static int l_prepare(lua_State *L) {
  if (luaL_testudata(L, 1, PREPARED_MT) != NULL) {
    lua_settop(L, 1);
    return 1;
  }
  bh_expected *e = check_expected(L, 1, 1, "identity", false);
  idref *r = lua_newuserdatauv(L, sizeof *r, 0);
  bh_identity_init(&r->scratch);
  r->e = bh_expected_ref(e);
  luaL_setmetatable(L, PREPARED_MT);
  bh_expected_encode(e); /* made to be probed often */
  return 1;
}

/* The fields a prepared identity can have (lbh_class_fields): those of
 * lbh_push_identity, some absent in a given identity. */
static const char *const prepared_fields[] = {"pid",
                                              "exe_path",
                                              "exe_sha256",
                                              "exe_hash_algorithm",
                                              "exe_hash",
                                              "boot_id",
                                              "ipc_endpoint",
                                              "started_at_unix_ms",
                                              "idle_timeout_secs",
                                              NULL};

/* prepared[k]: the field as the identity's table has it (a fresh table for
 * ipc_endpoint, so that nothing read can be changed in place). */
static int prepared_index(lua_State *L) {
  const idref *r = lbh_arg_udata(L, 1, NULL, PREPARED_MT);
  lbh_push_identity(L, bh_expected_identity(r->e));
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  return 1;
}

static int prepared_newindex(lua_State *L) {
  return luaL_error(L,
                    "a prepared identity is read-only (prepare a changed "
                    "table instead)");
}

static int prepared_tostring(lua_State *L) {
  const idref *r = lbh_arg_udata(L, 1, NULL, PREPARED_MT);
  const bh_identity *id = bh_expected_identity(r->e);
  lua_pushfstring(L, "bh.identity(pid %I, %s)", (lua_Integer)id->pid,
                  id->exe_path != NULL ? id->exe_path : "");
  return 1;
}

/* identity.to_json(id) → compact JSON text (design §1.7). */
static int l_to_json(lua_State *L) {
  const bh_identity *id = lbh_check_identity(L, 1, 1, "identity");
  char *json = bh_identity_to_json(id);
  if (json == NULL) return luaL_error(L, "out of memory");
  lua_pushstring(L, json);
  free(json);
  return 1;
}

/* identity.from_json(text) → identity, or nil, err (invalid_json,
 * invalid_identity with err.field). */
static int l_from_json(lua_State *L) {
  size_t len;
  const char *text = lbh_arg_string(L, 1, NULL, &len);
  bh_identity *id = new_box(L);
  bh_err err;
  bh_status st = bh_identity_from_json(text, len, id, &err);
  return identity_result(L, st, id, &err);
}

/* identity.encode(id [, {generation = 0|1|2}]) → DaemonProcess protobuf
 * bytes: what a daemon answers a probe with (0, the default), or a
 * generation-1 or -2 record. nil, err (invalid_identity) when the
 * identity lacks that generation's digest. */
static int l_encode(lua_State *L) {
  static const char *const keys[] = {"generation", NULL};
  lua_settop(L, 2);
  lbh_opts_check(L, 2, "bh.identity.encode", keys);
  lua_Integer gen =
      lbh_opt_integer(L, 2, "bh.identity.encode", "generation", 0, 0, 2);
  const bh_identity *id = lbh_check_identity(L, 1, 1, "identity");
  static const bh_id_form forms[] = {BH_FORM_ANSWER, BH_FORM_GEN1,
                                     BH_FORM_GEN2};
  uint8_t *buf = NULL;
  size_t len = 0;
  bh_err err;
  if (bh_identity_encode(id, forms[gen], &buf, &len, &err) != BH_OK)
    return lbh_fail(L, &err);
  lua_pushlstring(L, (const char *)buf, len);
  free(buf);
  return 1;
}

/* identity.decode(bytes) → identity, or nil, err (decode_identity,
 * missing_endpoint, invalid_sha256_length). */
static int l_decode(lua_State *L) {
  size_t len;
  const char *buf = lbh_arg_string(L, 1, NULL, &len);
  bh_identity *id = new_box(L);
  bh_err err;
  bh_status st = bh_identity_decode((const uint8_t *)buf, len, id, &err);
  return identity_result(L, st, id, &err);
}

/* identity.verify_pid(id) → true, or nil, err (stage verify_pid). */
static int l_verify_pid(lua_State *L) {
  const bh_identity *id = lbh_check_identity_any(L, 1, 1, "identity");
  bh_err err;
  if (bh_proc_verify(id, NULL, NULL, &err) != BH_OK) return lbh_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* bh.boot_id() → this machine's boot id, or nil, err. */
static int l_boot_id(lua_State *L) {
  char buf[128];
  bh_err err;
  if (bh_boot_id(buf, sizeof buf, &err) != BH_OK) return lbh_fail(L, &err);
  lua_pushstring(L, buf);
  return 1;
}

/* The digest of alg of the file at arg 1 as hex, or nil, err (exe_hash). */
static int digest_file(lua_State *L, unsigned alg) {
  const char *path = lbh_arg_string(L, 1, NULL, NULL);
  bh_digests d;
  char hex[BH_DIGEST_HEX_LEN + 1];
  bh_err err;
  if (bh_digest_file(path, alg, &d, &err) != BH_OK) return lbh_fail(L, &err);
  bh_hex_encode(bh_digest_of(&d, alg), BH_DIGEST_LEN, hex);
  lua_pushstring(L, hex);
  return 1;
}

/* bh.sha256_file(path) → 64 lowercase hex digits, or nil, err (exe_hash). */
static int l_sha256_file(lua_State *L) {
  return digest_file(L, BH_ALG_SHA256);
}

/* bh.blake3_file(path) → 64 lowercase hex digits (BLAKE3-256), or nil, err
 * (exe_hash). */
static int l_blake3_file(lua_State *L) {
  return digest_file(L, BH_ALG_BLAKE3);
}

static const luaL_Reg identity_funcs[] = {
    {"current", l_current},
    {"of_pid", l_of_pid},
    {"to_json", l_to_json},
    {"from_json", l_from_json},
    {"encode", l_encode},
    {"decode", l_decode},
    {"verify_pid", l_verify_pid},
    {"prepare", l_prepare},
    {NULL, NULL},
};

static const luaL_Reg prepared_meta[] = {
    {"__gc", idref_gc},
    {"__index", prepared_index},
    {"__newindex", prepared_newindex},
    {"__tostring", prepared_tostring},
    {NULL, NULL},
};

/* registry[&cache_key] = CACHE_LUA's functions. */
static void new_cache(lua_State *L) {
  if (luaL_loadbuffer(L, CACHE_LUA, sizeof CACHE_LUA - 1, "=bh.identity") !=
      LUA_OK)
    lua_error(L);
  lua_getglobal(L, "type");
  lua_getglobal(L, "setmetatable");
  lua_call(L, 2, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
}

void lbh_identity_open(lua_State *L) {
  static const luaL_Reg idbox_meta[] = {{"__gc", idbox_gc}, {NULL, NULL}};
  static const luaL_Reg epbox_meta[] = {{"__gc", epbox_gc}, {NULL, NULL}};
  static const luaL_Reg idref_meta[] = {{"__gc", idref_gc}, {NULL, NULL}};
  lbh_class(L, IDBOX_MT, idbox_meta, NULL, NULL);
  lbh_class(L, EPBOX_MT, epbox_meta, NULL, NULL);
  lbh_class(L, REF_MT, idref_meta, NULL, NULL);
  new_cache(L);
  lbh_class(L, PREPARED_MT, prepared_meta, NULL, NULL);
  lbh_class_fields(L, PREPARED_MT, prepared_fields);
  luaL_newlib(L, identity_funcs);
  /* package.loaded["bh.identity"] lets error messages name the functions
   * ("bad argument #1 to 'bh.identity.to_json'"). */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "bh.identity");
  lua_pop(L, 1);
  lua_setfield(L, -2, "identity");
  lua_pushcfunction(L, l_boot_id);
  lua_setfield(L, -2, "boot_id");
  lua_pushcfunction(L, l_sha256_file);
  lua_setfield(L, -2, "sha256_file");
  lua_pushcfunction(L, l_blake3_file);
  lua_setfield(L, -2, "blake3_file");
}
