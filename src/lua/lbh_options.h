/* What the C side keeps of the bh module in its Lua state: the module
 * table itself (lbh.h: lbh_push_module), bh.options (what the host's
 * command line set), and the functions of the Lua helpers that C calls,
 * handed over once by the helper that defines them (bh.metrics, when it
 * loads, calls bh._bind_metrics{...}). C never looks a Lua function up
 * by name in the module: a script that replaces bh.metrics.render
 * changes nothing the HTTP endpoint serves. */
#ifndef LBH_OPTIONS_H
#define LBH_OPTIONS_H

#include <lua.h>
#include <stdbool.h>

/* Keep the table at idx as the module (luaopen_bh, once it is built). */
void lbh_set_module(lua_State *L, int idx);

/* bh.options[name] as a string, or NULL (not a string, or no module).
 * The string stays valid while bh.options holds it. */
const char *lbh_option_string(lua_State *L, const char *name);
/* bh.options[name] = value (value NULL: nothing is set). */
void lbh_option_set(lua_State *L, const char *name, const char *value);

/* The functions bh.metrics hands over (bh._bind_metrics). */
typedef enum lbh_bound {
  LBH_METRICS_RENDER,       /* render(openmetrics) -> the text of /metrics */
  LBH_METRICS_RENDER_SD,    /* render_sd() -> the text of /sd */
  LBH_METRICS_RENDER_INDEX, /* render_index() -> the text of / */
  LBH_METRICS_PROBE_RUNNER, /* the task of one /probe (lbh_http.c) */
  LBH_METRICS_FLUSH,        /* flush() -> true | nil, err (--metrics) */
  LBH_BOUND_COUNT
} lbh_bound;

/* Push the function handed over as which and return true; false with
 * nothing pushed when none was. */
bool lbh_push_bound(lua_State *L, lbh_bound which);

#endif
