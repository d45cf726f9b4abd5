/* Identities and endpoints between Lua tables and the C core (design §1.7,
 * §2): the conversions every binding file uses. A malformed table passed by
 * the caller is misuse: the check functions raise, naming the argument and
 * the field ("bad argument #2 to 'bh.probe' (identity.exe_sha256: expected 64
 * hex digits)"). */
#ifndef LBH_IDENTITY_H
#define LBH_IDENTITY_H

#include <lua.h>
#include <stdbool.h>

#include "identity.h"

/* Push {pid=, exe_path=, exe_sha256=hex, boot_id=, ipc_endpoint={...}
 * (nil when absent), started_at_unix_ms=, idle_timeout_secs=(nil when
 * absent)}. */
void lbh_push_identity(lua_State *L, const bh_identity *id);
/* Push {namespace_id=, path=}. */
void lbh_push_endpoint(lua_State *L, const bh_endpoint *ep);

/* Read the identity at idx: a table, or a prepared identity
 * (bh.identity.prepare), which costs no conversion. The result lives in a
 * box pushed on the stack (a userdata whose __gc frees it; for a prepared
 * identity, the identity itself): valid while the box is reachable; copy
 * it (bh_identity_copy) to keep it. A table is converted once and its
 * conversion kept while the table lives and its fields keep their
 * values. arg and prefix name the argument in
 * error messages (prefix e.g. "identity"). */
const bh_identity *lbh_check_identity(lua_State *L, int idx, int arg,
                                      const char *prefix);
/* The same for a use that needs no endpoint (verify_pid, prepare): an
 * identity without ipc_endpoint (bh.identity.of_pid(pid)) is accepted.
 * lbh_check_identity refuses one, naming the missing ipc_endpoint. */
const bh_identity *lbh_check_identity_any(lua_State *L, int idx, int arg,
                                          const char *prefix);
/* The same as an expected identity for a probe (expect.h): a reference
 * kept by the box pushed on the stack; take one (bh_expected_ref) to keep
 * it. A table converted before and unchanged since costs no conversion
 * (the binding keeps conversions by table), and from its second use on
 * an answer to it needs no decoding. */
struct bh_expected;
struct bh_expected *lbh_check_expected(lua_State *L, int idx, int arg,
                                       const char *prefix);
/* Is the value at idx a prepared identity (bh.identity.prepare)? */
bool lbh_is_prepared_identity(lua_State *L, int idx);
/* Same for an endpoint table ({namespace_id=string (default ""),
 * path=string}). */
bh_endpoint *lbh_check_endpoint(lua_State *L, int idx, int arg,
                                const char *prefix);

#endif
