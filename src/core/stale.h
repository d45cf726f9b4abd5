/* Removing a stale socket file (design §1.11): a socket nothing accepts
 * on, left behind by a daemon that died, is removed only when it is
 * still that socket, through its directory's descriptor (fsutil.h: no
 * symbolic link followed on the way), and, for a record's owner, only
 * when that owner could have removed it (access.h). */
#ifndef BH_STALE_H
#define BH_STALE_H

#include <stdbool.h>
#include <sys/types.h>

#include "status.h"

/* Remove the socket file at path only if it is a socket, nothing accepts
 * on it, and it is still the same socket when removed; through the
 * parent's descriptor (a symlinked directory on the way is refused). */
typedef struct bh_stale_result {
  bool existed, is_socket, live, removed;
  bool forbidden;   /* left: the owner of the record could not remove it */
  char reason[160]; /* why forbidden */
  const char *kind; /* what existed (bh_file_kind), or NULL */
} bh_stale_result;
bh_status bh_fs_remove_stale_socket(const char *path, bh_stale_result *res,
                                    bh_err *err);

/* On whose behalf a stale socket is removed (design §1.11: a reaction acts
 * only on what the record's owner could have done). */
typedef struct bh_stale_opts {
  bool has_owner; /* remove only what owner could remove: search on every
                     directory of the path, write and search on its own
                     (the sticky bit: owning the socket or the directory);
                     else res->forbidden, nothing touched */
  uid_t owner;
  const char *within; /* ... unless the socket lies under this absolute
                         directory (the record's own); NULL: no such */
} bh_stale_opts;
bh_status bh_fs_remove_stale_socket_as(const char *path,
                                       const bh_stale_opts *opts,
                                       bh_stale_result *res, bh_err *err);

#endif
