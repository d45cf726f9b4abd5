/* What another user could do, judged for them by a privileged process
 * (design §1.11: a reaction acts only on what the record's owner could
 * reach). A service running as root probes and cleans up records that
 * any user can write; a record must not make it connect to, or remove, a
 * socket its owner could not: a root-only socket in a root-only directory
 * is out of reach of a record written by `nobody`.
 *
 * Judged from the permission bits, the owner and the group of each file
 * and directory against the uid, its primary group and its supplementary
 * groups (the user database, cached for a minute): what the kernel would
 * decide for a process of that user without capabilities. POSIX ACLs are
 * not read: a user an ACL grants more than the bits is judged by the
 * bits (refused: the safe side), one an ACL denies what the bits grant is
 * judged by the bits too (docs/hostile-peers.md). uid 0 may do anything.
 * Knows nothing of Lua. */
#ifndef BH_ACCESS_H
#define BH_ACCESS_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "status.h"

/* May uid read (R_OK), write (W_OK) and/or search or execute (X_OK) the
 * file described by st (all of want)? */
bool bh_access_mode_ok(uid_t uid, const struct stat *st, int want);

/* May uid remove the entry (entry) from the directory (dir): write and
 * search on dir, and with the sticky bit, owning the entry or dir. */
bool bh_access_may_unlink(uid_t uid, const struct stat *dir,
                          const struct stat *entry);

/* A descriptor (O_PATH, into *fd) of the socket at path, reached as uid
 * could reach it: path canonicalized (realpath, as connect would resolve
 * it), then every directory of the canonical path opened without
 * following symbolic links and required to grant uid search permission,
 * the socket required to be a socket uid may write (connect to).
 * Connecting to /proc/self/fd/N of the descriptor reaches exactly what
 * was checked, whatever is renamed meanwhile. Else *fd is -1 and err
 * says owner_cannot_connect when uid could not (errno EACCES), connect
 * when the path does not resolve to a socket at all (the errno as
 * connect would set it: ENOENT, ENOTDIR, ECONNREFUSED for what is no
 * socket). */
bh_status bh_access_open_socket(uid_t uid, const char *path, int *fd,
                                bh_err *err);

/* Forget the cached groups (tests that change the user database). */
void bh_access_forget(void);

#endif
