/* Files as a reaction touches them (design §1.11, src/core/fsutil.h):
 * paths reached through directory descriptors without following a
 * symlink anywhere, regular files only and never a blocking open, atomic
 * replaces that keep owner and mode without set-id bits, and the
 * compare-before-replace that leaves a record rewritten meanwhile alone,
 * also when a clean-up races a daemon's rewrite (a real second process,
 * stopped by the test shim just before its rename). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "manifest_helpers.h"
#include "stale.h"

enum { NOBODY = 65534 };

static char *tpath(const char *name) {
  static char bufs[8][256];
  static int next;
  char *b = bufs[next++ % 8];
  return bh_test_path(b, 256, name);
}

/* dir/real holds a file and a stale socket; dir/link -> real. */
static void make_tree(const char *dir) {
  char p[300];
  CHECK_INT(mkdir(dir, 0755), 0);
  snprintf(p, sizeof p, "%s/real", dir);
  CHECK_INT(mkdir(p, 0755), 0);
  snprintf(p, sizeof p, "%s/real/f", dir);
  mh_write_bytes(p, "data", 4);
  snprintf(p, sizeof p, "%s/link", dir);
  CHECK_INT(symlink("real", p), 0);
}

/* bh_fs_open_parent as the descriptor or -1 (the status, when not BH_OK,
 * is the one err holds). */
static int open_parent(const char *path, const char **leaf, bh_status code,
                       bh_err *err) {
  int fd;
  bh_status st = bh_fs_open_parent(path, &fd, leaf, code, err);
  CHECK(st == BH_OK ? fd >= 0 : fd == -1 && st == err->code);
  return fd;
}

