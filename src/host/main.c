/* bhprobe-lua: the host. Shaped like Lua 5.4's lua.c: main() creates the
 * state and runs pmain under lua_pcall; pmain parses the command line (the
 * lua conventions plus -h/--help, --version, --report, --metrics,
 * --listen, --name), opens the libraries and the bh module, and runs the whole
 * command line as ONE run (run_command_line): lua/host/session.lua is its main
 * task and runs each step (-e, -l, the script or stdin) as a task it waits for,
 * then, with -i, the prompt (lua/host/prompt.lua). So yielding functions
 * (bh.probe, bh.sleep) work at top level, and what one step opens (a
 * responder, a background task) is still there for the next and at the
 * prompt. With -i the run is a session (lbh_session): it ends with the
 * prompt, and ^C interrupts the line it waits for.
 *
 * Before anything runs, the signal handlers are installed (SIGHUP never
 * kills us, even before the first report line) and the service options
 * are checked: the --report file opened, the first --metrics file
 * written, the --listen socket bound; then systemd hears READY=1.
 *
 * Exit status (design §3): 0 when the script returns, os.exit(n) -> n,
 * 1 when a chunk raises or a task failed unobserved, 2 for a usage error
 * or a service target that cannot be opened, 128 + signal when
 * SIGINT/SIGTERM stopped the loop (141 when stdout was closed under
 * bh.report, as SIGPIPE ends other tools). A stop is quiet, except that
 * SIGINT says where it interrupted Lua code, as lua.c does. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "fdreserve.h"
#include "lbh.h"
#include "lbh_embed.h"
#include "log.h"
#include "proc.h"
#include "prompt.h"
#include "wire.h"

#ifndef BH_VERSION
#error "BH_VERSION comes from the build (the core target defines it)"
#endif

#define PROGNAME "bhprobe-lua"
#define EXIT_ERROR 1
#define EXIT_USAGE 2
#ifndef LUA_IGMARK
#define LUA_IGMARK "-" /* as in lua.c: "-l g-v2" sets global g */
#endif
#ifndef LUA_INIT_VAR
#define LUA_INIT_VAR "LUA_INIT" /* as in lua.c; LUA_INIT_5_4 comes first */
#endif

/* Bits of host_opts.flags: which options were seen. */
enum {
  HAS_E = 1 << 0,
  HAS_I = 1 << 1,
  HAS_V = 1 << 2,
  HAS_HELP = 1 << 3,
  HAS_VERSION = 1 << 4,
  HAS_NOENV = 1 << 5 /* -E */
};

/* What collectargs found on the command line. */
typedef struct host_opts {
  int script;          /* argv index of the script; 0 when none */
  unsigned flags;      /* HAS_* */
  const char *report;  /* --report FILE, or NULL */
  const char *metrics; /* --metrics FILE, or NULL */
  const char *listen;  /* --listen HOST:PORT, or NULL */
  const char *name;    /* --name NAME, or NULL */
  const char *usage;   /* usage error format (%s: the option), or NULL */
} host_opts;

/* The host's state, shared by pmain and main (through a light userdata). */
typedef struct host {
  int argc;
  char **argv;
  int exit_status; /* set by whatever decides how the process ends */
} host;

/* Prefix of error messages; NULL inside the REPL, as in lua.c. */
static const char *progname = PROGNAME;

/* Prints "progname: msg" on stderr (an error line for the journal). */
static void l_message(const char *pname, const char *msg) {
  bh_log_named(BH_LOG_ERR, pname, msg);
}

/* Is msg an error a stop signal caused, to be left unsaid? A stop is
 * quiet (systemd's SIGTERM, a closed stdout), but SIGINT names where it
 * interrupted Lua code ("file:line: interrupted" and the traceback). */
static bool quiet_stop(const char *msg) {
  int sig = lbh_stop_signal();
  return sig != 0 &&
         (sig != SIGINT || msg == NULL || strcmp(msg, "interrupted") == 0);
}

/* Prints a usage error and the one-line hint; the caller exits 2. */
static void usage_error(const char *msg) {
  l_message(PROGNAME, msg);
  (void)fputs("try '" PROGNAME " --help'\n", stderr);
  (void)fflush(stderr);
}

