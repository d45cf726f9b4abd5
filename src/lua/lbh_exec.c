/* bh.exec{argv..., timeout = s, env = {NAME = value | false},
 * max_output = bytes} -> {status, signal, stdout, stderr,
 * stdout_truncated, stderr_truncated, timed_out, elapsed, pid} | nil, err.
 * A yielding primitive on the task template of lbh_task.h over exec.h:
 * the task sleeps while the child runs; cancelling the task kills the
 * child's process group. */
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "lbh_args.h"
#include "lbh_err.h"
#include "lbh_open.h"
#include "lbh_task.h"

#define MAX_TIMEOUT 86400.0          /* a day */
#define MAX_OUTPUT ((size_t)1 << 30) /* per stream: 1 GiB */

typedef struct exec_op {
  lbh_task *task;
  bh_exec *exec;
  bh_exec_result *res; /* valid only during on_done */
} exec_op;

static void set_stream(lua_State *L, const bh_exec_stream *s, const char *name,
                       const char *flag) {
  lua_pushlstring(L, s->data, s->len);
  lua_setfield(L, -2, name);
  lua_pushboolean(L, s->truncated);
  lua_setfield(L, -2, flag);
}

/* Push the result table (called by lbh_task_complete, protected). */
static int push_result(lua_State *L, void *ud) {
  const bh_exec_result *r = ((exec_op *)ud)->res;
  lua_createtable(L, 0, 9);
  if (r->signal == 0) {
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
  } else {
    lua_pushinteger(L, r->signal);
    lua_setfield(L, -2, "signal");
  }
  set_stream(L, &r->out[BH_EXEC_STDOUT], "stdout", "stdout_truncated");
  set_stream(L, &r->out[BH_EXEC_STDERR], "stderr", "stderr_truncated");
  lua_pushboolean(L, r->timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushnumber(L, r->elapsed);
  lua_setfield(L, -2, "elapsed");
  lua_pushinteger(L, r->pid);
  lua_setfield(L, -2, "pid");
  return 1;
}

/* The child exited and was reaped: resume the task with the result. */
static void on_done(bh_exec_result *res, void *ctx) {
  exec_op *op = ctx;
  op->res = res;
  lbh_task_complete(op->task, push_result, op);
  free(op);
}

/* The task is cancelled: kill the group, reap, never call on_done. */
static void exec_cancel(void *ud) {
  exec_op *op = ud;
  bh_exec_cancel(op->exec);
  free(op);
}

/* argv from t[1..n] onto a NULL-terminated array (strings borrowed from
 * the table, which is on the stack for the whole call). */
static const char **check_argv(lua_State *L, int t) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, t);
  if (n < 1) lbh_arg_fail(L, 1, "bh.exec", "expected the program as t[1]");
  const char **argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *argv, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, t, i) != LUA_TSTRING)
      lbh_arg_fail(L, 1, "bh.exec", "t[%d] must be a string, got %s", (int)i,
                   luaL_typename(L, -1));
    argv[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  argv[n] = NULL;
  return argv;
}

/* env = {NAME = "value" | false} as "NAME=value" / "NAME" entries. */
static const char **check_env(lua_State *L, int t) {
  if (lua_getfield(L, t, "env") == LUA_TNIL) return NULL;
  int env = lua_gettop(L);
  if (!lua_istable(L, env))
    lbh_arg_error(L, "bh.exec", "option 'env' must be a table, got %s",
                  luaL_typename(L, env));
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, env) != 0) {
    lua_pop(L, 1);
    n++;
  }
  lua_createtable(L, (int)n, 0); /* env + 1: keeps the built strings */
  const char **out = lua_newuserdatauv(L, (n + 1) * sizeof *out, 0);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, env) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING || strchr(lua_tostring(L, -2), '='))
      lbh_arg_error(L, "bh.exec", "env keys must be names without '='");
    if (lua_type(L, -1) == LUA_TSTRING)
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
    else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
      lua_pushstring(L, lua_tostring(L, -2));
    else
      lbh_arg_error(L, "bh.exec", "env.%s must be a string or false, got %s",
                    lua_tostring(L, -2), luaL_typename(L, -1));
    out[k++] = lua_tostring(L, -1);
    lua_rawseti(L, env + 1, (lua_Integer)k); /* keep it alive */
    lua_pop(L, 1);
  }
  out[k] = NULL;
  return out;
}

/* bh.exec{...}: check, spawn, yield (see the file comment). */
static int l_exec(lua_State *L) {
  static const char *const keys[] = {"timeout", "env", "max_output", NULL};
  const char *fn = "bh.exec";
  lbh_arg_checktype(L, 1, fn, LUA_TTABLE);
  lua_settop(L, 1);
  lbh_opts_check_with_list(L, 1, fn, keys);
  bh_exec_opts opts = {0};
  /* Any positive duration; beyond BH_EXEC_MAX_TIMEOUT (math.huge too)
   * means no timeout. */
  opts.timeout = lbh_opt_number(L, 1, fn, "timeout", 0, 0, true, HUGE_VAL);
  opts.max_output = (size_t)lbh_opt_integer(
      L, 1, fn, "max_output", (lua_Integer)BH_EXEC_DEFAULT_MAX_OUTPUT, 1,
      (lua_Integer)MAX_OUTPUT);
  opts.argv = check_argv(L, 1);
  opts.env = check_env(L, 1);
  lbh_task *t = lbh_task_check(L, fn);
  exec_op *op = calloc(1, sizeof *op);
  if (op == NULL) return luaL_error(L, "bh.exec: out of memory");
  op->task = t;
  bh_err err;
  op->exec = bh_exec_start(lbh_task_base(t), &opts, on_done, op, &err);
  if (op->exec == NULL) {
    free(op);
    return lbh_fail(L, &err);
  }
  lbh_task_set_pending(t, exec_cancel, op);
  return lbh_task_yield(L, 0, NULL);
}

void lbh_exec_open(lua_State *L) {
  lua_pushcfunction(L, l_exec);
  lua_setfield(L, -2, "exec");
}
