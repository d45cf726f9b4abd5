/* The host's service side (lbh_service.h, lbh.h): start-up checks of
 * --report/--metrics/--listen, systemd notification (sd_notify: READY
 * after the checks, WATCHDOG from each run's loop, STOPPING at the end)
 * and what every run starts by itself.
 *
 * The watchdog pings come from a timer on the run's own loop, at half
 * the interval systemd asked for (WATCHDOG_USEC): a loop that stalls (a
 * script blocked in a C call, a hot Lua loop) stops pinging and systemd
 * restarts the service. Between runs (the host between -e chunks) no one
 * pings: that is the host doing Lua work, never long. */
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
#include "lbh_service.h"
#include "log.h"

/* What the host opened at start-up, in a userdata in the registry (its
 * __gc closes the socket with the state). */
typedef struct host_service {
  int listen_fd;
  char address[80];
} host_service;

static const char service_key = 'v';
#define SERVICE_MT "bh.host_service"

/* A run's watchdog: a persistent timer, freed with the run. */
typedef struct watchdog {
  struct event *ev;
  lbh_tracked track;
  lbh_run *run;
} watchdog;

static host_service *get_service(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &service_key);
  host_service *s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

static int service_gc(lua_State *L) {
  host_service *s = lua_touserdata(L, 1);
  if (s->listen_fd >= 0) (void)close(s->listen_fd);
  s->listen_fd = -1;
  return 0;
}

static host_service *new_service(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", service_gc}, {NULL, NULL}};
  lbh_class(L, SERVICE_MT, meta, NULL, NULL);
  host_service *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->listen_fd = -1;
  s->address[0] = '\0';
  luaL_setmetatable(L, SERVICE_MT);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &service_key);
  return s;
}

int lbh_service_listen_fd(lua_State *L, char *address, size_t cap) {
  host_service *s = get_service(L);
  if (s == NULL || s->listen_fd < 0) return -1;
  (void)snprintf(address, cap, "%s", s->address);
  return fcntl(s->listen_fd, F_DUPFD_CLOEXEC, 0);
}

/* ---- start-up checks ---------------------------------------------------- */

/* Set bh.options[name] = value (value may be NULL: nothing). */
static void set_option(lua_State *L, const char *name, const char *value) {
  if (value == NULL) return;
  lbh_push_module(L);
  lua_getfield(L, -1, "options");
  lua_pushstring(L, value);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}

/* The first metrics file (build information, no series yet), written
 * through bh.metrics.flush so that what is checked is what will write
 * (to bh.options.metrics, set before). */
static int flush_p(lua_State *L) {
  lbh_push_module(L);
  lua_getfield(L, -1, "metrics");
  lua_getfield(L, -1, "flush");
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
  set_option(L, "name", o->name); /* before the first metrics file */
  set_option(L, "report", report);
  set_option(L, "metrics", metrics);
  set_option(L, "listen", listen);
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
    set_option(L, "listen_address", s->address);
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
  lbh_run_background(w->run, -1);
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
  w->run = run;
  w->ev = event_new(lbh_run_base(run), -1, EV_PERSIST, watchdog_cb, w);
  if (w->ev == NULL || event_add(w->ev, &tv) != 0) {
    if (w->ev != NULL) event_free(w->ev);
    free(w);
    return;
  }
  (void)sd_notify(0, "WATCHDOG=1");
  lbh_run_background(run, 1);
  lbh_run_track(run, &w->track, watchdog_close, w);
}

void lbh_service_attach(lua_State *L, lbh_run *run) {
  if (get_service(L) == NULL) return; /* not the host: bh.so in plain Lua */
  start_watchdog(run);
  lbh_http_start_host(L);
}
