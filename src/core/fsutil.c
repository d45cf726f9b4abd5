/* Files reached through directory descriptors (see fsutil.h). */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "fdreserve.h"

enum { TEMP_TRIES = 16, FIRST_CHUNK = 4096 };

/* ---- walking down ---------------------------------------------------------
 */

/* The code for a failure with errno e: code, unless the process itself
 * ran out of something (descriptors, memory), which says nothing about
 * the file: then "system", so that no record is blamed for it. */
static bh_status code_for(int e, bh_status code) {
  return e == EMFILE || e == ENFILE || e == ENOMEM ? BH_SYSTEM : code;
}

/* Open component comp (of path, for messages) below dirfd as a directory
 * into *fd, never following a symlink; err carries openat's errno. */
static bh_status open_component(int dirfd, const char *comp, const char *path,
                                int *fd, bh_status code, bh_err *err) {
  *fd = bh_fd_openat(dirfd, comp,
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
  if (*fd >= 0) return BH_OK;
  int e = errno;
  struct stat sb;
  if ((e == ELOOP || e == ENOTDIR) &&
      fstatat(dirfd, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK(sb.st_mode))
    return bh_err_sys(err, code, e,
                      "%s: its directory component \"%s\" is a symbolic "
                      "link, which is never followed here",
                      path, comp);
  return bh_err_sys(err, code_for(e, code), e,
                    "%s: directory component \"%s\": %s", path, comp,
                    strerror(e));
}

/* Does the directory open as fd pass the caller's check (none: yes)?
 * name is how the check and messages show it. When it does not, err is
 * what the check filled in (or says the directory was refused) and
 * carries EACCES. */
static bh_status dir_check(int fd, const char *name, const char *path,
                           bh_fs_dir_check ok, void *ctx, bh_status code,
                           bh_err *err) {
  struct stat sb;
  if (ok == NULL) return BH_OK;
  bh_err_clear(err);
  if (fstat(fd, &sb) == 0 && ok(&sb, name, ctx)) return BH_OK;
  if (err == NULL) return code;
  if (err->code == BH_OK)
    bh_err_set(err, code, NULL, "%s: directory %s is refused", path, name);
  err->sys_errno = EACCES;
  return err->code;
}

bh_status bh_fs_open_parent_check(const char *path, int *dirfd,
                                  const char **leaf, bh_fs_dir_check ok,
                                  void *ctx, bh_status code, bh_err *err) {
  *dirfd = -1;
  const char *slash = strrchr(path, '/');
  const char *name = slash != NULL ? slash + 1 : path;
  if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return bh_err_sys(err, code, EINVAL, "%s: expected a path naming a file",
                      path);
  const char *start = path[0] == '/' ? "/" : ".";
  int fd = bh_fd_openat(AT_FDCWD, start, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    return bh_err_sys(err, code_for(e, code), e, "%s: cannot open its root: %s",
                      path, strerror(e));
  }
  bh_status st = dir_check(fd, start, path, ok, ctx, code, err);
  if (st != BH_OK) {
    (void)close(fd);
    return st;
  }
  const char *p = path;
  for (;;) {
    while (*p == '/')
      p++;
    if (p >= name) break;
    const char *end = strchr(p, '/'); /* exists: name follows a slash */
    size_t n = (size_t)(end - p);
    if (n > NAME_MAX) {
      (void)close(fd);
      return bh_err_sys(err, code, ENAMETOOLONG,
                        "%s: a component is longer than %d bytes", path,
                        NAME_MAX);
    }
    char comp[NAME_MAX + 1];
    memcpy(comp, p, n);
    comp[n] = '\0';
    p = end + 1;
    if (strcmp(comp, ".") == 0) continue;
    int sub;
    st = open_component(fd, comp, path, &sub, code, err);
    (void)close(fd); /* a directory opened read-only */
    if (st != BH_OK) return st;
    fd = sub;
    st = dir_check(fd, comp, path, ok, ctx, code, err);
    if (st != BH_OK) {
      (void)close(fd);
      return st;
    }
  }
  *leaf = name;
  *dirfd = fd;
  return BH_OK;
}

bh_status bh_fs_open_parent(const char *path, int *dirfd, const char **leaf,
                            bh_status code, bh_err *err) {
  return bh_fs_open_parent_check(path, dirfd, leaf, NULL, NULL, code, err);
}

/* ---- reading --------------------------------------------------------------
 */

const char *bh_file_kind(mode_t m) {
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  return "a special file";
}

bh_status bh_file_open_regular(const char *path, const char *what, int *fd,
                               struct stat *st, bh_status code, bh_err *err) {
  if (what == NULL) what = path;
  *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (*fd < 0) {
    int e = errno;
    return bh_err_sys(err, code, e, "cannot open %s: %s", what, strerror(e));
  }
  bh_status s = BH_OK;
  if (fstat(*fd, st) != 0) {
    int e = errno;
    s = bh_err_sys(err, code, e, "cannot stat %s: %s", what, strerror(e));
  } else if (!S_ISREG(st->st_mode)) {
    s = bh_err_sys(err, code, EINVAL, "%s is %s, not a regular file", what,
                   bh_file_kind(st->st_mode));
  }
  if (s != BH_OK) {
    (void)close(*fd); /* read-only: nothing to lose */
    *fd = -1;
  }
  return s;
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

/* Fill err for a failed read_to_end (or a size over max) of what. */
static bh_status read_error(int e, const char *what, size_t max, bh_status code,
                            bh_err *err) {
  if (e == EFBIG)
    return bh_err_sys(err, code, e, "%s is larger than %zu bytes", what, max);
  if (e == ENOMEM)
    return bh_err_sys(err, BH_SYSTEM, e, "out of memory reading %s", what);
  return bh_err_sys(err, code, e, "cannot read %s: %s", what, strerror(e));
}

bh_status bh_file_read_small(const char *path, size_t max, char **out,
                             size_t *len, bh_status code, bh_err *err) {
  int fd = -1;
  struct stat st;
  *out = NULL;
  *len = 0;
  bh_status s = bh_file_open_regular(path, NULL, &fd, &st, code, err);
  if (s != BH_OK) return s;
  int e = EFBIG;
  if (st.st_size <= 0 || (uintmax_t)st.st_size <= max)
    e = read_to_end(fd, max, (size_t)st.st_size, out, len);
  (void)close(fd); /* read-only: nothing to lose */
  return e != 0 ? read_error(e, path, max, code, err) : BH_OK;
}

bh_status bh_fs_open_at(int dirfd, const char *name, int *fd, struct stat *st,
                        bool *missing, bh_status code, const char *what,
                        bh_err *err) {
  struct stat before;
  *fd = -1;
  if (missing != NULL) *missing = false;
  /* Judge the entry before opening it: opening a device can have effects. */
  if (fstatat(dirfd, name, &before, AT_SYMLINK_NOFOLLOW) != 0) {
    int e = errno;
    if (missing != NULL) *missing = e == ENOENT;
    return bh_err_sys(err, code, e, "%s: %s", what, strerror(e));
  }
  if (!S_ISREG(before.st_mode))
    return bh_err_sys(err, code, EINVAL, "%s is %s, not a regular file", what,
                      bh_file_kind(before.st_mode));
  int f = bh_fd_openat(
      dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
      0);
  if (f < 0) {
    int e = errno;
    return bh_err_sys(err, code_for(e, code), e, "%s: %s", what, strerror(e));
  }
  if (fstat(f, st) != 0 || !S_ISREG(st->st_mode) ||
      st->st_ino != before.st_ino || st->st_dev != before.st_dev) {
    (void)close(f); /* read-only */
    return bh_err_sys(err, code, ESTALE, "%s changed while being opened", what);
  }
  *fd = f;
  return BH_OK;
}

bh_status bh_fs_read_at(int dirfd, const char *name, size_t max, uint8_t **out,
                        size_t *len, struct stat *st, bool *missing,
                        bh_status code, const char *what, bh_err *err) {
  struct stat sb;
  char *buf = NULL;
  size_t got = 0;
  int fd;
  bh_status s = bh_fs_open_at(dirfd, name, &fd, &sb, missing, code, what, err);
  if (s != BH_OK) return s;
  int e = read_to_end(fd, max, (size_t)sb.st_size, &buf, &got);
  (void)close(fd); /* read-only */
  if (e != 0) return read_error(e, what, max, code, err);
  *out = (uint8_t *)buf;
  *len = got;
  if (st != NULL) *st = sb;
  return BH_OK;
}

bh_status bh_fs_read_file(const char *path, size_t max, uint8_t **out,
                          size_t *len, struct stat *st, bool *missing,
                          bh_status code, bh_err *err) {
  const char *leaf;
  int dirfd;
  if (missing != NULL) *missing = false;
  bh_status s = bh_fs_open_parent(path, &dirfd, &leaf, code, err);
  if (s != BH_OK) return s;
  s = bh_fs_read_at(dirfd, leaf, max, out, len, st, missing, code, path, err);
  (void)close(dirfd);
  bh_fd_reserve_refill();
  return s;
}

/* Do st (now) and was (earlier) describe the same file, unchanged (dev,
 * ino, size, mtime: its content was not rewritten in place or replaced)? */
static bool same_file(const struct stat *st, const struct stat *was) {
  /* Not ctime: renaming a file moves it, and we rename what we check. */
  return st->st_dev == was->st_dev && st->st_ino == was->st_ino &&
         st->st_size == was->st_size &&
         st->st_mtim.tv_sec == was->st_mtim.tv_sec &&
         st->st_mtim.tv_nsec == was->st_mtim.tv_nsec;
}

/* ---- writing --------------------------------------------------------------
 */

/* All of buf to fd, retrying short writes and EINTR: 0 or the errno. */
static int write_all(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

bh_status bh_fs_write_all(int fd, const void *buf, size_t len, const char *what,
                          bh_err *err) {
  int e = write_all(fd, buf, len);
  if (e == 0) return BH_OK;
  return bh_err_sys(err, BH_SYSTEM, e, "writing %s: %s", what, strerror(e));
}

/* The name of a temp file for name, ".NAME.tmp.XXXXXXXX" (NAME cut to
 * 200 bytes, 8 random lowercase hex digits), into tmp (cap bytes): false
 * when it does not fit. */
static bool temp_name(const char *name, char *tmp, size_t cap, int attempt) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
    r ^= (uint32_t)attempt * 2654435761u;
  int n = snprintf(tmp, cap, ".%.200s.tmp.%08x", name, r);
  return n >= 0 && (size_t)n < cap;
}

/* Is entry a temp file of name, as temp_name makes them? */
static bool is_temp_of(const char *entry, const char *name) {
  size_t n = strnlen(name, 200), e = strlen(entry);
  static const char mid[] = ".tmp.";
  if (e != 1 + n + (sizeof mid - 1) + 8 || entry[0] != '.' ||
      strncmp(entry + 1, name, n) != 0 ||
      strncmp(entry + 1 + n, mid, sizeof mid - 1) != 0)
    return false;
  for (const char *h = entry + e - 8; *h != '\0'; h++)
    if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f'))) return false;
  return true;
}

/* A temp file for name in dirfd, open for writing. Where the file system
 * has O_TMPFILE it has no name yet (tmp is ""), so a process killed before
 * link_temp leaves nothing behind; else it is a new ".NAME.tmp.XXXXXXXX"
 * (O_EXCL, no symlink followed), named in tmp. -1 with errno. */
static int open_temp(int dirfd, const char *name, char *tmp, size_t cap) {
  tmp[0] = '\0';
  int fd = bh_fd_openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
    return fd;
  for (int i = 0; i < TEMP_TRIES; i++) {
    if (!temp_name(name, tmp, cap, i)) {
      errno = ENAMETOOLONG;
      return -1;
    }
    fd = bh_fd_openat(
        dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

/* Give the unnamed temp file fd (written and synced) a name in dirfd, so
 * that it can be renamed over or exchanged with the file it replaces.
 * Through /proc/self/fd (linkat with AT_EMPTY_PATH would need
 * CAP_DAC_READ_SEARCH). 0 or an errno value. */
static int link_temp(int dirfd, int fd, const char *name, char *tmp,
                     size_t cap) {
  char self[64];
  (void)snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  for (int i = 0; i < TEMP_TRIES; i++) {
    if (!temp_name(name, tmp, cap, i)) return ENAMETOOLONG;
    if (linkat(AT_FDCWD, self, dirfd, tmp, AT_SYMLINK_FOLLOW) == 0) return 0;
    if (errno == ENOENT &&
        linkat(fd, "", dirfd, tmp, AT_EMPTY_PATH) == 0) /* no /proc */
      return 0;
    if (errno != EEXIST) {
      int e = errno;
      tmp[0] = '\0';
      return e;
    }
  }
  tmp[0] = '\0';
  return EEXIST;
}

/* Remove what a writer killed between naming its temp file and renaming it
 * left of name's temp files in dirfd (a writer of an older version: for
 * the whole of its write): only regular files named exactly like our own
 * temp files of name, with one link, owned by owner (whom ours would
 * belong to), older than BH_FS_TEMP_STALE_SECONDS (so a concurrent
 * writer's is never taken). Best effort. */
static void sweep_temps(int dirfd, const char *name, uid_t owner) {
  int fd = bh_fd_openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (d == NULL) {
    if (fd >= 0) (void)close(fd);
    return;
  }
  time_t now = time(NULL);
  struct dirent *e;
  struct stat sb;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] != '.' || !is_temp_of(e->d_name, name)) continue;
    if (fstatat(dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(sb.st_mode) && sb.st_nlink == 1 && sb.st_uid == owner &&
        now - sb.st_mtim.tv_sec > BH_FS_TEMP_STALE_SECONDS)
      (void)unlinkat(dirfd, e->d_name, 0);
  }
  (void)closedir(d);
}

/* Give the temp file the owner and mode of like (no set-id or sticky
 * bits), or mode when like is NULL. */
static int set_owner_mode(int fd, const struct stat *like, mode_t mode) {
  if (like != NULL) {
    mode = like->st_mode;
    if ((like->st_uid != geteuid() || like->st_gid != getegid()) &&
        fchown(fd, like->st_uid, like->st_gid) != 0)
      return errno;
  }
  return fchmod(fd, mode & 0777) != 0 ? errno : 0;
}

/* Put the finished temp file in place of name. With an expectation, swap
 * and check what came out (see bh_fs_replace_opts). */
static int put_in_place(int dirfd, const char *tmp, const char *name,
                        const bh_fs_replace_opts *o, bool *changed) {
  if (o->expect == NULL)
    return renameat(dirfd, tmp, dirfd, name) != 0 ? errno : 0;
  if (renameat2(dirfd, tmp, dirfd, name, RENAME_EXCHANGE) != 0) {
    if (errno != ENOENT) return errno;
    *changed = true; /* removed meanwhile: leave it removed */
    return unlinkat(dirfd, tmp, 0) != 0 ? errno : 0;
  }
  struct stat out;
  if (fstatat(dirfd, tmp, &out, AT_SYMLINK_NOFOLLOW) == 0 &&
      same_file(&out, o->expect))
    return unlinkat(dirfd, tmp, 0) != 0 ? errno : 0; /* the old file */
  /* Rewritten after we read it: give the newer record its name back. */
  *changed = true;
  if (renameat2(dirfd, tmp, dirfd, name, RENAME_EXCHANGE) != 0) return errno;
  return unlinkat(dirfd, tmp, 0) != 0 ? errno : 0;
}

bh_status bh_fs_replace_at(int dirfd, const char *name, const void *buf,
                           size_t len, const bh_fs_replace_opts *opts,
                           bool *changed, bh_status code, bh_err *err) {
  char tmp[NAME_MAX + 1];
  bool dummy = false;
  if (changed == NULL) changed = &dummy;
  *changed = false;
  const char *what = opts->what != NULL ? opts->what : name;
  struct stat cur;
  const struct stat *like = opts->expect;
  if (like == NULL && fstatat(dirfd, name, &cur, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISREG(cur.st_mode))
      return bh_err_set(
          err, code, NULL, "%s is %s; it is never replaced or followed", what,
          S_ISLNK(cur.st_mode) ? "a symbolic link" : "not a regular file");
    if (opts->keep_existing) like = &cur;
  }
  int fd = open_temp(dirfd, name, tmp, sizeof tmp);
  if (fd < 0)
    return bh_err_set(err, code_for(errno, code), NULL,
                      "creating a temp file for %s: %s", what, strerror(errno));
  const char *step = "setting owner and mode of";
  int e = set_owner_mode(fd, like, opts->mode);
  if (e == 0) step = "writing", e = write_all(fd, buf, len);
  if (e == 0 && fsync(fd) != 0) step = "syncing", e = errno;
  if (e == 0 && tmp[0] == '\0')
    step = "naming the temp file of",
    e = link_temp(dirfd, fd, name, tmp, sizeof tmp);
  if (close(fd) != 0 && e == 0) step = "closing", e = errno;
  if (e == 0)
    step = "renaming over", e = put_in_place(dirfd, tmp, name, opts, changed);
  if (e == 0 && fsync(dirfd) != 0) step = "syncing the directory of", e = errno;
  if (e == 0) {
    sweep_temps(dirfd, name, like != NULL ? like->st_uid : geteuid());
    return BH_OK;
  }
  if (tmp[0] != '\0') (void)unlinkat(dirfd, tmp, 0); /* may be gone already */
  return bh_err_set(err, code, NULL, "%s %s: %s", step, what, strerror(e));
}

bh_status bh_fs_write_atomic(const char *path, const void *buf, size_t len,
                             bool keep_existing, mode_t mode, bh_status code,
                             bh_err *err) {
  const char *leaf;
  int dirfd;
  bh_status st = bh_fs_open_parent(path, &dirfd, &leaf, code, err);
  if (st != BH_OK) return st;
  bh_fs_replace_opts o = {.expect = NULL,
                          .keep_existing = keep_existing,
                          .mode = mode,
                          .what = path};
  st = bh_fs_replace_at(dirfd, leaf, buf, len, &o, NULL, code, err);
  (void)close(dirfd);
  bh_fd_reserve_refill();
  return st;
}