/* The version line, for -v, --version and the interactive banner. */
static void print_version(void) {
  printf("%s %s (running-process %s backend-handle probe) on %s\n", PROGNAME,
         BH_VERSION, BH_RUNNING_PROCESS_VERSIONS, LUA_RELEASE);
  (void)fflush(stdout);
}

/* The --help text: every option and environment variable, within 80
 * columns (the man page is written from it). */
static void print_help(void) {
  (void)fputs(
      "usage: " PROGNAME
      " [options] [script [args...]]\n"
      "Runs a Lua 5.4 probe policy; the script runs as the main task of\n"
      "bh.run, so bh.probe and bh.sleep work at top level. Options and\n"
      "environment as in lua5.4, plus the service options.\n"
      "Options:\n"
      "  -e CODE          run the Lua string CODE\n"
      "  -l NAME          require NAME into global NAME (-l g=mod: into g)\n"
      "  -i               interactive prompt after the script; each line\n"
      "                   runs as a task, expressions print their values\n"
      "  -v               print the version line\n"
      "  -E               ignore LUA_INIT, LUA_PATH and LUA_CPATH\n"
      "  -W               turn Lua warnings on\n"
      "  -h, --help       print this help and exit\n"
      "  --version        print the version and exit\n"
      "  --report FILE    bh.report writes JSON lines to FILE, not stdout\n"
      "                   (-, /dev/stdout, /proc/self/fd/1: stdout)\n"
      "  --metrics FILE   write metrics to FILE (Prometheus textfile)\n"
      "  --listen ADDR    serve /metrics on HOST:PORT (PORT: on 127.0.0.1)\n"
      "  --name NAME      this instance's name, the label policy=\"NAME\" of\n"
      "                   every series (default: the script's base name)\n"
      "  --               stop handling options\n"
      "  -                run stdin as the script, stop handling options\n"
      "Without a script, -e or -v: the script is stdin, or the prompt when\n"
      "stdin is a terminal.\n"
      "Environment (-E ignores the LUA_ ones):\n"
      "  LUA_INIT_5_4, LUA_INIT  run before -e, -l and the script: Lua code,\n"
      "                   or @FILE to run FILE (LUA_INIT_5_4 wins)\n"
      "  LUA_PATH_5_4, LUA_PATH, LUA_CPATH_5_4, LUA_CPATH  where require\n"
      "                   looks for modules, as in lua5.4\n"
      "  RUNNING_PROCESS_MANIFEST_DIR, XDG_DATA_HOME  the central registry\n"
      "  HOME             the prompt keeps its history in ~/.bhprobe_history\n"
      "  BH_IO            uring or epoll: the I/O path of probes and\n"
      "                   responders (empty: io_uring where the kernel\n"
      "                   allows it, else epoll)\n"
      "At the prompt, the globals _PROMPT and _PROMPT2 (when not nil)\n"
      "replace '> ' and '>> '; Tab completes names, fields and methods.\n"
      "Exit status: 0 when the script returns (os.exit(n): n), 1 when it\n"
      "raises, 2 for a usage error or a --report/--metrics/--listen target\n"
      "that cannot be opened, 130/143 when stopped by SIGINT/SIGTERM.\n",
      stdout);
  (void)fflush(stdout);
}

/* Message handler of the run: adds a traceback to the error message unless
 * it already carries one (bh.run re-raises a task's error together with
 * the task's own traceback, which is the one that names the script) or a
 * signal stopped the run (bh.run then raises a bare "interrupted"). */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) { /* not a string: use __tostring, or say its type */
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg =
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  /* A signal's plain "interrupted" happened in no Lua code of ours. */
  if (strstr(msg, "\nstack traceback:") != NULL || lbh_stop_signal() != 0)
    return 1;
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Prints the error message on top of the stack, if status says error. */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    l_message(progname, lbh_error_text(L, -1));
    lua_pop(L, 1);
  }
  return status;
}

/* When SIGINT/SIGTERM stopped the loop, records the conventional 128 +
 * signal exit status and says so. */
static bool stopped_by_signal(host *h) {
  int sig = lbh_stop_signal();
  if (sig == 0) return false;
  h->exit_status = 128 + sig;
  return true;
}

