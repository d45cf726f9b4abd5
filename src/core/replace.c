/* Atomic publish with a fixed mode (replace.h), every step through the
 * directory's descriptor so the checked directory is the one written. */
#include "replace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"

static bh_status sys_err(bh_err *err, const char *what, const char *path,
                         int e) {
  return bh_err_set(err, BH_SYSTEM, NULL, "%s %s: %s", what, path, strerror(e));
}

/* Open path's directory; *base points into path at the last component. */
static int open_dir(const char *path, const char **base, bh_err *err) {
  const char *slash = strrchr(path, '/');
  *base = slash ? slash + 1 : path;
  if (**base == '\0' || strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0) {
    bh_err_set(err, BH_SYSTEM, NULL, "%s: not a file name", path);
    return -1;
  }
  char *dir = slash == NULL   ? strdup(".")
              : slash == path ? strdup("/")
                              : strndup(path, (size_t)(slash - path));
  if (dir == NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
    return -1;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) sys_err(err, "open directory", dir, errno);
  free(dir);
  return dfd;
}

/* What is at base now must be nothing or a regular file. */
static bh_status check_target(int dfd, const char *base, const char *path,
                              bh_err *err) {
  struct stat sb;
  if (fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT ? BH_OK : sys_err(err, "stat", path, errno);
  if (S_ISLNK(sb.st_mode))
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "%s is a symbolic link: refused (not followed)", path);
  if (!S_ISREG(sb.st_mode))
    return bh_err_set(err, BH_SYSTEM, NULL, "%s is not a regular file", path);
  return BH_OK;
}

/* Create the temp file next to base: a random suffix, O_EXCL|O_NOFOLLOW
 * so nothing already there (a planted link) is ever opened. */
static int create_temp(int dfd, const char *base, char *tmp, size_t cap,
                       bh_err *err) {
  for (int tries = 0; tries < 16; tries++) {
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
      sys_err(err, "random name for", base, errno);
      return -1;
    }
    int n = snprintf(tmp, cap, "%s.tmp.%02x%02x%02x%02x%02x%02x", base, r[0],
                     r[1], r[2], r[3], r[4], r[5]);
    if (n < 0 || (size_t)n >= cap) {
      bh_err_set(err, BH_SYSTEM, NULL, "%s: name too long", base);
      return -1;
    }
    int fd = openat(dfd, tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0 || errno != EEXIST) {
      if (fd < 0) sys_err(err, "create temp file", tmp, errno);
      return fd;
    }
  }
  bh_err_set(err, BH_SYSTEM, NULL, "create temp file for %s: no free name",
             base);
  return -1;
}

/* Fill the temp file: exact mode, all bytes, on disk. */
static bh_status fill_temp(int fd, const char *tmp, const void *buf, size_t len,
                           mode_t mode, bh_err *err) {
  if (fchmod(fd, mode & 0777) != 0) return sys_err(err, "chmod", tmp, errno);
  if (!bh_write_all(fd, buf, len)) return sys_err(err, "write", tmp, errno);
  if (fsync(fd) != 0) return sys_err(err, "fsync", tmp, errno);
  return BH_OK;
}

bh_status bh_file_replace_check(const char *path, bh_err *err) {
  const char *base;
  int dfd = open_dir(path, &base, err);
  if (dfd < 0) return BH_SYSTEM;
  bh_status st = check_target(dfd, base, path, err);
  (void)close(dfd);
  return st;
}

bh_status bh_file_replace(const char *path, const void *buf, size_t len,
                          mode_t mode, bh_err *err) {
  const char *base;
  char tmp[512];
  int dfd = open_dir(path, &base, err);
  if (dfd < 0) return BH_SYSTEM;
  bh_status st = check_target(dfd, base, path, err);
  int fd = st == BH_OK ? create_temp(dfd, base, tmp, sizeof tmp, err) : -1;
  if (st == BH_OK && fd < 0) st = BH_SYSTEM;
  if (st == BH_OK) st = fill_temp(fd, tmp, buf, len, mode, err);
  if (fd >= 0 && close(fd) != 0 && st == BH_OK)
    st = sys_err(err, "close", tmp, errno);
  if (st == BH_OK && renameat(dfd, tmp, dfd, base) != 0)
    st = sys_err(err, "rename temp file to", path, errno);
  if (st != BH_OK && fd >= 0) (void)unlinkat(dfd, tmp, 0);
  if (st == BH_OK && fsync(dfd) != 0)
    st = sys_err(err, "fsync directory of", path, errno);
  (void)close(dfd);
  return st;
}
