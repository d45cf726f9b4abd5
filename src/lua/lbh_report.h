/* What the host's service needs of bh.report (lbh_report.c). */
#ifndef LBH_REPORT_H
#define LBH_REPORT_H

#include <lua.h>

#include "status.h"

/* Open the state's report sink on path now (the start-up check of
 * --report). */
bh_status lbh_report_open_file(lua_State *L, const char *path, bh_err *err);

#endif
