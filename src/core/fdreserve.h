/* A reserve of descriptors, so that what must always be able to open a
 * file or a directory (the walk of a cache root, a manifest read, the
 * report and metrics files) still can when the process's descriptor
 * table is full: another user can fill it from outside (idle HTTP
 * connections, a flood of probes' peers), and a scan that cannot open
 * anything must not look like a scan that found nothing.
 *
 * bh_fd_reserve_setup raises RLIMIT_NOFILE's soft limit to the hard one
 * and sets aside a few descriptors (of /dev/null). An open that fails
 * with EMFILE or ENFILE gives one of them back and tries again
 * (bh_fd_openat); the reserve is filled again when the operation that
 * used it is over (bh_fd_reserve_refill). Process-wide, thread-safe (the
 * manifest worker opens files too). Without setup there is no reserve and
 * bh_fd_openat is openat. Knows nothing of Lua. */
#ifndef BH_FDRESERVE_H
#define BH_FDRESERVE_H

#include <stdbool.h>
#include <sys/types.h>

#include "status.h"

/* Descriptors set aside by default: a walk holds one per directory level
 * open (the default depth is 8), a manifest read two, a metrics write two,
 * the report one. */
#define BH_FD_RESERVE_DEFAULT 16

/* Raise the soft RLIMIT_NOFILE to the hard limit (BH_SYSTEM with the errno
 * of getrlimit or setrlimit when it cannot) and set aside n descriptors
 * (as many as can be: see bh_fd_reserve_held). Call once, at start-up,
 * before anything else opens. */
bh_status bh_fd_reserve_setup(unsigned n, bh_err *err);

/* How many descriptors the reserve holds now. */
unsigned bh_fd_reserve_held(void);

/* openat, retried with a descriptor of the reserve given back each time
 * it fails for want of descriptors (EMFILE/ENFILE), until it opens or the
 * reserve is empty. */
int bh_fd_openat(int dirfd, const char *path, int flags, mode_t mode);

/* Take back, up to the size set up, the descriptors given away. Call when
 * the descriptors an operation used are closed again. */
void bh_fd_reserve_refill(void);

/* Close the reserve (tests; the end of the process). */
void bh_fd_reserve_close(void);

#endif
