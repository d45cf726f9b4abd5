/* Every user's central registry (design §1.10), for a service running as
 * root that checks the daemons of all users (manifests.lua --all-users):
 * HOME/.local/share/running-process/manifests for every user of the
 * system (getpwent_r: /etc/passwd and whatever NSS adds) whose home is a
 * directory that user owns. Such a registry is then opened and checked as
 * private to that user (bh_manifest_registry_open with its uid): the
 * owner of a registry is the user whose home it is in, never whoever
 * happens to own the directory. A home several users share counts once,
 * for the first of them that owns it; a home its user does not own (the
 * system accounts' /usr/sbin, /nonexistent, /) holds no registry of
 * theirs. A user's own RUNNING_PROCESS_MANIFEST_DIR or XDG_DATA_HOME is in
 * that user's environment and cannot be known here: the default place
 * is. Knows nothing of Lua. */
#ifndef BH_USERS_H
#define BH_USERS_H

#include <stddef.h>
#include <sys/types.h>

#include "status.h"

/* Where a user's central registry is under the home directory. */
#define BH_USER_REGISTRY_SUBDIR ".local/share/running-process/manifests"

typedef struct bh_user_registry {
  char *dir;  /* HOME/BH_USER_REGISTRY_SUBDIR */
  char *user; /* the login name */
  uid_t uid;  /* the user, the owner its registry must have */
} bh_user_registry;

typedef struct bh_user_registries {
  bh_user_registry *v;
  size_t count;
} bh_user_registries;

/* The registries of every user whose home is a directory of their own, in
 * the order of the user database. The users are read with getpwent_r,
 * which shares one cursor per process: call it from one thread at a time
 * (the run's worker). Errors: system (out of memory, the user database
 * unreadable). */
bh_status bh_user_registries_list(bh_user_registries *out, bh_err *err);

/* Free what out holds (not out). Idempotent. */
void bh_user_registries_free(bh_user_registries *out);

#endif
