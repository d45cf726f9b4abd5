/* What the host's service needs of the HTTP endpoint (lbh_http.c). */
#ifndef LBH_HTTP_H
#define LBH_HTTP_H

#include "lbh_run.h"

/* Serve fd (a listening socket, taken over) at address in run, as the
 * host's --listen server: bh.metrics.serve{probe = fn} without listen
 * hands fn to it. Raises when the server cannot be made. */
void lbh_http_start_host(lbh_run *run, int fd, const char *address);

#endif
