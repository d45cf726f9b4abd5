/* bhprobe-lua: the host. Shaped like Lua 5.4's lua.c: main() creates the
 * state and runs pmain under lua_pcall; pmain parses the command line (the
 * lua conventions plus -h/--help, --version, --report, --metrics), opens
 * the libraries and the bh module, and runs every chunk (-e, -l, the
 * script) through one docall. docall runs the chunk as the main task of
 * bh.run, so yielding functions (bh.probe, bh.sleep) work at top level,
 * under a message handler that adds a traceback. The -i prompt is one
 * session (lbh_session) whose main task reads lines and runs each as a
 * task, so what a line starts keeps being served on the next ones.
 *
 * Exit status (DESIGN §3): 0 when the script returns, os.exit(n) -> n,
 * 1 when a chunk raises or a task failed unobserved, 2 for a usage error,
 * 128 + signal when SIGINT/SIGTERM stopped the loop. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lbh.h"
#include "lbh_embed.h"
#include "prompt.h"

#ifndef BH_VERSION
#define BH_VERSION "0.0.0"
#endif

#define PROGNAME "bhprobe-lua"
#define EXIT_ERROR 1
#define EXIT_USAGE 2
#ifndef LUA_IGMARK
#define LUA_IGMARK "-" /* as in lua.c: "-l g-v2" sets global g */
#endif

/* Bits of host_opts.flags: which options were seen. */
enum {
  HAS_E = 1 << 0,
  HAS_I = 1 << 1,
  HAS_V = 1 << 2,
  HAS_HELP = 1 << 3,
  HAS_VERSION = 1 << 4
};

/* What collectargs found on the command line. */
typedef struct host_opts {
  int script;          /* argv index of the script; 0 when none */
  unsigned flags;      /* HAS_* */
  const char *report;  /* --report FILE, or NULL */
  const char *metrics; /* --metrics FILE, or NULL */
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

/* Prints "progname: msg" on stderr. */
static void l_message(const char *pname, const char *msg) {
  if (pname) (void)fprintf(stderr, "%s: ", pname);
  (void)fprintf(stderr, "%s\n", msg);
  (void)fflush(stderr);
}

/* Prints a usage error and the one-line hint; the caller exits 2. */
static void usage_error(const char *msg) {
  l_message(PROGNAME, msg);
  (void)fputs("try '" PROGNAME " --help'\n", stderr);
  (void)fflush(stderr);
}

/* The version line, for -v, --version and the interactive banner. */
static void print_version(void) {
  printf("%s %s (running-process 4.1.0 backend-handle probe) on %s\n", PROGNAME,
         BH_VERSION, LUA_RELEASE);
  (void)fflush(stdout);
}

/* The --help text: every option, within 80 columns. */
static void print_help(void) {
  (void)fputs(
      "usage: " PROGNAME
      " [options] [script [args...]]\n"
      "Runs a Lua 5.4 probe policy; the script runs as the main task of\n"
      "bh.run, so bh.probe and bh.sleep work at top level.\n"
      "Options:\n"
      "  -e CODE          run the Lua string CODE\n"
      "  -l NAME          require NAME into global NAME (-l g=mod: into g)\n"
      "  -i               interactive prompt after the script; each line\n"
      "                   runs as a task, expressions print their values\n"
      "  -v               print the version line\n"
      "  -W               turn Lua warnings on\n"
      "  -h, --help       print this help and exit\n"
      "  --version        print the version and exit\n"
      "  --report FILE    bh.report writes JSON lines to FILE, not stdout\n"
      "  --metrics FILE   write metrics to FILE\n"
      "  --               stop handling options\n"
      "  -                run stdin as the script, stop handling options\n"
      "Exit status: 0 when the script returns (os.exit(n): n), 1 when it\n"
      "raises, 2 for a usage error, 130/143 when stopped by SIGINT/SIGTERM.\n",
      stdout);
  (void)fflush(stdout);
}

/* Message handler of docall: adds a traceback to the error message unless
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
  if (strstr(msg, "\nstack traceback:") != NULL || lbh_stop_signal(L) != 0)
    return 1;
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Calls the function at stack[top - narg] with its narg arguments as the
 * main task of bh.run: stack becomes [msghandler, bh.run, fn, args...].
 * Leaves nres results (or the error message) like lua_pcall. */
static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg; /* index of the function */
  int status;
  lbh_push_module(L);
  lua_getfield(L, -1, "run");
  lua_remove(L, -2);
  lua_insert(L, base); /* bh.run under the function */
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  status = lua_pcall(L, narg + 1, nres, base);
  lua_remove(L, base);
  return status;
}

