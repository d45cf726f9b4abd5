/* Reading files without blocking the loop (see file.h). */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FIRST_CHUNK = 4096 };

const char *bh_file_kind(mode_t m) {
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  return "a special file";
}

int bh_file_open_regular(const char *path, int *fd, struct stat *st,
                         bh_status code, bh_err *err) {
  *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (*fd < 0) {
    int e = errno;
    bh_err_set(err, code, NULL, "cannot open %s: %s", path, strerror(e));
    return e;
  }
  int e = 0;
  if (fstat(*fd, st) != 0) {
    e = errno;
    bh_err_set(err, code, NULL, "cannot stat %s: %s", path, strerror(e));
  } else if (!S_ISREG(st->st_mode)) {
    e = EINVAL;
    bh_err_set(err, code, NULL, "%s is %s, not a regular file", path,
               bh_file_kind(st->st_mode));
  }
  if (e != 0) {
    close(*fd); /* read-only: nothing to lose */
    *fd = -1;
  }
  return e;
}

/* Grow *buf to hold at least need bytes (doubling, at most cap_max). */
static int grow(char **buf, size_t *cap, size_t need, size_t cap_max) {
  size_t n = *cap ? *cap : FIRST_CHUNK;
  while (n < need)
    n = n > cap_max / 2 ? cap_max : n * 2;
  if (n > cap_max) n = cap_max;
  char *p = realloc(*buf, n);
  if (p == NULL) return ENOMEM;
  *buf = p;
  *cap = n;
  return 0;
}

/* Read fd to its end into a buffer of at most max + 1 bytes: reaching
 * max + 1 means the file holds more than max. */
static int read_to_end(int fd, size_t max, size_t hint, char **out,
                       size_t *len) {
  char *buf = NULL;
  size_t cap = 0, got = 0;
  int e = grow(&buf, &cap, (hint < max ? hint : max) + 1, max + 1);
  while (e == 0) {
    if (got == cap && (e = grow(&buf, &cap, cap + 1, max + 1)) != 0) break;
    ssize_t n = read(fd, buf + got, cap - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) e = errno;
    if (n <= 0) break;
    got += (size_t)n;
    if (got > max) e = EFBIG;
  }
  if (e != 0) {
    free(buf);
    return e;
  }
  buf[got] = '\0'; /* the loop only ends with room left, or failed */
  *out = buf;
  *len = got;
  return 0;
}

int bh_file_read_small(const char *path, size_t max, char **out, size_t *len,
                       bh_status code, bh_err *err) {
  int fd = -1;
  struct stat st;
  *out = NULL;
  *len = 0;
  int e = bh_file_open_regular(path, &fd, &st, code, err);
  if (e != 0) return e;
  if (st.st_size > 0 && (uintmax_t)st.st_size > max) {
    e = EFBIG;
  } else {
    e = read_to_end(fd, max, (size_t)st.st_size, out, len);
  }
  close(fd); /* read-only: nothing to lose */
  if (e == EFBIG)
    bh_err_set(err, code, NULL, "%s is larger than %zu bytes", path, max);
  else if (e == ENOMEM)
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory reading %s", path);
  else if (e != 0)
    bh_err_set(err, code, NULL, "cannot read %s: %s", path, strerror(e));
  return e;
}
