/* Permission checks on behalf of another uid (see access.h). */
#include "access.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fdreserve.h"
#include "fsutil.h"

enum { GROUPS_MAX = 64, CACHE_SLOTS = 16, CACHE_SECONDS = 60 };

/* The groups of one uid, as the user database said at `when`. */
typedef struct groups_of {
  uid_t uid;
  time_t when; /* 0: the slot is empty */
  int n;
  gid_t gids[GROUPS_MAX]; /* the primary group first */
} groups_of;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static groups_of cache[CACHE_SLOTS];

/* Look the groups of uid up in the user database (a uid it does not know
 * has none: only the "other" bits apply to it). */
static void lookup(uid_t uid, groups_of *g) {
  struct passwd pw, *res = NULL;
  char buf[4096];
  g->uid = uid;
  g->n = 0;
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) != 0 || res == NULL) return;
  int n = GROUPS_MAX;
  if (getgrouplist(pw.pw_name, pw.pw_gid, g->gids, &n) < 0) {
    g->gids[0] = pw.pw_gid; /* more than GROUPS_MAX: the primary at least */
    n = 1;
  }
  g->n = n;
}

/* Is gid one of uid's groups? */
static bool in_group(uid_t uid, gid_t gid) {
  time_t now = time(NULL);
  groups_of *slot = NULL, *oldest = &cache[0];
  (void)pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < CACHE_SLOTS; i++) {
    if (cache[i].when != 0 && cache[i].uid == uid &&
        now - cache[i].when < CACHE_SECONDS)
      slot = &cache[i];
    if (cache[i].when < oldest->when) oldest = &cache[i];
  }
  if (slot == NULL) {
    slot = oldest;
    lookup(uid, slot);
    slot->when = now != 0 ? now : 1;
  }
  bool found = false;
  for (int i = 0; i < slot->n && !found; i++)
    found = slot->gids[i] == gid;
  (void)pthread_mutex_unlock(&cache_lock);
  return found;
}

void bh_access_forget(void) {
  (void)pthread_mutex_lock(&cache_lock);
  memset(cache, 0, sizeof cache);
  (void)pthread_mutex_unlock(&cache_lock);
}

bool bh_access_mode_ok(uid_t uid, const struct stat *st, int want) {
  if (uid == 0) return true;
  mode_t m = st->st_mode;
  unsigned bits; /* rwx of the class uid falls in, as the kernel picks it */
  if (st->st_uid == uid)
    bits = (m >> 6) & 7;
  else if (in_group(uid, st->st_gid))
    bits = (m >> 3) & 7;
  else
    bits = m & 7;
  unsigned need = ((want & R_OK) ? 4u : 0u) | ((want & W_OK) ? 2u : 0u) |
                  ((want & X_OK) ? 1u : 0u);
  return (bits & need) == need;
}

bool bh_access_may_unlink(uid_t uid, const struct stat *dir,
                          const struct stat *entry) {
  if (uid == 0) return true;
  if (!bh_access_mode_ok(uid, dir, W_OK | X_OK)) return false;
  return !(dir->st_mode & S_ISVTX) || entry->st_uid == uid ||
         dir->st_uid == uid;
}

/* What the directory check below needs: whose search permission. */
typedef struct search_ctx {
  uid_t uid;
  const char *path;
  bh_err *err;
} search_ctx;

/* bh_fs_open_parent_check's test: may uid search the directory? */
static bool may_search(const struct stat *dir, const char *name, void *arg) {
  search_ctx *c = arg;
  if (bh_access_mode_ok(c->uid, dir, X_OK)) return true;
  bh_err_set(c->err, BH_OWNER_CANNOT_CONNECT, NULL,
             "%s: uid %u may not search directory %s (mode %03o, owner uid "
             "%u): it could not connect there itself",
             c->path, (unsigned)c->uid, name, (unsigned)(dir->st_mode & 0777),
             (unsigned)dir->st_uid);
  return false;
}

/* The socket at path (canonical: canon) for uid, checked once opened
 * (O_PATH) in dirfd as leaf: a socket uid may write to. */
static bh_status check_socket(uid_t uid, const char *path, int dirfd,
                              const char *leaf, int *fd, bh_err *err) {
  int sfd = bh_fd_openat(dirfd, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
  struct stat st;
  int e = sfd < 0 || fstat(sfd, &st) != 0 ? errno : 0;
  bh_status s = BH_OK;
  if (e != 0)
    s = bh_err_sys(err, BH_CONNECT, e, "connect to %s: %s", path, strerror(e));
  else if (!S_ISSOCK(st.st_mode)) /* ECONNREFUSED: as connect() says it */
    s = bh_err_sys(err, BH_CONNECT, ECONNREFUSED, "connect to %s: %s", path,
                   strerror(ECONNREFUSED));
  else if (!bh_access_mode_ok(uid, &st, W_OK))
    s = bh_err_sys(err, BH_OWNER_CANNOT_CONNECT, EACCES,
                   "%s: uid %u may not write to this socket (mode %03o, "
                   "owner uid %u): it could not connect itself",
                   path, (unsigned)uid, (unsigned)(st.st_mode & 0777),
                   (unsigned)st.st_uid);
  if (s == BH_OK)
    *fd = sfd;
  else if (sfd >= 0)
    (void)close(sfd);
  return s;
}

bh_status bh_access_open_socket(uid_t uid, const char *path, int *fd,
                                bh_err *err) {
  *fd = -1;
  char *canon = realpath(path, NULL);
  if (canon == NULL) {
    int e = errno;
    return bh_err_sys(err, BH_CONNECT, e, "connect to %s: %s", path,
                      strerror(e));
  }
  const char *leaf;
  int dirfd;
  /* The check reports into err through c; the walk too. */
  search_ctx c = {uid, path, err};
  bh_status s = bh_fs_open_parent_check(canon, &dirfd, &leaf, may_search, &c,
                                        BH_CONNECT, err);
  if (s == BH_OK) {
    s = check_socket(uid, path, dirfd, leaf, fd, err);
    (void)close(dirfd);
  }
  free(canon);
  return s;
}