/* Prints the error message on top of the stack, if status says error. */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) msg = "(error object is not a string)";
    l_message(progname, msg);
    lua_pop(L, 1);
  }
  return status;
}

/* After a chunk ran: when SIGINT/SIGTERM stopped the loop, records the
 * conventional 128 + signal exit status and says so. */
static bool stopped_by_signal(lua_State *L, host *h) {
  int sig = lbh_stop_signal(L);
  if (sig == 0) return false;
  h->exit_status = 128 + sig;
  return true;
}

/* Runs one chunk through docall and reports its error. Returns true when
 * the host may go on; otherwise h->exit_status says how to end. */
static bool run_chunk(lua_State *L, host *h, int narg) {
  int status = report(L, docall(L, narg, 0));
  if (stopped_by_signal(L, h)) return false;
  if (status != LUA_OK) {
    h->exit_status = EXIT_ERROR;
    return false;
  }
  return true;
}

/* Runs CODE given with -e. */
static bool dostring(lua_State *L, host *h, const char *code) {
  if (report(L, luaL_loadbuffer(L, code, strlen(code), "=(command line)")) !=
      LUA_OK) {
    h->exit_status = EXIT_ERROR;
    return false;
  }
  return run_chunk(L, h, 0);
}

/* -l [g=]mod: global g (or mod, up to a '-' suffix) = require(mod), with
 * require running as a task so that a module's top level may yield. */
static bool dolibrary(lua_State *L, host *h, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *modname = eq ? eq + 1 : spec;
  size_t glen = eq ? (size_t)(eq - spec) : strcspn(spec, LUA_IGMARK);
  int status;
  lua_pushlstring(L, spec, glen); /* the global's name */
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = report(L, docall(L, 1, 1));
  if (stopped_by_signal(L, h)) return false;
  if (status != LUA_OK) {
    lua_pop(L, 1);
    h->exit_status = EXIT_ERROR;
    return false;
  }
  lua_setglobal(L, lua_tostring(L, -2));
  lua_pop(L, 1);
  return true;
}

/* Parses a long option at argv[*i]; --report/--metrics take FILE either
 * as "--opt=FILE" or as the next argument. */
