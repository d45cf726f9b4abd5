/* Stale sockets removed (see stale.h). Above fsutil.c (the walk down
 * without following links) and access.c (what the record's owner may do). */
#include "stale.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "access.h"
#include "fdreserve.h"
#include "fsutil.h"
#include "sockio.h"

/* Does something accept on the socket name in dirfd (path names the same
 * socket)? 1 live, 0 refused (stale), -1 on another error (errno). The
 * connect goes through /proc/self/fd/DIRFD/NAME, the directory we hold;
 * only a name too long for that form is reached by path (a swapped
 * directory could then fool the test, never the removal, which stays on
 * dirfd). */
static int socket_live_at(int dirfd, const char *name, const char *path) {
  struct sockaddr_un sa;
  char via[sizeof sa.sun_path];
  int n = snprintf(via, sizeof via, "/proc/self/fd/%d/%s", dirfd, name);
  bool fits = n >= 0 && (size_t)n < sizeof via;
  if (!bh_sockaddr_un(&sa, fits ? via : path)) return -1; /* ENAMETOOLONG */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  int e = errno;
  (void)close(fd);
  if (rc == 0 || e == EAGAIN || e == EINPROGRESS) return 1;
  if (e == ECONNREFUSED) return 0;
  errno = e;
  return -1;
}

/* Is the directory of path (absolute) inside dir (absolute), judged on
 * the words alone? Each component of both is then a real directory (the
 * removal walks without following symbolic links), so words are enough;
 * a ".." anywhere makes it "no". */
static bool lies_under(const char *path, const char *dir) {
  if (path[0] != '/' || dir[0] != '/') return false;
  const char *p = path, *d = dir;
  for (;;) {
    while (*p == '/')
      p++;
    while (*d == '/')
      d++;
    size_t pn = strcspn(p, "/"), dn = strcspn(d, "/");
    if (dn == 0) break;              /* all of dir matched */
    if (p[pn] == '\0') return false; /* the leaf: dir is deeper */
    if ((dn == 2 && strncmp(d, "..", 2) == 0) ||
        (pn == 2 && strncmp(p, "..", 2) == 0))
      return false;
    bool dot_p = pn == 1 && p[0] == '.', dot_d = dn == 1 && d[0] == '.';
    if (dot_p || dot_d) { /* "." names the same directory: skip it */
      if (dot_p) p += pn;
      if (dot_d) d += dn;
      continue;
    }
    if (pn != dn || strncmp(p, d, pn) != 0) return false;
    p += pn;
    d += dn;
  }
  return strstr(p, "/../") == NULL && strncmp(p, "../", 3) != 0;
}

/* What the owner check of the walk below needs. */
typedef struct owner_ctx {
  uid_t uid;
  bool denied;
} owner_ctx;

static bool owner_may_search(const struct stat *st, const char *name,
                             void *arg) {
  owner_ctx *c = arg;
  (void)name;
  c->denied = !bh_access_mode_ok(c->uid, st, X_OK);
  return !c->denied;
}

bh_status bh_fs_remove_stale_socket_as(const char *path,
                                       const bh_stale_opts *opts,
                                       bh_stale_result *res, bh_err *err) {
  *res = (bh_stale_result){0};
  const char *leaf;
  bool check = opts != NULL && opts->has_owner &&
               !(opts->within != NULL && lies_under(path, opts->within));
  owner_ctx oc = {check ? opts->owner : 0, false};
  bh_err own;
  if (err == NULL) err = &own; /* its errno says "gone" below */
  int dirfd;
  bh_status st = bh_fs_open_parent_check(path, &dirfd, &leaf,
                                         check ? owner_may_search : NULL, &oc,
                                         BH_SYSTEM, err);
  if (st != BH_OK && oc.denied) {
    bh_err_clear(err);
    res->forbidden = true;
    (void)snprintf(res->reason, sizeof res->reason,
                   "uid %u may not reach its directory", (unsigned)opts->owner);
    return BH_OK;
  }
  if (st != BH_OK) {
    if (err->sys_errno != ENOENT) return st;
    bh_err_clear(err); /* its directory is gone: so is the socket */
    return BH_OK;
  }
  struct stat first, now, dir;
  if (fstatat(dirfd, leaf, &first, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT)
      st = bh_err_set(err, BH_SYSTEM, NULL, "stat %s: %s", path,
                      strerror(errno));
    goto end;
  }
  res->existed = true;
  res->kind = bh_file_kind(first.st_mode);
  res->is_socket = S_ISSOCK(first.st_mode);
  if (!res->is_socket) goto end;
  if (check && (fstat(dirfd, &dir) != 0 ||
                !bh_access_may_unlink(opts->owner, &dir, &first))) {
    res->forbidden = true;
    (void)snprintf(res->reason, sizeof res->reason,
                   "uid %u may not remove it (its directory: mode %03o, "
                   "owner uid %u)",
                   (unsigned)opts->owner, (unsigned)(dir.st_mode & 07777),
                   (unsigned)dir.st_uid);
    goto end;
  }
  int live = socket_live_at(dirfd, leaf, path);
  if (live < 0 && errno == ENOENT) goto end; /* vanished meanwhile */
  if (live < 0) {
    st = bh_err_set(err, BH_SYSTEM, NULL, "connect to %s: %s", path,
                    strerror(errno));
    goto end;
  }
  res->live = live == 1;
  if (res->live) goto end;
  /* Remove it only if it is still the socket found dead. */
  if (fstatat(dirfd, leaf, &now, AT_SYMLINK_NOFOLLOW) != 0 ||
      now.st_ino != first.st_ino || now.st_dev != first.st_dev ||
      !S_ISSOCK(now.st_mode))
    goto end;
  if (unlinkat(dirfd, leaf, 0) != 0 && errno != ENOENT) {
    st = bh_err_set(err, BH_SYSTEM, NULL, "unlink stale socket %s: %s", path,
                    strerror(errno));
    goto end;
  }
  res->removed = true;
end:
  (void)close(dirfd);
  bh_fd_reserve_refill();
  return st;
}

bh_status bh_fs_remove_stale_socket(const char *path, bh_stale_result *res,
                                    bh_err *err) {
  return bh_fs_remove_stale_socket_as(path, NULL, res, err);
}