/* The long options that take a value, either as "--opt=VALUE" or as the
 * next argument, and the field of host_opts it goes to: one table for
 * collectargs and push_steps (which skips the values). */
static const struct {
  const char *name;
  size_t field;
} value_options[] = {
    {"--report", offsetof(host_opts, report)},
    {"--metrics", offsetof(host_opts, metrics)},
    {"--listen", offsetof(host_opts, listen)},
    {"--name", offsetof(host_opts, name)},
};

/* The index in value_options of the option named by the first n
 * characters of a, or -1. */
static int value_option(const char *a, size_t n) {
  for (size_t k = 0; k < sizeof value_options / sizeof *value_options; k++)
    if (strlen(value_options[k].name) == n &&
        strncmp(a, value_options[k].name, n) == 0)
      return (int)k;
  return -1;
}

/* Is name fit for --name: a label value (policy="NAME") of at most
 * NAME_MAX_LEN bytes, without control characters (the exposition format
 * would carry them, but no operator means one)? */
#define NAME_MAX_LEN 128
#define NAME_MAX_TEXT "128"
static bool name_ok(const char *name) {
  size_t n = strlen(name);
  if (n > NAME_MAX_LEN) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) return false;
  return true;
}

/* The default --name into buf: the script's base name without ".lua"
 * ("manifests" for etc/policies/manifests.lua), or the program's name
 * when there is no script file (-e, stdin). */
static const char *default_name(char **argv, const host_opts *o, char *buf,
                                size_t cap) {
  const char *script = o->script > 0 ? argv[o->script] : "-";
  const char *base = strrchr(script, '/');
  base = base != NULL ? base + 1 : script;
  size_t n = strlen(base);
  if (n > 4 && strcmp(base + n - 4, ".lua") == 0) n -= 4;
  if (strcmp(script, "-") == 0 || n == 0 || n >= cap) return PROGNAME;
  memcpy(buf, base, n);
  buf[n] = '\0';
  return name_ok(buf) ? buf : PROGNAME;
}

/* Parses a long option at argv[*i]. */
static void long_option(char **argv, int *i, host_opts *o) {
  const char *a = argv[*i];
  size_t n = strcspn(a, "=");
  if (strcmp(a, "--help") == 0) {
    o->flags |= HAS_HELP;
    return;
  }
  if (strcmp(a, "--version") == 0) {
    o->flags |= HAS_VERSION;
    return;
  }
  int k = value_option(a, n);
  if (k < 0) { /* a policy's option given before its script, perhaps */
    o->usage =
        "unrecognized option '%s'; if it is the policy's, put it "
        "after the script: " PROGNAME " [options] SCRIPT [its options]";
    return;
  }
  const char **dest = (const char **)((char *)o + value_options[k].field);
  if (a[n] == '=') {
    *dest = a + n + 1;
  } else if (argv[*i + 1] != NULL) {
    *dest = argv[++*i];
  } else {
    o->usage = "'%s' needs argument";
  }
  if (*dest != NULL && **dest == '\0') o->usage = "'%s' needs argument";
  if (o->usage == NULL && o->name != NULL && !name_ok(o->name))
    o->usage = "'--name' takes a NAME of at most " NAME_MAX_TEXT
               " bytes without control characters";
}

/* Parses one short option at argv[*i] (lua.c's rules: -e/-l take the rest
 * of the word or the next argument, which must not look like an option). */
static void short_option(char **argv, int *i, host_opts *o) {
  const char *a = argv[*i];
  switch (a[1]) {
    case 'i':
      o->flags |= HAS_I | HAS_V; /* -i implies -v */
      break;
    case 'v':
      o->flags |= HAS_V;
      break;
    case 'h':
      o->flags |= HAS_HELP;
      break;
    case 'W':
    case 'E':
      if (a[1] == 'E') o->flags |= HAS_NOENV;
      break;
    case 'e':
    case 'l':
      if (a[1] == 'e') o->flags |= HAS_E;
      if (a[2] == '\0') {
        if (argv[*i + 1] == NULL || argv[*i + 1][0] == '-') {
          o->usage = "'%s' needs argument";
          return;
        }
        ++*i;
      }
      return;
    default:
      o->usage = "unrecognized option '%s'";
      return;
  }
  if (a[2] != '\0') o->usage = "unrecognized option '%s'";
}