static void long_option(char **argv, int *i, host_opts *o) {
  const char *a = argv[*i];
  const char **dest = NULL;
  size_t n = strcspn(a, "=");
  if (strcmp(a, "--help") == 0) {
    o->flags |= HAS_HELP;
    return;
  }
  if (strcmp(a, "--version") == 0) {
    o->flags |= HAS_VERSION;
    return;
  }
  if (n == 8 && strncmp(a, "--report", n) == 0) dest = &o->report;
  if (n == 9 && strncmp(a, "--metrics", n) == 0) dest = &o->metrics;
  if (dest == NULL) {
    o->usage = "unrecognized option '%s'";
    return;
  }
  if (a[n] == '=') {
    *dest = a + n + 1;
  } else if (argv[*i + 1] != NULL) {
    *dest = argv[++*i];
  } else {
    o->usage = "'%s' needs argument";
  }
  if (*dest != NULL && **dest == '\0') o->usage = "'%s' needs argument";
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

/* Runs the -e and -l options in order, and -W, up to argv[lim). */
static bool runargs(lua_State *L, host *h, int lim) {
  char **argv = h->argv;
  int i;
  for (i = 1; i < lim; i++) {
    char opt = argv[i][1];
    if (opt == '-') { /* --report/--metrics FILE: skip the FILE */
      if (strchr(argv[i], '=') == NULL && (strcmp(argv[i], "--report") == 0 ||
                                           strcmp(argv[i], "--metrics") == 0))
        i++;
    } else if (opt == 'W') {
      lua_warning(L, "@on", 0);
    } else if (opt == 'e' || opt == 'l') {
      const char *extra = argv[i][2] != '\0' ? argv[i] + 2 : argv[++i];
      bool ok = opt == 'e' ? dostring(L, h, extra) : dolibrary(L, h, extra);
      if (!ok) return false;
    }
  }
  return true;
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

/* Pushes arg[1..n] (the script's arguments, as `...`); returns n. */
static int pushargs(lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -i); /* the arg table */
  return n;
}

/* Loads and runs the script argv[0] ("-" is stdin unless after "--").
 * A script that cannot be opened is a usage error (exit 2). */
static bool handle_script(lua_State *L, host *h, int script) {
  const char *fname = h->argv[script];
  int status;
  if (strcmp(fname, "-") == 0 && strcmp(h->argv[script - 1], "--") != 0)
    fname = NULL;
  status = luaL_loadfile(L, fname);
  if (status == LUA_ERRFILE) {
    usage_error(lua_tostring(L, -1));
    lua_pop(L, 1);
    h->exit_status = EXIT_USAGE;
    return false;
  }
  if (report(L, status) != LUA_OK) {
    h->exit_status = EXIT_ERROR;
    return false;
  }
  return run_chunk(L, h, pushargs(L));
}

/* Makes the bh module the global `bh` and records --report/--metrics in
 * bh.options before anything runs. */
static void open_bh(lua_State *L, const host_opts *o) {
  luaL_requiref(L, "bh", luaopen_bh, 1);
  lua_getfield(L, -1, "options");
  if (o->report != NULL) {
    lua_pushstring(L, o->report);
    lua_setfield(L, -2, "report");
  }
  if (o->metrics != NULL) {
    lua_pushstring(L, o->metrics);
    lua_setfield(L, -2, "metrics");
  }
  lua_pop(L, 2);
}

/* ---- the read-eval-print loop: one session, each line run as a task ---- */

/* The prompt itself is Lua (lua/host/prompt.lua, embedded at build time:
 * host_lua); see its header for why. */
/* report(err): prints an error of the prompt on stderr without the program
 * name, as lua.c does (task:wait's strings carry their traceback). */
static int l_report(lua_State *L) {
  l_message(progname, lbh_error_text(L, 1));
  return 0;
}

/* The prompt: one lbh_session running prompt.lua until end of input. ^C
 * abandons the line at the prompt or interrupts the running one, and the
 * session goes on; SIGTERM ends it (143) with responders closed. */
static bool doREPL(lua_State *L, host *h) {
  int status;
  lua_settop(L, 0);
  lua_pushcfunction(L, msghandler);
  lua_pushcfunction(L, lbh_session);
  const bh_lua_helper *code = lbh_embed_find(host_lua, "prompt");
  status = luaL_loadbufferx(L, code->code, code->size, "=(prompt)", "t");
  if (status == LUA_OK) {
    lua_pushcfunction(L, lbh_readline);
    lua_pushcfunction(L, l_report);
    lbh_push_module(L);
    lua_getfield(L, -1, "spawn");
    lua_remove(L, -2);
    progname = NULL;
    status = lua_pcall(L, 4, 0, 1);
    progname = PROGNAME;
  }
  if (lbh_stop_signal(L) == 0) report(L, status); /* else: "interrupted" */
  lua_settop(L, 0);
  (void)fputs("\n", stdout);
  (void)fflush(stdout);
  if (lbh_stop_signal(L) == SIGINT) lbh_clear_stop_signal(L); /* a late ^C */
  if (stopped_by_signal(L, h)) return false;
  if (status != LUA_OK) {
    h->exit_status = EXIT_ERROR;
    return false;
  }
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
  if (o.flags & HAS_V) print_version();
  luaL_openlibs(L);
  open_bh(L, &o);
  lbh_install_signal_handlers(L);
  createargtable(L, h->argv, h->argc, o.script);
  if (!runargs(L, h, o.script > 0 ? o.script : h->argc)) return 0;
  if (o.script > 0 && !handle_script(L, h, o.script)) return 0;
  if (o.flags & HAS_I) {
    if (!doREPL(L, h)) return 0;
  } else if (o.script == 0 && !(o.flags & (HAS_E | HAS_V))) {
    if (isatty(STDIN_FILENO)) {
      print_version();
      if (!doREPL(L, h)) return 0;
    } else {
      lua_settop(L, 0);
      if (report(L, luaL_loadfile(L, NULL)) != LUA_OK) {
        h->exit_status = EXIT_ERROR;
        return 0;
      }
      if (!run_chunk(L, h, 0)) return 0;
    }
  }
  if (lbh_unobserved_error(L)) h->exit_status = EXIT_ERROR;
  return 0;
}

int main(int argc, char **argv) {
  host h = {argc, argv, 0};
  lua_State *L;
  int status;
  /* DESIGN §1.8: a peer closing early must not kill us with SIGPIPE. */
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) perror(PROGNAME ": signal");
  L = luaL_newstate();
  if (L == NULL) {
    l_message(PROGNAME, "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &h);
  status = lua_pcall(L, 1, 0, 0);
  if (status != LUA_OK && lbh_stop_signal(L) != 0) {
    h.exit_status = 128 + lbh_stop_signal(L); /* interrupted in the host */
  } else if (status != LUA_OK) {
    report(L, status);
    h.exit_status = EXIT_ERROR;
  }
  lua_close(L);
  return h.exit_status;
}