static void test_open_parent(void) {
  const char *dir = tpath("tree");
  char p[300];
  const char *leaf = NULL;
  bh_err err;
  make_tree(dir);
  snprintf(p, sizeof p, "%s/real/f", dir);
  int fd = open_parent(p, &leaf, BH_MANIFEST_IO, &err);
  CHECK(fd >= 0);
  CHECK_STR(leaf, "f");
  if (fd >= 0) close(fd);
  snprintf(p, sizeof p, "%s//./real/./f", dir);
  fd = open_parent(p, &leaf, BH_MANIFEST_IO, &err);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  /* A symlink anywhere on the way is refused, naming it. */
  snprintf(p, sizeof p, "%s/link/f", dir);
  CHECK_INT(open_parent(p, &leaf, BH_MANIFEST_IO, &err), -1);
  CHECK_CODE(err.code, BH_MANIFEST_IO, &err);
  CHECK(strstr(err.message, "\"link\" is a symbolic link") != NULL);
  char up[256];
  snprintf(up, sizeof up, "%s/uplink", dir);
  CHECK_INT(symlink(dir, up), 0);
  snprintf(p, sizeof p, "%s/real/f", up);
  CHECK_INT(open_parent(p, &leaf, BH_SYSTEM, &err), -1);
  CHECK_CODE(err.code, BH_SYSTEM, &err);
  /* Missing or not a directory; nothing naming a file. */
  snprintf(p, sizeof p, "%s/none/f", dir);
  CHECK_INT(open_parent(p, &leaf, BH_MANIFEST_IO, &err), -1);
  CHECK(strstr(err.message, strerror(ENOENT)) != NULL);
  snprintf(p, sizeof p, "%s/real/f/g", dir);
  CHECK_INT(open_parent(p, &leaf, BH_MANIFEST_IO, &err), -1);
  static const char *const bad[] = {"/", "/tmp/", "/tmp/.", "/tmp/..", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_INT(open_parent(bad[i], &leaf, BH_MANIFEST_IO, &err), -1);
  /* A relative path starts at the working directory. */
  char cwd[256];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK_INT(chdir(dir), 0);
  fd = open_parent("real/f", &leaf, BH_MANIFEST_IO, &err);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  fd = open_parent("f", &leaf, BH_MANIFEST_IO, &err);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  CHECK_INT(open_parent("link/f", &leaf, BH_MANIFEST_IO, &err), -1);
  CHECK_INT(chdir(cwd), 0);
}

/* Every user of the walk refuses the symlinked directory: reading a file
 * or a manifest, writing, clearing, removing a stale socket. */
static void test_users_refuse_symlinks(void) {
  const char *dir = tpath("users");
  char p[300], m[300];
  bh_err err;
  make_tree(dir);
  snprintf(m, sizeof m, "%s/real/" BH_MANIFEST_NAME, dir);
  mh_copy_fixture("rp41/manifest-with-daemon.pb", m);
  size_t n = 0;
  uint8_t *orig = mh_read_bytes(m, &n), *buf = NULL;
  size_t len = 0;
  bool missing = true;
  snprintf(p, sizeof p, "%s/link/f", dir);
  CHECK_CODE(
      bh_fs_read_file(p, 100, &buf, &len, NULL, &missing, BH_SYSTEM, &err),
      BH_SYSTEM, &err);
  CHECK(!missing);
  CHECK_CODE(bh_fs_write_atomic(p, "x", 1, true, 0644, BH_SYSTEM, &err),
             BH_SYSTEM, &err);
  snprintf(p, sizeof p, "%s/real/f", dir);
  CHECK(mh_file_is(p, (const uint8_t *)"data", 4));
  snprintf(p, sizeof p, "%s/link/" BH_MANIFEST_NAME, dir);
  bh_manifest got;
  CHECK_CODE(bh_manifest_read(p, true, &got, &err), BH_MANIFEST_IO, &err);
  bh_clear_outcome out;
  CHECK_CODE(bh_manifest_clear_daemon(p, NULL, &out, &err), BH_MANIFEST_IO,
             &err);
  bh_manifest w;
  mh_manifest(&w, "svc", 1);
  CHECK_CODE(bh_manifest_write(p, &w, &err), BH_MANIFEST_IO, &err);
  bh_manifest_clear(&w);
  CHECK(mh_file_is(m, orig, n));
  /* A stale socket behind the link stays. */
  snprintf(p, sizeof p, "%s/real/s", dir);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  CHECK(strlen(p) < sizeof sa.sun_path);
  memcpy(sa.sun_path, p, strlen(p) + 1);
  CHECK_INT(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
  close(s);
  snprintf(p, sizeof p, "%s/link/s", dir);
  bh_stale_result sr;
  CHECK_CODE(bh_fs_remove_stale_socket(p, &sr, &err), BH_SYSTEM, &err);
  CHECK(!sr.removed);
  struct stat sb;
  CHECK(stat(sa.sun_path, &sb) == 0 && S_ISSOCK(sb.st_mode));
  snprintf(p, sizeof p, "%s/real/s", dir);
  CHECK_CODE(bh_fs_remove_stale_socket(p, &sr, &err), BH_OK, &err);
  CHECK(sr.removed);
  /* A socket whose directory is gone is gone too, and a symlink on the
   * way is refused, whether the caller asks for the message or not. */
  snprintf(p, sizeof p, "%s/gone/s", dir);
  CHECK_CODE(bh_fs_remove_stale_socket(p, &sr, &err), BH_OK, &err);
  CHECK(!sr.existed);
  CHECK_CODE(bh_fs_remove_stale_socket(p, &sr, NULL), BH_OK, NULL);
  CHECK(!sr.existed);
  snprintf(p, sizeof p, "%s/link/s", dir);
  CHECK_CODE(bh_fs_remove_stale_socket(p, &sr, NULL), BH_SYSTEM, NULL);
  free(orig);
}

/* The final component is never followed either. */
static void test_final_symlink(void) {
  const char *dir = tpath("final");
  char p[300], f[300];
  bh_err err;
  make_tree(dir);
  snprintf(f, sizeof f, "%s/real/f", dir);
  snprintf(p, sizeof p, "%s/real/ln", dir);
  CHECK_INT(symlink("f", p), 0);
  uint8_t *buf = NULL;
  size_t len = 0;
  CHECK_CODE(
      bh_fs_read_file(p, 100, &buf, &len, NULL, NULL, BH_MANIFEST_IO, &err),
      BH_MANIFEST_IO, &err);
  CHECK(strstr(err.message, "symbolic link") != NULL);
  CHECK_CODE(bh_fs_write_atomic(p, "x", 1, true, 0644, BH_SYSTEM, &err),
             BH_SYSTEM, &err);
  CHECK(strstr(err.message, "symbolic link") != NULL);
  struct stat sb;
  CHECK(lstat(p, &sb) == 0 && S_ISLNK(sb.st_mode));
  CHECK(mh_file_is(f, (const uint8_t *)"data", 4));
}

/* A FIFO (or a device) where a file should be fails at once. Checked in a
 * child under an alarm, so a regression fails instead of hanging. */
static void test_fifo_refused(void) {
  const char *fifo = tpath("fifo");
  CHECK_INT(mkfifo(fifo, 0600), 0);
  pid_t child = fork();
  if (child == 0) {
    alarm(10);
    uint8_t *buf = NULL;
    size_t len = 0;
    bh_err err;
    bh_manifest m;
    int bad = 0;
    bad += bh_fs_read_file(fifo, 100, &buf, &len, NULL, NULL, BH_SYSTEM,
                           &err) != BH_SYSTEM;
    bad += strstr(err.message, "a FIFO") == NULL;
    bad += bh_manifest_read(fifo, false, &m, &err) != BH_MANIFEST_IO;
    bad += bh_fs_read_file("/dev/zero", 100, &buf, &len, NULL, NULL, BH_SYSTEM,
                           &err) != BH_SYSTEM;
    _exit(bad);
  }
  double t0 = bh_test_now();
  CHECK_INT(mh_wait_exit(child), 0);
  CHECK(bh_test_now() - t0 < 5);
}

static void test_read_limits(void) {
  const char *f = tpath("limits");
  uint8_t *buf = NULL;
  size_t len = 0;
  struct stat st;
  bool missing = false;
  bh_err err;
  mh_write_bytes(f, "0123456789", 10);
  CHECK_CODE(bh_fs_read_file(f, 10, &buf, &len, &st, &missing, BH_SYSTEM, &err),
             BH_OK, &err);
  CHECK(len == 10 && memcmp(buf, "0123456789", 10) == 0 && buf[10] == '\0');
  CHECK_INT(st.st_size, 10);
  free(buf);
  CHECK_CODE(bh_fs_read_file(f, 9, &buf, &len, NULL, NULL, BH_SYSTEM, &err),
             BH_SYSTEM, &err);
  CHECK_CODE(bh_fs_read_file(tpath("nothing"), 9, &buf, &len, NULL, &missing,
                             BH_MANIFEST_IO, &err),
             BH_MANIFEST_IO, &err);
  CHECK(missing);
  CHECK_CODE(bh_fs_read_file(bh_test_tmpdir(), 9, &buf, &len, NULL, &missing,
                             BH_MANIFEST_IO, &err),
             BH_MANIFEST_IO, &err);
  CHECK(!missing && strstr(err.message, "a directory") != NULL);
}

/* A rewrite keeps the owner and the permission bits of the file it
 * replaces, without set-id and sticky bits; a new file gets the mode
 * asked for, whatever the umask. */
static void test_replace_keeps_owner_and_mode(void) {
  const char *f = tpath("owned");
  struct stat sb;
  bh_err err;
  mh_write_bytes(f, "old", 3);
  CHECK_INT(chmod(f, 06751), 0);
  CHECK_CODE(bh_fs_write_atomic(f, "new", 3, true, 0644, BH_SYSTEM, &err),
             BH_OK, &err);
  CHECK(mh_file_is(f, (const uint8_t *)"new", 3));
  CHECK_INT(stat(f, &sb), 0);
  CHECK_INT(sb.st_mode & 07777, 0751);
  /* Not kept when not asked: the mode given, our owner. */
  CHECK_CODE(bh_fs_write_atomic(f, "newer", 5, false, 0600, BH_SYSTEM, &err),
             BH_OK, &err);
  CHECK_INT(stat(f, &sb), 0);
  CHECK_INT(sb.st_mode & 07777, 0600);
  CHECK_INT(sb.st_uid, geteuid());
  mode_t old = umask(077);
  const char *g = tpath("fresh");
  CHECK_CODE(bh_fs_write_atomic(g, "x", 1, true, 0644, BH_SYSTEM, &err), BH_OK,
             &err);
  umask(old);
  CHECK(stat(g, &sb) == 0 && (sb.st_mode & 07777) == 0644);
  /* The set-id bits of the mode asked for are dropped too. */
  CHECK_CODE(bh_fs_write_atomic(g, "y", 1, false, 04755, BH_SYSTEM, &err),
             BH_OK, &err);
  CHECK(stat(g, &sb) == 0 && (sb.st_mode & 07777) == 0755);
}

/* Another user's file stays that user's when rewritten. */
static void test_replace_keeps_other_owner(void) {
  const char *f = tpath("nobodys");
  struct stat sb;
  bh_err err;
  mh_write_bytes(f, "old", 3);
  CHECK_INT(chown(f, NOBODY, NOBODY), 0);
  CHECK_INT(chmod(f, 0640), 0);
  CHECK_CODE(bh_fs_write_atomic(f, "new", 3, true, 0644, BH_SYSTEM, &err),
             BH_OK, &err);
  CHECK(mh_file_is(f, (const uint8_t *)"new", 3));
  CHECK_INT(stat(f, &sb), 0);
  CHECK_INT(sb.st_mode & 07777, 0640);
  CHECK_INT(sb.st_uid, NOBODY);
  CHECK_INT(sb.st_gid, NOBODY);
}

/* The same through a manifest rewrite: a user's 0600 manifest stays the
 * user's after clear_daemon and after bh_manifest_write. */
static void test_manifest_rewrite_keeps_owner(void) {
  const char *f = tpath("users.pb");
  struct stat sb;
  bh_err err;
  mh_copy_fixture("rplatest/manifest-with-daemon.pb", f);
  CHECK_INT(chown(f, NOBODY, NOBODY), 0);
  CHECK_INT(chmod(f, 04600), 0);
  bh_clear_outcome out;
  CHECK_CODE(bh_manifest_clear_daemon(f, NULL, &out, &err), BH_OK, &err);
  CHECK_INT(out, BH_CLEAR_DONE);
  CHECK_INT(stat(f, &sb), 0);
  CHECK_INT(sb.st_uid, NOBODY);
  CHECK_INT(sb.st_gid, NOBODY);
  CHECK_INT(sb.st_mode & 07777, 0600);
  bh_manifest m;
  mh_manifest(&m, "svc", 2);
  CHECK_INT(chmod(f, 02640), 0);
  CHECK_CODE(bh_manifest_write(f, &m, &err), BH_OK, &err);
  CHECK_INT(stat(f, &sb), 0);
  CHECK_INT(sb.st_uid, NOBODY);
  CHECK_INT(sb.st_mode & 07777, 0640);
  bh_manifest_clear(&m);
}

/* Count the temp files (".NAME.tmp.*") left in the test directory. */
static int temp_files(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "exit $(ls -A %s | grep -c '\\.tmp\\.')",
           bh_test_tmpdir());
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* bh_fs_replace_at with an expectation: replaced while the file is what
 * was read; left alone (changed) when it was rewritten in place, replaced
 * by another file, or removed since. */
static void test_compare_before_replace(void) {
  const char *f = tpath("cmp");
  char other[300];
  snprintf(other, sizeof other, "%s.new", f);
  bh_err err;
  int dirfd = open(bh_test_tmpdir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat was;
  bool changed = true;
  for (int how = 0; how < 4; how++) {
    mh_write_bytes(f, "read", 4);
    CHECK_INT(stat(f, &was), 0);
    if (how == 1) {
      struct timespec t[2] = {{0, UTIME_OMIT}, {1, 0}};
      mh_write_bytes(f, "daem", 4); /* in place: same inode and size */
      CHECK_INT(utimensat(AT_FDCWD, f, t, 0), 0);
    } else if (how == 2) {
      mh_write_bytes(other, "daemon", 6);
      CHECK_INT(rename(other, f), 0);
    } else if (how == 3) {
      CHECK_INT(unlink(f), 0);
    }
    bh_fs_replace_opts o = {.expect = &was, .keep_existing = true, .mode = 0};
    CHECK_CODE(bh_fs_replace_at(dirfd, "cmp", "ours", 4, &o, &changed,
                                BH_SYSTEM, &err),
               BH_OK, &err);
    CHECK_INT(changed, how != 0);
    if (how == 0) CHECK(mh_file_is(f, (const uint8_t *)"ours", 4));
    if (how == 1) CHECK(mh_file_is(f, (const uint8_t *)"daem", 4));
    if (how == 2) CHECK(mh_file_is(f, (const uint8_t *)"daemon", 6));
    if (how == 3) CHECK(access(f, F_OK) != 0);
    CHECK_INT(temp_files(), 0);
  }
  close(dirfd);
}

/* The child of test_clear_races_rewrite: clear the daemon of path and exit
 * with the outcome (10 + bh_clear_outcome), 1 on failure. */
static int child_clear(const char *path) {
  bh_clear_outcome out = BH_CLEAR_NONE;
  bh_err err;
  if (bh_manifest_clear_daemon(path, NULL, &out, &err) != BH_OK) {
    fprintf(stderr, "clear: %s\n", err.message);
    return 1;
  }
  return 10 + (int)out;
}

/* A daemon rewrites its record while root's clear_daemon is between its
 * read and its rename (the shim stops it there): the rewrite survives,
 * whether it came as a new file (renamed over) or in place, and the
 * clean-up says the record changed. Unraced, the clean-up is done. */
static void test_clear_races_rewrite(void) {
  const char *f = tpath("raced.pb");
  char *argv[] = {"test_fsutil_paths", "clear", (char *)f, NULL};
  for (int how = 0; how < 3; how++) {
    mh_copy_fixture("rp41/manifest-with-daemon.pb", f);
    pid_t pid = mh_spawn_shimmed(argv, how == 2 ? 0 : 1);
    if (how < 2) CHECK(mh_wait_stopped(pid));
    size_t n = 0;
    uint8_t *fresh = mh_fixture("rplatest/manifest-with-daemon.pb", &n);
    if (how == 0) {
      bh_manifest m;
      bh_err err;
      CHECK_CODE(bh_manifest_decode(fresh, n, true, &m, &err), BH_OK, &err);
      CHECK_CODE(bh_manifest_write(f, &m, &err), BH_OK, &err);
      bh_manifest_clear(&m);
    } else if (how == 1) {
      int fd = open(f, O_WRONLY | O_TRUNC | O_CLOEXEC);
      CHECK(fd >= 0);
      CHECK_INT(bh_fs_write_all(fd, fresh, n, f, NULL), BH_OK);
      close(fd);
    }
    if (how < 2) CHECK_INT(kill(pid, SIGCONT), 0);
    int code = mh_wait_exit(pid);
    CHECK_INT(code, 10 + (how == 2 ? BH_CLEAR_DONE : BH_CLEAR_CHANGED));
    if (how < 2) CHECK(mh_file_is(f, fresh, n));
    free(fresh);
    size_t cn = 0;
    uint8_t *cleared = mh_fixture("rp41/manifest-cleared.pb", &cn);
    if (how == 2) CHECK(mh_file_is(f, cleared, cn));
    free(cleared);
    CHECK_INT(temp_files(), 0);
  }
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "clear") == 0) return child_clear(argv[2]);
  RUN(test_open_parent);
  RUN(test_users_refuse_symlinks);
  RUN(test_final_symlink);
  RUN(test_fifo_refused);
  RUN(test_read_limits);
  RUN(test_replace_keeps_owner_and_mode);
  RUN_ROOT(test_replace_keeps_other_owner, "chown to another uid");
  RUN_ROOT(test_manifest_rewrite_keeps_owner, "chown to another uid");
  RUN(test_compare_before_replace);
  RUN(test_clear_races_rewrite);
  return bh_test_summary();
}