/* Reads the options up to the script name. On a usage error, o->usage is
 * set and o->script is the index of the offending argument. */
static void collectargs(char **argv, host_opts *o) {
  int i;
  memset(o, 0, sizeof *o);
  for (i = 1; argv[i] != NULL; i++) {
    o->script = i;
    if (argv[i][0] != '-') return;  /* the script */
    if (argv[i][1] == '\0') return; /* "-": the script is stdin */
    if (strcmp(argv[i], "--") == 0) {
      o->script = argv[i + 1] != NULL ? i + 1 : 0;
      return;
    }
    if (argv[i][1] == '-')
      long_option(argv, &i, o);
    else
      short_option(argv, &i, o);
    if (o->usage != NULL) return;
  }
  o->script = 0;
}

/* Builds the global `arg` as lua does: arg[0] is the script, the script's
 * arguments are positive, the interpreter and its options negative. */
static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int i;
  lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* ---- the command line as steps of one run ------------------------------ */

/* Append {kind = kind, [field] = value} to the steps table at top - 1
 * (the new step stays on top for more fields). */
static void new_step(lua_State *L, const char *kind) {
  lua_newtable(L);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, (lua_Integer)lua_rawlen(L, -3) + 1);
}

/* -l [g=]mod: global g (or mod, up to a '-' suffix) = require(mod). */
static void library_step(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  size_t glen = eq ? (size_t)(eq - spec) : strcspn(spec, LUA_IGMARK);
  new_step(L, "l");
  lua_pushstring(L, eq ? eq + 1 : spec);
  lua_setfield(L, -2, "module");
  lua_pushlstring(L, spec, glen);
  lua_setfield(L, -2, "global");
}

/* Pushes arg[1..n] (the script's arguments, as `...`) as a table with n. */
static void push_script_args(lua_State *L) {
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  lua_createtable(L, n, 1);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -2, i);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  lua_remove(L, -2);
}

/* The step of LUA_INIT_5_4, else LUA_INIT, as lua.c's handle_luainit
 * reads them: "@FILE" runs FILE, anything else is code whose chunk is
 * named after the variable ("LUA_INIT:1: ..."). None when neither is set. */
static void init_step(lua_State *L) {
  const char *name = "=" LUA_INIT_VAR LUA_VERSUFFIX;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=" LUA_INIT_VAR;
    init = getenv(name + 1);
  }
  if (init == NULL) return;
  new_step(L, "init");
  if (init[0] == '@') {
    lua_pushstring(L, init + 1);
    lua_setfield(L, -2, "name");
  } else {
    lua_pushstring(L, init);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "chunkname");
  }
  lua_pop(L, 1);
}

/* Pushes the steps of the command line, in the order lua.c runs them:
 * LUA_INIT (unless -E), each -e, -l and -W, then the script, or stdin
 * when there is neither a script, -e nor -v and stdin is no terminal. */
static void push_steps(lua_State *L, const host *h, const host_opts *o,
                       bool interactive) {
  char **argv = h->argv;
  int lim = o->script > 0 ? o->script : h->argc;
  lua_newtable(L);
  if (!(o->flags & HAS_NOENV)) init_step(L);
  for (int i = 1; i < lim; i++) {
    char opt = argv[i][1];
    if (opt == '-') { /* --report V and the like: skip the V */
      if (strchr(argv[i], '=') == NULL &&
          value_option(argv[i], strlen(argv[i])) >= 0)
        i++;
    } else if (opt == 'W') { /* in order: warnings of earlier steps stay off */
      new_step(L, "W");
      lua_pop(L, 1);
    } else if (opt == 'e' || opt == 'l') {
      const char *extra = argv[i][2] != '\0' ? argv[i] + 2 : argv[++i];
      if (opt == 'l') {
        library_step(L, extra);
      } else {
        new_step(L, "e");
        lua_pushstring(L, extra);
        lua_setfield(L, -2, "code");
      }
      lua_pop(L, 1);
    }
  }
  if (o->script > 0) {
    const char *fname = argv[o->script];
    new_step(L, "script");
    if (strcmp(fname, "-") != 0 || strcmp(argv[o->script - 1], "--") == 0) {
      lua_pushstring(L, fname);
      lua_setfield(L, -2, "name");
    }
    push_script_args(L);
    lua_setfield(L, -2, "args");
    lua_pop(L, 1);
  } else if (!interactive && !(o->flags & (HAS_E | HAS_V))) {
    new_step(L, "stdin");
    lua_pop(L, 1);
  }
}

