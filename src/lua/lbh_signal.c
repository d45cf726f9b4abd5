/* Signals of the host (lbh.h, lbh_signal.h). Signal dispositions belong
 * to the process, not to a Lua state, so this state is process-wide on
 * purpose: one stop signal, one SIGHUP count, one eventfd, and the one
 * host state (main_state) whose threads the handler hooks.
 *
 * The handlers never touch Lua beyond lua_sethook, which Lua 5.4 allows
 * from a signal handler (lua.c's laction does the same).
 * - SIGINT/SIGTERM record the signal, hook the main thread and the task
 *   running now, so that a Lua loop that never yields is interrupted with
 *   "interrupted" at its next instruction, and write to an eventfd so
 *   that a loop blocked in the kernel wakes up and stops. They are
 *   installed without SA_RESTART: a script blocked in a C call (io.read)
 *   gets EINTR back and the hook stops it, the first time. When the
 *   process leads its own process group (systemd, a shell's job), SIGTERM
 *   is passed on to the group, so that a child it waits for (os.execute,
 *   io.popen) ends too, as systemd would do (a terminal's ^C already
 *   reaches the whole group).
 *   A second signal while the first is still being handled ends the
 *   process the default way.
 * - SIGHUP only counts (with SA_RESTART: a rotation must never interrupt
 *   a read) and wakes the loop, whose drain tells the run's hooks: the
 *   report (lbh_report.c, the one place that handles rotation) reopens
 *   at once.
 * - SIGPIPE is ignored: a peer closing early gives EPIPE, never a death
 *   (design §1.8); EPIPE on stdout then stops the run (lbh_request_stop).
 */
#include <errno.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lbh.h"
#include "lbh_signal.h"

static volatile sig_atomic_t got_signal;
static volatile sig_atomic_t hup_count;
static sig_atomic_t hup_drained; /* hup_count the last drain acted on */
static int wake_fd = -1;
static lua_State *volatile main_state;
static lua_State *volatile running_state;

/* The count hook: remove itself and raise "FILE:LINE: interrupted". A hook
 * runs without a frame of its own, so level 0 is the looping function
 * (luaL_error's level 1 would name its caller, or nothing in a task). */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_where(L, 0);
  lua_pushliteral(L, "interrupted");
  lua_concat(L, 2);
  lua_error(L);
}

static void set_hook(lua_State *L) {
  if (L != NULL)
    lua_sethook(L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT,
                1);
}

static void wake(void) {
  uint64_t one = 1;
  ssize_t n = write(wake_fd, &one, sizeof one);
  (void)n; /* nothing to do from a handler if the counter is full */
}

/* Set while the copy of a stop signal we sent our own group is on its
 * way back to us: that copy is not a second signal. */
static volatile sig_atomic_t forwarded;

/* Pass sig on to the process group we lead (our children, as a terminal
 * or systemd would signal them). The copy that reaches us stays pending
 * while this handler runs (sig is blocked in it) and comes back once it
 * returns: on_stop then drops it. Async-signal-safe. */
static void forward_to_group(int sig) {
  if (getpgrp() != getpid()) return; /* not our group: leave it alone */
  forwarded = sig;
  if (kill(0, sig) != 0) forwarded = 0;
}

static void on_stop(int sig) {
  int saved = errno;
  if (forwarded == sig) { /* our own copy coming back */
    forwarded = 0;
    errno = saved;
    return;
  }
  if (got_signal != 0) { /* second signal: give up on a clean stop */
    (void)signal(sig, SIG_DFL);
    (void)raise(sig);
  }
  got_signal = sig;
  set_hook(main_state);
  set_hook(running_state);
  wake();
  if (sig == SIGTERM) forward_to_group(sig); /* ^C reaches the group */
  errno = saved;
}

static void on_hup(int sig) {
  int saved = errno;
  (void)sig;
  hup_count = hup_count + 1;
  wake();
  errno = saved;
}

static int install(int sig, void (*handler)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = flags;
  return sigaction(sig, &sa, NULL);
}

int lbh_install_signal_handlers(lua_State *L) {
  main_state = L;
  if (wake_fd < 0) {
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) return -1;
  }
  if (install(SIGINT, on_stop, 0) != 0 || install(SIGTERM, on_stop, 0) != 0 ||
      install(SIGHUP, on_hup, SA_RESTART) != 0 ||
      install(SIGPIPE, SIG_IGN, 0) != 0)
    return -1;
  return 0;
}

int lbh_stop_signal(void) {
  return got_signal;
}

void lbh_clear_stop_signal(lua_State *L) {
  got_signal = 0;
  lbh_signal_unhook(L);
}

void lbh_request_stop(int sig) {
  if (got_signal != 0) return;
  got_signal = sig;
  set_hook(main_state);
  set_hook(running_state);
  if (wake_fd >= 0) wake();
}

int lbh_signal_fd(void) {
  return wake_fd;
}

unsigned lbh_hup_count(void) {
  return (unsigned)hup_count;
}

bool lbh_signal_drain(void) {
  uint64_t v;
  while (wake_fd >= 0 && read(wake_fd, &v, sizeof v) == (ssize_t)sizeof v) {
  }
  sig_atomic_t n = hup_count;
  if (n == hup_drained) return false;
  hup_drained = n;
  return true;
}

void lbh_signal_set_running(lua_State *co) {
  running_state = co;
  if (co != NULL && got_signal != 0) set_hook(co);
}

void lbh_signal_unhook(lua_State *L) {
  if (L != NULL && lua_gethook(L) == interrupt_hook) lua_sethook(L, NULL, 0, 0);
  lua_State *m = main_state;
  if (m != NULL && lua_gethook(m) == interrupt_hook) lua_sethook(m, NULL, 0, 0);
}
