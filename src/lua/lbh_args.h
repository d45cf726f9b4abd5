/* The one checker of arguments and option tables of every bh function,
 * written in C and used by the Lua helpers too (through bh._check_opts
 * and bh._check_arg, lbh_check.c). design §2: an unknown key raises
 * naming it, every number has a stated range. Errors name the caller's
 * file and line (the first frame that is neither a C function nor one of
 * the embedded bh helpers, so a helper's own lines never show), then the
 * function: "bh.probe: unknown option 'tmeout'", "bh.probe: option
 * 'timeout' must be a number in (0, 86400], got 1e+06"; positional
 * arguments keep Lua's wording with the full name: "bad argument #1 to
 * 'bh.sleep' (seconds must be a number in [0, 1e+09], got -1)".
 *
 *   static const char *const keys[] = {"timeout", "verify_pid", NULL};
 *   lbh_opts_check(L, 3, "bh.probe", keys);          // nil/none is fine
 *   double t = lbh_opt_number(L, 3, "bh.probe", "timeout", 0.5, 0, false,
 *                             86400);
 *
 * The lo bound of lbh_opt_number is exclusive or inclusive as lo_open
 * says (timeouts are > 0, delays >= 0); hi is inclusive. NaN is never in
 * range. */
#ifndef LBH_ARGS_H
#define LBH_ARGS_H

#include <lua.h>
#include <stdbool.h>

/* The value at idx must be nil/none or a table whose keys are all strings
 * in keys (NULL-terminated). */
void lbh_opts_check(lua_State *L, int idx, const char *fn,
                    const char *const keys[]);

/* The same for a table that also holds a list (bh.exec{"prog", "arg",
 * timeout = 5}): integer keys 1..#t are allowed too. */
void lbh_opts_check_with_list(lua_State *L, int idx, const char *fn,
                              const char *const keys[]);

/* The same with the keys of the table at spec as the allowed keys
 * (bh._check_opts's spec of descriptors). */
void lbh_opts_check_spec(lua_State *L, int idx, const char *fn, int spec);

/* Push opts[key] and return true if present (idx a table, not nil);
 * otherwise push nothing and return false. */
bool lbh_opt_push(lua_State *L, int idx, const char *key);

double lbh_opt_number(lua_State *L, int idx, const char *fn, const char *key,
                      double def, double lo, bool lo_open, double hi);
lua_Integer lbh_opt_integer(lua_State *L, int idx, const char *fn,
                            const char *key, lua_Integer def, lua_Integer lo,
                            lua_Integer hi);
bool lbh_opt_boolean(lua_State *L, int idx, const char *fn, const char *key,
                     bool def);
/* A string option (NULL def allowed); the string stays valid while the
 * options table holds it. */
const char *lbh_opt_string(lua_State *L, int idx, const char *fn,
                           const char *key, const char *def);

/* Raise "<fn>: <message>" at the caller's line (printf-like, as
 * lua_pushfstring). Never returns. */
int lbh_arg_error(lua_State *L, const char *fn, const char *fmt, ...);

/* Push "file:line: " of the caller (see above), or "" when no Lua code
 * called. */
void lbh_where(lua_State *L);

/* Record the full name of every C function in the module table at mod
 * (and its sub-tables: bh.identity.*), for lbh_arg_fail's fn NULL; and
 * of fn under name (a C function run by the binding itself). */
void lbh_args_name_functions(lua_State *L, int mod);
void lbh_args_name(lua_State *L, lua_CFunction fn, const char *name);

/* ---- positional arguments --------------------------------------------- */

/* Raise "bad argument #arg to '<fn>' (<message>)" at the caller's line.
 * For a method (fn contains ':') self is not counted, as in lauxlib:
 * arg 1 is "calling '<fn>' on bad self". fn NULL: the full name of the
 * running C function as lbh_args_name_functions recorded it ("bh.probe",
 * "bh.identity.to_json"), else what Lua calls it. Never returns. */
int lbh_arg_fail(lua_State *L, int arg, const char *fn, const char *fmt, ...);
/* "(<expected> expected, got <type>)"; never returns. */
int lbh_arg_type_error(lua_State *L, int arg, const char *fn,
                       const char *expected);
void lbh_arg_checktype(lua_State *L, int arg, const char *fn, int type);
/* A number in the range (as lbh_opt_number); name says what it is in the
 * message ("seconds must be a number in [0, 1e+09], got -1"). The opt
 * form returns def for none/nil. */
double lbh_arg_number(lua_State *L, int arg, const char *fn, const char *name,
                      double lo, bool lo_open, double hi);
double lbh_arg_optnumber(lua_State *L, int arg, const char *fn,
                         const char *name, double def, double lo, bool lo_open,
                         double hi);
lua_Integer lbh_arg_integer(lua_State *L, int arg, const char *fn,
                            const char *name, lua_Integer lo, lua_Integer hi);
lua_Integer lbh_arg_optinteger(lua_State *L, int arg, const char *fn,
                               const char *name, lua_Integer def,
                               lua_Integer lo, lua_Integer hi);
/* A string (a number is turned into one in place, as lauxlib does); len
 * may be NULL. The opt form returns def for none/nil. */
const char *lbh_arg_string(lua_State *L, int arg, const char *fn, size_t *len);
const char *lbh_arg_optstring(lua_State *L, int arg, const char *fn,
                              const char *def, size_t *len);
/* A table. */
void lbh_arg_table(lua_State *L, int arg, const char *fn);
/* Any value, nil included, but not none ("value expected"). */
void lbh_arg_any(lua_State *L, int arg, const char *fn);
/* A string among values (NULL-terminated), or def (may be NULL: required)
 * for none/nil; returns its index in values. The message lists them:
 * "bad argument #1 to 'bh.log.level' ("debug", "info" or "error"
 * expected, got "x")". */
int lbh_arg_option(lua_State *L, int arg, const char *fn, const char *def,
                   const char *const values[]);
/* The full userdata of class tname (lbh_class) at arg: "<tname>
 * expected, got <type>". */
void *lbh_arg_udata(lua_State *L, int arg, const char *fn, const char *tname);

/* The text of a list of allowed strings, pushed: "\"a\", \"b\" or
 * \"c\"" (n of them). For messages of the checker's form. */
const char *lbh_push_values_text(lua_State *L, const char *const values[],
                                 size_t n);
/* The string at idx quoted for a message, its first 80 bytes only
 * ("\"abc...\""), pushed. */
const char *lbh_push_quoted(lua_State *L, int idx);

#endif
