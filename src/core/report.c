/* The report sink (report.h): open through directory descriptors with
 * O_NOFOLLOW and a fixed mode, append whole lines, reopen after
 * rotation. */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

void bh_report_sink_init(bh_report_sink *s) {
  s->path = NULL;
  s->leaf = NULL;
  s->fd = -1;
  s->dirfd = -1;
  s->dev = 0;
  s->ino = 0;
}

void bh_report_sink_close(bh_report_sink *s) {
  if (s->fd >= 0) (void)close(s->fd);
  if (s->dirfd >= 0) (void)close(s->dirfd);
  free(s->path);
  bh_report_sink_init(s);
}

static bh_status fail(bh_err *err, const char *path, const char *why) {
  return bh_err_set(err, BH_SYSTEM, NULL, "report file %s: %s", path, why);
}

/* Open name in dirfd for append without following a symlink; a file we
 * create gets BH_REPORT_MODE exactly (fchmod: the umask cannot change
 * it). O_NONBLOCK so that a FIFO planted there cannot block the open;
 * the type check below then refuses it. Returns the fd or -1 (errno). */
static int open_append(int dirfd, const char *name) {
  const int flags =
      O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  for (int tries = 0; tries < 3; tries++) {
    int fd = openat(dirfd, name, flags | O_CREAT | O_EXCL, BH_REPORT_MODE);
    if (fd >= 0) {
      if (fchmod(fd, BH_REPORT_MODE) == 0) return fd;
      int e = errno;
      (void)close(fd);
      errno = e;
      return -1;
    }
    if (errno != EEXIST) return -1;
    fd = openat(dirfd, name, flags);
    if (fd >= 0 || errno != ENOENT) return fd; /* ENOENT: removed, retry */
  }
  return -1;
}

/* The fd as a usable report file: a regular file or a character device,
 * blocking again (a full disk must not turn into EAGAIN). */
static bool usable(int fd, struct stat *sb, const char **why) {
  int fl;
  if (fstat(fd, sb) != 0) {
    *why = strerror(errno);
    return false;
  }
  if (!S_ISREG(sb->st_mode) && !S_ISCHR(sb->st_mode)) {
    *why = "not a regular file: refused";
    return false;
  }
  if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK)) {
    *why = strerror(errno);
    return false;
  }
  return true;
}

bh_status bh_report_sink_open(bh_report_sink *s, const char *path,
                              bh_err *err) {
  char *copy = strdup(path);
  if (copy == NULL) return fail(err, path, "out of memory");
  bh_report_sink_close(s);
  /* The directory is reached without following a symlink on the way,
   * from / down, as the metrics file's: a directory on the path that
   * another user replaced by a symlink (to a root-only directory) is
   * refused, never followed. */
  const char *leaf;
  bh_err derr;
  int dirfd;
  if (bh_fs_open_parent(copy, &dirfd, &leaf, BH_SYSTEM, &derr) != BH_OK) {
    /* a missing directory is said as open(2) says it */
    bh_status st =
        derr.sys_errno == ENOENT
            ? fail(err, path, strerror(ENOENT))
            : bh_err_set(err, BH_SYSTEM, NULL, "report file %s", derr.message);
    free(copy);
    return st;
  }
  int fd = open_append(dirfd, leaf);
  if (fd < 0) {
    bh_status st =
        fail(err, path,
             errno == ELOOP ? "is a symbolic link: refused" : strerror(errno));
    (void)close(dirfd);
    free(copy);
    return st;
  }
  struct stat sb;
  const char *why = NULL;
  if (!usable(fd, &sb, &why)) {
    bh_status st = fail(err, path, why);
    (void)close(fd);
    (void)close(dirfd);
    free(copy);
    return st;
  }
  s->path = copy;
  s->leaf = leaf;
  s->fd = fd;
  s->dirfd = dirfd;
  s->dev = sb.st_dev;
  s->ino = sb.st_ino;
  return BH_OK;
}

bh_status bh_report_sink_reopen(bh_report_sink *s, bh_err *err) {
  if (s->path == NULL) return BH_OK;
  char *path = s->path;
  s->path = NULL; /* keep it alive across the close inside open */
  bh_status st = bh_report_sink_open(s, path, err);
  free(path);
  return st;
}

/* Is the file open now still the one at path (not rotated away)? Asked
 * of the directory held since the open (fstatat, not following): a
 * symlink put in the file's place is another file, and its open is
 * refused; a directory moved away and replaced takes the file with it,
 * so the held one is still current until a SIGHUP walks the path again. */
static bool current(const bh_report_sink *s, const char *path) {
  struct stat sb;
  if (s->fd < 0 || s->path == NULL || strcmp(s->path, path) != 0) return false;
  return fstatat(s->dirfd, s->leaf, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
         sb.st_dev == s->dev && sb.st_ino == s->ino;
}

bh_status bh_report_sink_write(bh_report_sink *s, const char *path,
                               const char *buf, size_t len, bh_err *err) {
  if (!current(s, path)) {
    bh_status st = bh_report_sink_open(s, path, err);
    if (st != BH_OK) return st;
  }
  char what[BH_ERR_MESSAGE_MAX];
  (void)snprintf(what, sizeof what, "report %s", path);
  return bh_fs_write_all(s->fd, buf, len, what, err);
}
