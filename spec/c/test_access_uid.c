/* Judging for another uid (access.h) and removing a stale socket on a
 * record owner's behalf (fsutil.h): the permission bits as the kernel
 * reads them, connecting only through what was checked, and removal
 * refused where the owner could not remove, allowed in the record's own
 * directory. The uid judged is nobody's (65534); the checks that need a
 * root-owned directory run as root only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access.h"
#include "stale.h"
#include "testutil.h"

enum { NOBODY = 65534 };

static struct stat mode_stat(mode_t mode, uid_t uid, gid_t gid) {
  struct stat st;
  memset(&st, 0, sizeof st);
  st.st_mode = mode;
  st.st_uid = uid;
  st.st_gid = gid;
  return st;
}

/* The class of the uid decides, not the most generous bits. */
static void test_mode_bits(void) {
  struct stat a = mode_stat(S_IFDIR | 0707, NOBODY, 0);
  CHECK(bh_access_mode_ok(NOBODY, &a, R_OK | W_OK | X_OK));
  a = mode_stat(S_IFDIR | 0077, NOBODY, 0); /* owner: no bits at all */
  CHECK(!bh_access_mode_ok(NOBODY, &a, X_OK));
  a = mode_stat(S_IFSOCK | 0600, 0, 0);
  CHECK(!bh_access_mode_ok(NOBODY, &a, W_OK));
  CHECK(bh_access_mode_ok(0, &a, W_OK)); /* root may */
  a = mode_stat(S_IFSOCK | 0602, 0, 0);
  CHECK(bh_access_mode_ok(NOBODY, &a, W_OK));
  /* the sticky rule: /tmp-like, someone else's entry */
  struct stat dir = mode_stat(S_IFDIR | 01777, 0, 0);
  struct stat theirs = mode_stat(S_IFSOCK | 0777, 1000, 1000);
  struct stat mine = mode_stat(S_IFSOCK | 0600, NOBODY, NOBODY);
  CHECK(!bh_access_may_unlink(NOBODY, &dir, &theirs));
  CHECK(bh_access_may_unlink(NOBODY, &dir, &mine));
  dir.st_mode = S_IFDIR | 0777;
  CHECK(bh_access_may_unlink(NOBODY, &dir, &theirs));
  dir.st_mode = S_IFDIR | 0755;
  CHECK(!bh_access_may_unlink(NOBODY, &dir, &mine));
}

/* A listening socket at path with mode; returns its descriptor. */
static int listener(const char *path, mode_t mode) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  (void)snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  CHECK(listen(fd, 4) == 0);
  CHECK(chmod(path, mode) == 0);
  return fd;
}

/* Connect through /proc/self/fd/FD of an O_PATH descriptor. */
static bool connect_via(int pfd) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  (void)snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d", pfd);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

/* bh_access_open_socket as the descriptor, or -1 with errno as err
 * carries it (and the status the one err holds). */
static int open_socket(uid_t uid, const char *path, bh_err *err) {
  int fd;
  bh_status st = bh_access_open_socket(uid, path, &fd, err);
  CHECK(st == BH_OK ? fd >= 0 : fd == -1 && st == err->code);
  if (st != BH_OK) errno = err->sys_errno;
  return fd;
}

static void test_open_socket(void) {
  char open_dir[256], vault[256], s1[300];
  bh_test_path(open_dir, sizeof open_dir, "open");
  bh_test_path(vault, sizeof vault, "vault-u");
  CHECK(chmod(bh_test_tmpdir(), 0755) == 0);
  CHECK(mkdir(open_dir, 0755) == 0 && mkdir(vault, 0700) == 0);
  (void)snprintf(s1, sizeof s1, "%s/world.sock", open_dir);
  int l1 = listener(s1, 0666);
  bh_err err;
  uid_t who = geteuid() == 0 ? NOBODY : geteuid() + 1; /* not us, not root */
  int pfd = open_socket(who, s1, &err);
  CHECK(pfd >= 0);
  if (pfd >= 0) {
    CHECK(connect_via(pfd)); /* what was checked is what is reached */
    close(pfd);
  }
  CHECK_INT(open_socket(who, "/nonexistent/x.sock", &err), -1);
  CHECK_CODE(err.code, BH_CONNECT, &err);
  CHECK_INT(errno, ENOENT);
  close(l1);
}

