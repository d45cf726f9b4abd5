/* The host's service side (lbh.h): start-up checks of
 * --report/--metrics/--listen, systemd notification (sd_notify: READY
 * after the checks, WATCHDOG from each run's loop, STOPPING at the end)
 * and what every run of the host starts by itself, through a hook the
 * setup attaches to every run of the state (lbh_run.h): the --listen
 * endpoint (lbh_http.c) and the watchdog pings.
 *
 * The watchdog pings come from a timer on the run's own loop, at half
 * the interval systemd asked for (WATCHDOG_USEC): a loop that stalls (a
 * script blocked in a C call, a hot Lua loop) stops pinging and systemd
 * restarts the service. Between runs (the host between -e chunks) no one
 * pings: that is the host doing Lua work, never long. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "http.h"
#include "lbh.h"
#include "lbh_class.h"
#include "lbh_http.h"
#include "lbh_options.h"
#include "lbh_report.h"
#include "lbh_run.h"
#include "log.h"

/* What the host opened at start-up, in a userdata in the registry (its
 * __gc closes the socket with the state). */
typedef struct host_service {
  int listen_fd;
  char address[80];
  lbh_run_hook hook; /* attached to every run of the state */
} host_service;

static const char service_key = 'v';
#define SERVICE_MT "bh.host_service"

/* A run's watchdog: a persistent timer, freed with the run. No task
 * waits on it, so it never keeps a deadlocked run alive. */
typedef struct watchdog {
  struct event *ev;
  lbh_tracked track;
} watchdog;

static host_service *get_service(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &service_key);
  host_service *s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

static int service_gc(lua_State *L) {
  host_service *s = lua_touserdata(L, 1);
  lbh_run_hook_remove(&s->hook);
  if (s->listen_fd >= 0) (void)close(s->listen_fd);
  s->listen_fd = -1;
  return 0;
}

static void service_started(lbh_run *run, void *ud);

static host_service *new_service(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", service_gc}, {NULL, NULL}};
  lbh_class(L, SERVICE_MT, meta, NULL, NULL);
  host_service *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->listen_fd = -1;
  s->address[0] = '\0';
  s->hook = (lbh_run_hook){.started = service_started, .ud = s};
  luaL_setmetatable(L, SERVICE_MT);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &service_key);
  lbh_run_hook_state(L, &s->hook); /* s lives as long as L */
  return s;
}

/* ---- start-up checks ---------------------------------------------------- */

/* The first metrics file (build information, no series yet), written
 * through bh.metrics.flush (as bh.metrics handed it over) so that what is
 * checked is what will write (to bh.options.metrics, set before). */
static int flush_p(lua_State *L) {
  if (!lbh_push_bound(L, LBH_METRICS_FLUSH))
    return luaL_error(L, "bh.metrics did not hand over its flush");
  lua_call(L, 0, 2);
  if (lua_toboolean(L, -2)) return 0;
  lua_pushstring(L, lbh_error_text(L, -1));
  return 1;
}

static bool check_metrics(lua_State *L, char *why, size_t cap) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, flush_p);
  int st = lua_pcall(L, 0, 1, 0);
  bool ok = st == LUA_OK && lua_isnil(L, -1);
  if (!ok) (void)snprintf(why, cap, "--metrics: %s", lbh_error_text(L, -1));
  lua_settop(L, top);
  return ok;
}

/* Is path a name for stdout? "-" by convention, and the names the
 * system gives it: /dev/stdout (a symlink, which the report file refuses
 * as such) and the descriptor itself. */
static bool names_stdout(const char *path) {
  static const char *const names[] = {"-", "/dev/stdout", "/proc/self/fd/1",
                                      "/dev/fd/1", NULL};
  for (int i = 0; names[i] != NULL; i++)
    if (strcmp(path, names[i]) == 0) return true;
  return false;
}

bool lbh_service_setup(lua_State *L, const lbh_service_opts *o, char *why,
                       size_t cap) {
  host_service *s = get_service(L);
  const char *report = o->report, *metrics = o->metrics, *listen = o->listen;
  bh_err err;
  if (s == NULL) s = new_service(L);
  if (report != NULL && names_stdout(report))
    report = NULL; /* bh.report writes to stdout when bh.options has none */
  lbh_option_set(L, "name", o->name); /* before the first metrics file */
  lbh_option_set(L, "report", report);
  lbh_option_set(L, "metrics", metrics);
  lbh_option_set(L, "listen", listen);
  if (report != NULL && lbh_report_open_file(L, report, &err) != BH_OK) {
    (void)snprintf(why, cap, "--report: %s", err.message);
    return false;
  }
  if (metrics != NULL && !check_metrics(L, why, cap)) return false;
  if (listen != NULL && bh_http_listen(listen, &s->listen_fd, s->address,
                                       sizeof s->address, &err) != BH_OK) {
    (void)snprintf(why, cap, "--listen: %s", err.message);
    return false;
  }
  if (listen != NULL) {
    lbh_option_set(L, "listen_address", s->address);
    bh_log(BH_LOG_INFO, "serving metrics on http://%s/metrics", s->address);
  }
  return true;
}

void lbh_service_notify(const char *state) {
  (void)sd_notify(0, state);
}

/* ---- what each run starts ----------------------------------------------- */

static void watchdog_cb(evutil_socket_t fd, short what, void *arg) {
  (void)sd_notify(0, "WATCHDOG=1");
}

/* Only the run's teardown calls it, which untracked it already. */
static void watchdog_close(void *obj) {
  watchdog *w = obj;
  event_free(w->ev);
  free(w);
}

/* Ping systemd's watchdog from this run's loop, when it asked for it. */
static void start_watchdog(lbh_run *run) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  watchdog *w = calloc(1, sizeof *w);
  if (w == NULL) return;
  struct timeval tv = {(time_t)(usec / 2 / 1000000),
                       (suseconds_t)(usec / 2 % 1000000)};
  w->ev = event_new(lbh_run_base(run), -1, EV_PERSIST, watchdog_cb, w);
  if (w->ev == NULL || event_add(w->ev, &tv) != 0) {
    if (w->ev != NULL) event_free(w->ev);
    free(w);
    return;
  }
  (void)sd_notify(0, "WATCHDOG=1");
  lbh_run_track(run, &w->track, watchdog_close, w);
}

/* Serve the --listen socket in this run, through a descriptor of its own
 * (the run's server closes it when the run ends). */
static void start_endpoint(lbh_run *run, const host_service *s) {
  if (s->listen_fd < 0) return;
  int fd = fcntl(s->listen_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    bh_log(BH_LOG_ERR, "--listen: cannot serve in this run: %s",
           strerror(errno));
    return;
  }
  lbh_http_start_host(run, fd, s->address);
}

/* The hook of every run of the host (only the host sets a service up:
 * bh.so in plain Lua has none). */
static void service_started(lbh_run *run, void *ud) {
  start_watchdog(run);
  start_endpoint(run, ud);
}
