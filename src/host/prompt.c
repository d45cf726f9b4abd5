/* lbh_readline and lbh_history_add (prompt.h): the line reader of the
 * host's -i prompt, a yielding primitive (lbh_task.h's template) on an
 * EV_READ event for fd 0, so that the session's loop keeps serving while
 * the prompt waits.
 *
 * On a terminal, with GNU readline, lines are edited through readline's
 * callback interface: the handler is installed with the prompt when a read
 * starts, each readable event feeds it one character, and the line
 * callback removes it again (so a line's task runs with the terminal in
 * its normal mode). While a line is being edited, a background task about
 * to run takes the line off the screen first (rl_save_prompt and an empty
 * line), and the line comes back once the tasks that ran are done, so
 * their output lands above it. Tab completes Lua names through the
 * prompt's completer; whole chunks go to the history, kept in
 * ~/.bhprobe_history by history.c.
 *
 * Otherwise the prompt goes to stdout and fd 0 is read plainly into a
 * buffer split on '\n'; a last line without newline still counts. A
 * descriptor epoll cannot watch (a regular file, /dev/null) never blocks,
 * so it is read at once without yielding.
 *
 * fd 0, its buffered bytes and readline's state exist once per process,
 * so the reader's state is file-static; an operation (read_op) lives only
 * while one read is pending. This file is linked into the host only. */
#include <errno.h>
#include <event2/event.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "history.h"
#include "lbh_pcall.h"
#include "lbh_run.h"
#include "lbh_task.h"
#include "prompt.h"

#ifdef BH_USE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#define CHUNK 4096          /* bytes asked of each read */
#define MAX_LINE (1u << 20) /* a longer line is returned in pieces */

/* Bytes read from fd 0 and not yet returned (plain reading). */
static struct {
  char *buf;
  size_t len, cap;
  bool eof;
} in;

typedef struct read_op {
  lbh_task *task;
  struct event *ev;
  bool editing; /* readline's handler is installed for this read */
  bool done;    /* readline's line callback ran */
  char *line;   /* what it gave (malloc'd by readline; NULL: end) */
  /* The line stepped aside for background output: */
  lbh_run_hook hook; /* told of every resume (on_resume) */
  struct event *redraw_ev;
  bool hidden, redraw_pending;
  char *saved_text;
  int saved_point;
} read_op;

#ifdef BH_USE_READLINE
static read_op *editing_op; /* the read readline's line callback serves */
#endif

/* ---- plain reading ------------------------------------------------------ */

/* True when epoll (libevent's backend here) can watch fd: pipes,
 * terminals, sockets; not regular files or /dev/null (EPERM). */
static bool epoll_accepts(int fd) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return false;
  struct epoll_event e;
  memset(&e, 0, sizeof e);
  e.events = EPOLLIN;
  bool ok = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0;
  if (close(ep) != 0) ok = false;
  return ok;
}

/* The same for fd 0, asked once per process: what fd 0 is never changes,
 * and the prompt asks before every line. */
static bool stdin_pollable(void) {
  static int known = -1;
  if (known < 0) known = epoll_accepts(STDIN_FILENO);
  return known == 1;
}

/* True when the buffer holds a whole line or the end of input. */
static bool have_line(void) {
  return in.eof || in.len >= MAX_LINE ||
         (in.len > 0 && memchr(in.buf, '\n', in.len) != NULL);
}

/* One read() from fd 0 into the buffer. A read error other than "try
 * again" ends the input (after saying so). */
static void fill(void) {
  if (in.cap - in.len < CHUNK) {
    char *b = realloc(in.buf, in.cap + CHUNK);
    if (b == NULL) {
      (void)fputs("bhprobe-lua: out of memory reading stdin\n", stderr);
      in.eof = true;
      return;
    }
    in.buf = b;
    in.cap += CHUNK;
  }
  ssize_t n = read(STDIN_FILENO, in.buf + in.len, in.cap - in.len);
  if (n > 0) {
    in.len += (size_t)n;
  } else if (n == 0) {
    in.eof = true;
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    (void)fprintf(stderr, "bhprobe-lua: reading stdin: %s\n", strerror(errno));
    in.eof = true;
  }
}

/* Pushes the next buffered line without its newline (what is left at the
 * end of input counts as a line), or nil at the end. */
static int push_buffered(lua_State *L, void *ud) {
  (void)ud;
  char *nl = in.len > 0 ? memchr(in.buf, '\n', in.len) : NULL;
  size_t n = nl != NULL ? (size_t)(nl - in.buf) : in.len;
  if (nl == NULL && n == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, in.buf, n);
  if (nl != NULL) n++;
  memmove(in.buf, in.buf + n, in.len - n);
  in.len -= n;
  return 1;
}