/* host.load(step) → the chunk of an "e", "init", "script" or "stdin"
 * step (code, named by its chunkname or "(command line)"; else the file
 * name, nil for stdin), or nil, message, status: 1 for a chunk that does
 * not compile or a LUA_INIT file that cannot be read, 2 (usage, already
 * printed: no message) for a script that cannot be opened. */
static int l_load(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "kind");
  const char *kind = lua_tostring(L, -1);
  int status;
  if (lua_getfield(L, 1, "code") == LUA_TSTRING) {
    size_t n;
    const char *code = lua_tolstring(L, -1, &n);
    lua_getfield(L, 1, "chunkname");
    const char *chunk = luaL_optstring(L, -1, "=(command line)");
    status = luaL_loadbuffer(L, code, n, chunk);
  } else {
    lua_getfield(L, 1, "name"); /* nil: stdin */
    status = luaL_loadfile(L, lua_tostring(L, -1));
  }
  if (status == LUA_OK) return 1;
  lua_pushnil(L);
  lua_insert(L, -2);
  if (status == LUA_ERRFILE && strcmp(kind, "script") == 0) {
    usage_error(lua_tostring(L, -1));
    lua_pushnil(L);
    lua_replace(L, -2);
    lua_pushinteger(L, EXIT_USAGE);
  } else {
    lua_pushinteger(L, EXIT_ERROR);
  }
  return 3;
}

/* host.report(err[, bare]): prints an error as "bhprobe-lua: message"
 * (bare: without the program name, as lua.c does at its prompt). */
static int l_report(lua_State *L) {
  const char *pname = lua_toboolean(L, 2) ? NULL : progname;
  lua_settop(L, 1);
  const char *msg = lbh_error_text(L, 1);
  if (!quiet_stop(msg)) l_message(pname, msg);
  return 0;
}

/* Pushes the embedded lua/host/<name>.lua as a function. */
static void push_host_chunk(lua_State *L, const char *name) {
  const bh_lua_helper *code = lbh_embed_find(host_lua, name);
  const char *chunk = lua_pushfstring(L, "=(%s)", name);
  if (luaL_loadbufferx(L, code->code, code->size, chunk, "t") != LUA_OK)
    lua_error(L);
  lua_remove(L, -2);
}

/* Pushes the host table the session driver and the prompt use. */
static void push_host_table(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"load", l_load},
      {"report", l_report},
      {"readline", lbh_readline},
      {"history", lbh_history_add},
      {NULL, NULL},
  };
  luaL_newlib(L, funcs);
  lbh_push_module(L);
  lua_getfield(L, -1, "spawn");
  lua_setfield(L, -3, "spawn");
  lua_getfield(L, -1, "pretty");
  lua_setfield(L, -3, "pretty");
  lua_pop(L, 1);
}

/* Runs the whole command line as ONE run: lua/host/session.lua as its
 * main task runs every step, then (interactive) the prompt. A plain run
 * (bh.run) ends when every task has; a session (-i) when the prompt
 * does, and ^C interrupts the line it waits for instead of ending it.
 * Leaves the exit status in h. */
static void run_command_line(lua_State *L, host *h, const host_opts *o,
                             bool interactive) {
  lua_settop(L, 0);
  lua_pushcfunction(L, msghandler);
  if (interactive) {
    lua_pushcfunction(L, lbh_session);
  } else {
    lbh_push_module(L);
    lua_getfield(L, -1, "run");
    lua_remove(L, -2);
  }
  push_host_chunk(L, "session");
  push_steps(L, h, o, interactive);
  push_host_table(L);
  if (interactive)
    push_host_chunk(L, "prompt");
  else
    lua_pushnil(L);
  int status = lua_pcall(L, 4, 1, 1);
  if (interactive && lbh_stop_signal() != 0) { /* end the prompt's line */
    (void)fputs("\n", stdout);
    (void)fflush(stdout);
  }
  if (status != LUA_OK && quiet_stop(lua_tostring(L, -1)))
    lua_pop(L, 1);
  else if (!interactive || lbh_stop_signal() == 0)
    report(L, status);
  if (interactive && lbh_stop_signal() == SIGINT)
    lbh_clear_stop_signal(L); /* a late ^C */
  if (stopped_by_signal(h)) return;
  if (status != LUA_OK)
    h->exit_status = EXIT_ERROR;
  else if (lua_isinteger(L, -1))
    h->exit_status = (int)lua_tointeger(L, -1);
}

