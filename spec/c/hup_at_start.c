/* A test shim (LD_PRELOAD, built only for the tests): sends the process a
 * SIGHUP at the two ends of the host's start-up window, before its signal
 * handlers exist: when main makes the Lua state (luaL_newstate, the first
 * thing main does after the dispositions it sets first) and right before
 * the SIGINT handler (the first of the host's handlers) is installed. A
 * logrotate HUP can land there; the host must live through it.
 * BH_HUP_AT=newstate or install picks one end; unset, the shim only
 * passes the calls through. Production code has no such hook. */
#include <dlfcn.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct lua_State lua_State;
lua_State *luaL_newstate(void);
int sigaction(int sig, const struct sigaction *sa, struct sigaction *old);

static bool at(const char *where) {
  const char *want = getenv("BH_HUP_AT");
  return want != NULL && strcmp(want, where) == 0;
}

lua_State *luaL_newstate(void) {
  lua_State *(*next)(void) = (lua_State * (*)(void)) dlsym(RTLD_NEXT, __func__);
  if (at("newstate")) (void)raise(SIGHUP);
  return next != NULL ? next() : NULL;
}

int sigaction(int sig, const struct sigaction *sa, struct sigaction *old) {
  int (*next)(int, const struct sigaction *, struct sigaction *) =
      (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(
          RTLD_NEXT, __func__);
  if (sig == SIGINT && sa != NULL && sa->sa_handler != SIG_DFL &&
      sa->sa_handler != SIG_IGN && at("install"))
    (void)raise(SIGHUP);
  return next != NULL ? next(sig, sa, old) : -1;
}