#ifdef BH_USE_READLINE
/* ---- completion ------------------------------------------------------------
 */

static int complete_ref = LUA_NOREF; /* the prompt's completer */
static lbh_run *complete_run;

typedef struct complete_call {
  const char *text;
  char **matches;
} complete_call;

/* The longest common prefix of the n strings m[1..n] (malloc'd). */
static char *common_prefix(char **m, size_t n) {
  size_t len = strlen(m[1]);
  for (size_t i = 2; i <= n; i++) {
    size_t k = 0;
    while (k < len && m[i][k] == m[1][k])
      k++;
    len = k;
  }
  return strndup(m[1], len);
}

/* Protected: the completer's list for cc->text as readline's array. */
static int complete_p(lua_State *L) {
  complete_call *cc = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, complete_ref);
  lua_pushstring(L, cc->text);
  lua_call(L, 1, 1);
  size_t n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
  if (n == 0) return 0;
  char **m = calloc(n + 2, sizeof *m);
  if (m == NULL) return 0;
  bool ok = true;
  for (size_t i = 1; i <= n && ok; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i);
    const char *s = lua_tostring(L, -1);
    ok = s != NULL && (m[i] = strdup(s)) != NULL;
    lua_pop(L, 1);
  }
  if (ok) m[0] = n == 1 ? m[1] : common_prefix(m, n);
  if (ok && n == 1) m[1] = NULL;
  if (!ok || m[0] == NULL) {
    for (size_t i = 1; i <= n; i++)
      free(m[i]);
    free(m);
    return 0;
  }
  cc->matches = m;
  return 0;
}

/* readline's completion: Lua names only, never file names. */
static char **attempt_completion(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1;
  rl_completion_append_character = '\0'; /* reset by readline each time */
  if (complete_ref == LUA_NOREF || complete_run == NULL) return NULL;
  complete_call cc = {text, NULL};
  (void)lbh_loop_pcall(lbh_run_state(complete_run), complete_p, &cc, 0,
                       "completion");
  return cc.matches;
}

/* ---- the line, stepping aside for background output -----------------------
 */

static void line_hide(read_op *op) {
  if (op->hidden || !op->editing) return;
  op->saved_point = rl_point;
  op->saved_text = rl_copy_text(0, rl_end);
  rl_save_prompt();
  rl_replace_line("", 0);
  rl_redisplay();
  op->hidden = true;
}

static void line_show(read_op *op) {
  if (!op->hidden) return;
  op->hidden = false;
  rl_restore_prompt();
  rl_replace_line(op->saved_text ? op->saved_text : "", 0);
  rl_point = op->saved_point;
  free(op->saved_text);
  op->saved_text = NULL;
  if (op->editing) rl_redisplay();
}

static void on_redraw(evutil_socket_t fd, short what, void *arg) {
  read_op *op = arg;
  op->redraw_pending = false;
  line_show(op);
}

/* The run's resumed hook (lbh_run.h): a background task runs (not the
 * prompt's own, which is reading); show the line again once the tasks of
 * this turn are done. */
static void on_resume(lbh_run *run, lbh_task *t, bool before, void *ud) {
  read_op *op = ud;
  (void)run;
  if (!op->editing || t == op->task) return;
  if (before) {
    line_hide(op);
    return;
  }
  (void)fflush(stdout);
  if (op->hidden && !op->redraw_pending && op->redraw_ev != NULL) {
    op->redraw_pending = true;
    event_active(op->redraw_ev, EV_TIMEOUT, 1);
  }
}

/* readline's line callback: keep the line, put the terminal back. */
static void on_line(char *line) {
  read_op *op = editing_op;
  rl_callback_handler_remove();
  editing_op = NULL;
  if (op == NULL) {
    free(line);
    return;
  }
  op->editing = false;
  op->done = true;
  op->line = line;
}

/* Pushes the edited line, or nil at the end of input. */
static int push_edited(lua_State *L, void *ud) {
  read_op *op = ud;
  if (op->line == NULL)
    lua_pushnil(L);
  else
    lua_pushstring(L, op->line);
  return 1;
}

