/* The host's service side (lbh.h has the part main.c calls): what
 * --report, --metrics and --listen open at start-up, and what every run
 * of the host starts by itself (the --listen endpoint, the systemd
 * watchdog). */
#ifndef LBH_SERVICE_H
#define LBH_SERVICE_H

#include <lua.h>
#include <stddef.h>

#include "lbh_task.h"
#include "status.h"

/* A new descriptor for the host's --listen socket (the caller owns it),
 * address its bound address; -1 when the host has none. */
int lbh_service_listen_fd(lua_State *L, char *address, size_t cap);

/* Called by every bh.run once the run is current: starts the host's
 * --listen server (lbh_http_start_host) and the watchdog pings. */
void lbh_service_attach(lua_State *L, lbh_run *run);

/* Open the state's report sink on path now (the start-up check of
 * --report; lbh_report.c). */
bh_status lbh_report_open_file(lua_State *L, const char *path, bh_err *err);

/* Serve the host's --listen socket in the current run (lbh_http.c). */
void lbh_http_start_host(lua_State *L);

#endif
