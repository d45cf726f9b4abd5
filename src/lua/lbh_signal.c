/* SIGINT/SIGTERM (lbh.h, lbh_signal.h). The handler never touches Lua
 * beyond lua_sethook, which Lua 5.4 allows from a signal handler (lua.c's
 * laction does the same). It records the signal, hooks the main thread
 * and the task running now, so that a Lua loop that never yields is
 * interrupted with "interrupted" at its next instruction, and writes to an
 * eventfd so that a loop blocked in the kernel wakes up and stops. A
 * second signal while the first is still being handled ends the process
 * the default way. */
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

static void on_signal(int sig) {
  int saved = errno;
  if (got_signal != 0) { /* second signal: give up on a clean stop */
    (void)signal(sig, SIG_DFL);
    (void)raise(sig);
  }
  got_signal = sig;
  set_hook(main_state);
  set_hook(running_state);
  uint64_t one = 1;
  ssize_t n = write(wake_fd, &one, sizeof one);
  (void)n; /* nothing to do from a handler if the counter is full */
  errno = saved;
}

void lbh_install_signal_handlers(lua_State *L) {
  main_state = L;
  if (wake_fd < 0) {
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) return; /* the loop then only stops between turns */
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
}

int lbh_stop_signal(lua_State *L) {
  (void)L;
  return got_signal;
}

void lbh_clear_stop_signal(lua_State *L) {
  (void)L;
  got_signal = 0;
  lbh_signal_unhook(L);
}

int lbh_signal_fd(void) {
  return wake_fd;
}

void lbh_signal_drain(void) {
  uint64_t v;
  while (wake_fd >= 0 && read(wake_fd, &v, sizeof v) == (ssize_t)sizeof v) {
  }
}

int lbh_signal_pending(void) {
  return got_signal;
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