/* Root's sockets and directories, judged for nobody. */
static void test_open_root_sockets(void) {
  char open_dir[256], vault[256], s2[300], s3[300], link[300], via[400];
  bh_test_path(open_dir, sizeof open_dir, "open-r");
  bh_test_path(vault, sizeof vault, "vault");
  CHECK(chmod(bh_test_tmpdir(), 0755) == 0);
  CHECK(mkdir(open_dir, 0755) == 0 && mkdir(vault, 0700) == 0);
  (void)snprintf(s2, sizeof s2, "%s/private.sock", open_dir);
  (void)snprintf(s3, sizeof s3, "%s/in-vault.sock", vault);
  int l2 = listener(s2, 0600), l3 = listener(s3, 0666);
  bh_err err;
  CHECK_INT(open_socket(NOBODY, s2, &err), -1);
  CHECK_CODE(err.code, BH_OWNER_CANNOT_CONNECT, &err);
  CHECK(strstr(err.message, "may not write to this socket") != NULL);
  CHECK_INT(open_socket(NOBODY, s3, &err), -1);
  CHECK_CODE(err.code, BH_OWNER_CANNOT_CONNECT, &err);
  CHECK(strstr(err.message, "may not search directory vault") != NULL);
  /* a symlink to the vault from a directory anyone can read: judged
   * where it leads */
  (void)snprintf(link, sizeof link, "%s/to-vault", open_dir);
  CHECK(symlink(vault, link) == 0);
  (void)snprintf(via, sizeof via, "%s/in-vault.sock", link);
  CHECK_INT(open_socket(NOBODY, via, &err), -1);
  CHECK_CODE(err.code, BH_OWNER_CANNOT_CONNECT, &err);
  close(l2);
  close(l3);
}

/* A dead socket file at path (bound, closed). */
static void dead_socket(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  (void)snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  close(fd);
}

static void test_remove_as_owner(void) {
  char vault[256], rec[256], p1[300], p2[300], p3[300];
  bh_test_path(vault, sizeof vault, "vault2");
  bh_test_path(rec, sizeof rec, "rec");
  CHECK(mkdir(vault, 0700) == 0 && mkdir(rec, 0755) == 0);
  (void)snprintf(p1, sizeof p1, "%s/root.sock", vault);
  (void)snprintf(p2, sizeof p2, "%s/mine.sock", rec);
  (void)snprintf(p3, sizeof p3, "%s/sub/../root2.sock", rec);
  dead_socket(p1);
  dead_socket(p2);
  bh_stale_result r;
  bh_err err;
  bh_stale_opts o = {.has_owner = true, .owner = NOBODY, .within = NULL};
  CHECK_CODE(bh_fs_remove_stale_socket_as(p1, &o, &r, &err), BH_OK, &err);
  CHECK(r.forbidden && !r.removed);
  CHECK(strstr(r.reason, "uid 65534 may not reach its directory") != NULL);
  struct stat sb;
  CHECK(lstat(p1, &sb) == 0); /* still there */
  /* rec is root's 0755: nobody may not remove there either... */
  CHECK_CODE(bh_fs_remove_stale_socket_as(p2, &o, &r, &err), BH_OK, &err);
  CHECK(r.forbidden && !r.removed);
  CHECK(strstr(r.reason, "may not remove it") != NULL);
  /* ...unless it lies under the record's own directory */
  o.within = rec;
  CHECK_CODE(bh_fs_remove_stale_socket_as(p2, &o, &r, &err), BH_OK, &err);
  CHECK(r.removed && !r.forbidden);
  /* ".." never counts as under it */
  o.within = rec;
  char sub[300];
  (void)snprintf(sub, sizeof sub, "%s/sub", rec);
  CHECK(mkdir(sub, 0755) == 0);
  char real[300];
  (void)snprintf(real, sizeof real, "%s/root2.sock", rec);
  dead_socket(real);
  o.within = sub;
  CHECK_CODE(bh_fs_remove_stale_socket_as(p3, &o, &r, &err), BH_OK, &err);
  CHECK(r.forbidden && !r.removed);
  /* the owner's own writable directory: removed */
  CHECK(chown(rec, NOBODY, NOBODY) == 0);
  o.within = NULL;
  CHECK_CODE(bh_fs_remove_stale_socket_as(real, &o, &r, &err), BH_OK, &err);
  CHECK(r.removed && !r.forbidden);
}

int main(void) {
  RUN(test_mode_bits);
  RUN(test_open_socket);
  RUN_ROOT(test_open_root_sockets, "root's sockets and directories");
  RUN_ROOT(test_remove_as_owner, "root's directories, nobody's records");
  return bh_test_summary();
}