/* Start editing a line for op (the read of task t). */
static void edit_begin(read_op *op, lbh_task *t, const char *prompt) {
  bh_history_open();
  rl_catch_signals = 0; /* ours stay installed: they wake the loop */
  rl_catch_sigwinch = 0;
  rl_attempted_completion_function = attempt_completion;
  rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]";
  complete_run = lbh_task_run(t);
  op->redraw_ev = event_new(lbh_task_base(t), -1, 0, on_redraw, op);
  if (op->redraw_ev != NULL) {
    op->hook = (lbh_run_hook){.resumed = on_resume, .ud = op};
    lbh_run_hook_add(lbh_task_run(t), &op->hook);
  }
  editing_op = op;
  rl_callback_handler_install(prompt, on_line);
}
#endif

int lbh_history_add(lua_State *L) {
  size_t n;
  const char *chunk = luaL_checklstring(L, 1, &n);
  if (n > 0 && strlen(chunk) == n) bh_history_add(chunk);
  return 0;
}

/* ---- the operation ------------------------------------------------------ */

/* Stops watching fd 0 and leaves readline's handler (restoring the
 * terminal), then frees op. No Lua. */
static void op_free(read_op *op) {
  if (op->ev != NULL) event_free(op->ev);
#ifdef BH_USE_READLINE
  line_show(op);
  if (op->redraw_ev != NULL) {
    lbh_run_hook_remove(&op->hook);
    event_free(op->redraw_ev);
  }
  if (op->editing) {
    editing_op = NULL;
    rl_callback_handler_remove();
  }
  free(op->line);
#endif
  free(op);
}

/* The event handler: fd 0 is readable. */
static void on_stdin(evutil_socket_t fd, short what, void *arg) {
  read_op *op = arg;
  (void)fd;
  (void)what;
#ifdef BH_USE_READLINE
  if (op->editing) {
    line_show(op);
    rl_callback_read_char(); /* may call on_line */
    if (!op->done) return;
    lbh_task_complete(op->task, push_edited, op);
    op_free(op);
    return;
  }
#endif
  fill();
  if (!have_line()) return;
  lbh_task_complete(op->task, push_buffered, NULL);
  op_free(op);
}

/* The cleanup: the task is cancelled (SIGTERM, end of the run). */
static void read_cancel(void *ud) {
  op_free(ud);
}

static int push_false(lua_State *L, void *ud) {
  (void)ud;
  lua_pushboolean(L, 0);
  return 1;
}

/* SIGINT at the prompt: drop what was typed, leave the prompt's line and
 * make the read return false (the prompt starts afresh). */
static void read_interrupt(void *ud) {
  read_op *op = ud;
#ifdef BH_USE_READLINE
  line_show(op);
  if (op->editing) {
    rl_free_line_state();
    rl_callback_sigcleanup();
  }
#endif
  (void)fputs("\n", stdout);
  (void)fflush(stdout);
  lbh_task_complete(op->task, push_false, NULL);
  op_free(op);
}

/* Starts watching fd 0 for the task; raises when the loop refuses. */
static read_op *op_start(lua_State *L, lbh_task *t) {
  read_op *op = calloc(1, sizeof *op);
  if (op == NULL) luaL_error(L, "out of memory");
  op->task = t;
  op->ev = event_new(lbh_task_base(t), STDIN_FILENO, EV_READ | EV_PERSIST,
                     on_stdin, op);
  if (op->ev == NULL || event_add(op->ev, NULL) != 0) {
    op_free(op);
    luaL_error(L, "the prompt cannot watch stdin");
  }
  return op;
}

/* Keep the completer given to lbh_readline (arg 2) for readline. */
static void set_completer(lua_State *L) {
#ifdef BH_USE_READLINE
  if (!lua_isfunction(L, 2)) return;
  luaL_unref(L, LUA_REGISTRYINDEX, complete_ref);
  lua_pushvalue(L, 2);
  complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
#else
  (void)L;
#endif
}

/* lbh_readline(prompt[, complete]) → line | nil | false (see prompt.h). */
int lbh_readline(lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  lbh_task *t = lbh_task_check(L, "the prompt");
  bool editing = false;
#ifdef BH_USE_READLINE
  editing = isatty(STDIN_FILENO) != 0;
#endif
  if (!editing) {
    (void)fputs(prompt, stdout);
    (void)fflush(stdout);
    if (!have_line() && !stdin_pollable()) {
      while (!have_line()) /* never blocks: see stdin_pollable */
        fill();
    }
    if (have_line()) return push_buffered(L, NULL);
  }
  set_completer(L);
  read_op *op = op_start(L, t);
#ifdef BH_USE_READLINE
  if (editing) {
    op->editing = true;
    edit_begin(op, t, prompt);
  }
#endif
  lbh_task_set_pending(t, read_cancel, op);
  lbh_task_set_interrupt(t, read_interrupt);
  return lbh_task_yield(L, 0, NULL);
}