/* Makes the bh module the global `bh`, then checks the service options
 * (lbh_service_setup: they are in bh.options before anything runs). A
 * target that cannot be opened ends the host with status 2 and the
 * reason, before any chunk runs; then systemd hears READY=1. */
static bool open_bh(lua_State *L, host *h, const host_opts *o) {
  char why[512], name[NAME_MAX_LEN + 1];
  lbh_service_opts so = {o->report, o->metrics, o->listen, o->name};
  if (so.name == NULL) so.name = default_name(h->argv, o, name, sizeof name);
  luaL_requiref(L, "bh", luaopen_bh, 1);
  lua_pop(L, 1);
  if (!lbh_service_setup(L, &so, why, sizeof why)) {
    l_message(PROGNAME, why);
    h->exit_status = EXIT_USAGE;
    return false;
  }
  lbh_service_notify("READY=1");
  return true;
}

/* The protected main: stack has the host as a light userdata; pushes
 * nothing and leaves the exit status in it. */
static int pmain(lua_State *L) {
  host *h = lua_touserdata(L, 1);
  host_opts o;
  collectargs(h->argv, &o);
  if (o.usage != NULL) {
    usage_error(lua_pushfstring(L, o.usage, h->argv[o.script]));
    h->exit_status = EXIT_USAGE;
    return 0;
  }
  if (o.flags & (HAS_HELP | HAS_VERSION)) {
    if (o.flags & HAS_HELP)
      print_help();
    else
      print_version();
    return 0;
  }
  bool interactive =
      (o.flags & HAS_I) ||
      (o.script == 0 && !(o.flags & (HAS_E | HAS_V)) && isatty(STDIN_FILENO));
  if (lbh_install_signal_handlers(L) != 0)
    l_message(PROGNAME, "cannot install signal handlers");
  if ((o.flags & HAS_V) || interactive) print_version();
  if (o.flags & HAS_NOENV) { /* -E: package ignores LUA_PATH and LUA_CPATH */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  if (!open_bh(L, h, &o)) return 0;
  createargtable(L, h->argv, h->argc, o.script);
  run_command_line(L, h, &o, interactive);
  if (h->exit_status != 0) return 0;
  if (lbh_unobserved_error(L)) h->exit_status = EXIT_ERROR;
  return 0;
}

int main(int argc, char **argv) {
  /* First of all: a SIGHUP (logrotate's, say) that comes before the
   * handler is installed must not end the process at its default action.
   * lbh_install_signal_handlers replaces this. */
  (void)signal(SIGHUP, SIG_IGN);
  host h = {argc, argv, 0};
  lua_State *L;
  int status;
  /* Before anything opens: as many descriptors as the hard limit allows,
   * and a few set aside so that a full table (another user's idle
   * connections) never leaves a round unable to open its roots, its
   * manifests or the report (fdreserve.h). */
  (void)bh_fd_reserve_setup(BH_FD_RESERVE_DEFAULT, NULL);
  L = luaL_newstate();
  if (L == NULL) {
    l_message(PROGNAME, "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &h);
  status = lua_pcall(L, 1, 0, 0);
  if (status != LUA_OK && lbh_stop_signal() != 0) {
    h.exit_status = 128 + lbh_stop_signal(); /* interrupted in the host */
  } else if (status != LUA_OK) {
    report(L, status);
    h.exit_status = EXIT_ERROR;
  }
  lbh_service_notify("STOPPING=1");
  lua_close(L);
  /* The process-wide caches: their pidfds and memory are freed like the
   * rest, so that a leak checker sees nothing left. */
  bh_proc_cache_clear();
  bh_digest_cache_clear();
  bh_fd_reserve_close();
  return h.exit_status;
}
