/* Files reached through directory descriptors (see fsutil.h). */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockio.h"

enum { TEMP_TRIES = 16, FIRST_CHUNK = 4096 };

/* ---- walking down ---------------------------------------------------------
 */

/* Open component comp (of path, for messages) below dirfd as a directory,
 * never following a symlink. Returns the descriptor or -1 with err and
 * errno (openat's). */
static int open_component(int dirfd, const char *comp, const char *path,
                          bh_status code, bh_err *err) {
  int fd = openat(dirfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) return fd;
  int e = errno;
  struct stat sb;
  if ((e == ELOOP || e == ENOTDIR) &&
      fstatat(dirfd, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK(sb.st_mode))
    bh_err_set(err, code, NULL,
               "%s: its directory component \"%s\" is a symbolic link, which "
               "is never followed here",
               path, comp);
  else
    bh_err_set(err, code, NULL, "%s: directory component \"%s\": %s", path,
               comp, strerror(e));
  errno = e;
  return -1;
}

int bh_fs_open_parent(const char *path, const char **leaf, bh_status code,
                      bh_err *err) {
  const char *slash = strrchr(path, '/');
  const char *name = slash != NULL ? slash + 1 : path;
  if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
    bh_err_set(err, code, NULL, "%s: expected a path naming a file", path);
    errno = EINVAL;
    return -1;
  }
  int fd = open(path[0] == '/' ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    bh_err_set(err, code, NULL, "%s: cannot open its root: %s", path,
               strerror(e));
    errno = e;
    return -1;
  }
  const char *p = path;
  while (fd >= 0) {
    while (*p == '/')
      p++;
    if (p >= name) break;
    const char *end = strchr(p, '/'); /* exists: name follows a slash */
    size_t n = (size_t)(end - p);
    if (n > NAME_MAX) {
      bh_err_set(err, code, NULL, "%s: a component is longer than %d bytes",
                 path, NAME_MAX);
      (void)close(fd);
      errno = ENAMETOOLONG;
      return -1;
    }
    char comp[NAME_MAX + 1];
    memcpy(comp, p, n);
    comp[n] = '\0';
    p = end + 1;
    if (strcmp(comp, ".") == 0) continue;
    int sub = open_component(fd, comp, path, code, err);
    int e = errno;
    (void)close(fd); /* a directory opened read-only */
    fd = sub;
    if (sub < 0) errno = e;
  }
  *leaf = name;
  return fd;
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

int bh_file_open_regular(const char *path, const char *what, int *fd,
                         struct stat *st, bh_status code, bh_err *err) {
  if (what == NULL) what = path;
  *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (*fd < 0) {
    int e = errno;
    bh_err_set(err, code, NULL, "cannot open %s: %s", what, strerror(e));
    return e;
  }
  int e = 0;
  if (fstat(*fd, st) != 0) {
    e = errno;
    bh_err_set(err, code, NULL, "cannot stat %s: %s", what, strerror(e));
  } else if (!S_ISREG(st->st_mode)) {
    e = EINVAL;
    bh_err_set(err, code, NULL, "%s is %s, not a regular file", what,
               bh_file_kind(st->st_mode));
  }
  if (e != 0) {
    (void)close(*fd); /* read-only: nothing to lose */
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

/* Fill err for a failed read_to_end (or a size over max) of what. */
static void read_error(int e, const char *what, size_t max, bh_status code,
                       bh_err *err) {
  if (e == EFBIG)
    bh_err_set(err, code, NULL, "%s is larger than %zu bytes", what, max);
  else if (e == ENOMEM)
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory reading %s", what);
  else
    bh_err_set(err, code, NULL, "cannot read %s: %s", what, strerror(e));
}

int bh_file_read_small(const char *path, size_t max, char **out, size_t *len,
                       bh_status code, bh_err *err) {
  int fd = -1;
  struct stat st;
  *out = NULL;
  *len = 0;
  int e = bh_file_open_regular(path, NULL, &fd, &st, code, err);
  if (e != 0) return e;
  if (st.st_size > 0 && (uintmax_t)st.st_size > max) {
    e = EFBIG;
  } else {
    e = read_to_end(fd, max, (size_t)st.st_size, out, len);
  }
  (void)close(fd); /* read-only: nothing to lose */
  if (e != 0) read_error(e, path, max, code, err);
  return e;
}

/* Read f's file into f->text (the lock held): 0, or the errno value with
 * err filled; EINVAL when it is empty or longer than an id. */
static int id_file_read(bh_id_file *f, bh_err *err) {
  char *text = NULL;
  size_t len = 0;
  int e = bh_file_read_small(f->path, 4096, &text, &len, BH_SYSTEM, err);
  if (e != 0) return e;
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ' ||
                     text[len - 1] == '\r' || text[len - 1] == '\t'))
    len--;
  if (len > 0 && len < sizeof f->text) {
    memcpy(f->text, text, len);
    f->len = len;
  } else {
    e = EINVAL;
    bh_err_set(err, BH_SYSTEM, NULL, "%s holds %zu bytes, expected an id",
               f->path, len);
  }
  free(text);
  return e;
}

bh_status bh_id_file_get(bh_id_file *f, char *buf, size_t cap, bh_err *err) {
  if (cap == 0) return bh_err_set(err, BH_SYSTEM, NULL, "no room for an id");
  buf[0] = '\0';
  if (pthread_mutex_lock(&f->lock) != 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "cannot lock the cache of %s",
                      f->path);
  int e = f->len == 0 ? id_file_read(f, err) : 0;
  if (e == 0) {
    size_t n = f->len < cap - 1 ? f->len : cap - 1;
    memcpy(buf, f->text, n);
    buf[n] = '\0';
  }
  (void)pthread_mutex_unlock(&f->lock);
  return e == 0 ? BH_OK : BH_SYSTEM;
}

bh_status bh_fs_read_at(int dirfd, const char *name, size_t max, uint8_t **out,
                        size_t *len, struct stat *st, bool *missing,
                        bh_status code, const char *what, bh_err *err) {
  struct stat before, sb;
  char *buf = NULL;
  size_t got = 0;
  if (missing != NULL) *missing = false;
  /* Judge the entry before opening it: opening a device can have effects. */
  if (fstatat(dirfd, name, &before, AT_SYMLINK_NOFOLLOW) != 0) {
    if (missing != NULL) *missing = errno == ENOENT;
    return bh_err_set(err, code, NULL, "%s: %s", what, strerror(errno));
  }
  if (!S_ISREG(before.st_mode))
    return bh_err_set(err, code, NULL, "%s is %s, not a regular file", what,
                      bh_file_kind(before.st_mode));
  int fd = openat(dirfd, name,
                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return bh_err_set(err, code, NULL, "%s: %s", what, strerror(errno));
  int e = 0;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
      sb.st_ino != before.st_ino || sb.st_dev != before.st_dev)
    bh_err_set(err, code, NULL, "%s changed while being opened", what);
  else if ((e = read_to_end(fd, max, (size_t)sb.st_size, &buf, &got)) != 0)
    read_error(e, what, max, code, err);
  (void)close(fd); /* read-only */
  if (buf == NULL) return e == ENOMEM ? BH_SYSTEM : code;
  *out = (uint8_t *)buf;
  *len = got;
  if (st != NULL) *st = sb;
  return BH_OK;
}

bh_status bh_fs_read_file(const char *path, size_t max, uint8_t **out,
                          size_t *len, struct stat *st, bool *missing,
                          bh_status code, bh_err *err) {
  const char *leaf;
  if (missing != NULL) *missing = false;
  int dirfd = bh_fs_open_parent(path, &leaf, code, err);
  if (dirfd < 0) return code;
  bh_status s =
      bh_fs_read_at(dirfd, leaf, max, out, len, st, missing, code, path, err);
  (void)close(dirfd);
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

int bh_fs_write_all(int fd, const void *buf, size_t len) {
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

/* Create an unused temp file ".NAME.tmp.XXXXXXXX" in dirfd; its name goes
 * to tmp (cap bytes). Returns the descriptor or -1 (errno set). */
static int create_temp(int dirfd, const char *name, char *tmp, size_t cap) {
  for (int i = 0; i < TEMP_TRIES; i++) {
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
      r ^= (uint32_t)i * 2654435761u;
    int n = snprintf(tmp, cap, ".%.200s.tmp.%08x", name, r);
    if (n < 0 || (size_t)n >= cap) {
      errno = ENAMETOOLONG;
      return -1;
    }
    int fd = openat(dirfd, tmp,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
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
  int fd = create_temp(dirfd, name, tmp, sizeof tmp);
  if (fd < 0)
    return bh_err_set(err, code, NULL, "creating a temp file for %s: %s", what,
                      strerror(errno));
  const char *step = "setting owner and mode of";
  int e = set_owner_mode(fd, like, opts->mode);
  if (e == 0) step = "writing", e = bh_fs_write_all(fd, buf, len);
  if (e == 0 && fsync(fd) != 0) step = "syncing", e = errno;
  if (close(fd) != 0 && e == 0) step = "closing", e = errno;
  if (e == 0)
    step = "renaming over", e = put_in_place(dirfd, tmp, name, opts, changed);
  if (e == 0 && fsync(dirfd) != 0) step = "syncing the directory of", e = errno;
  if (e == 0) return BH_OK;
  (void)unlinkat(dirfd, tmp, 0); /* best effort: it may be gone already */
  return bh_err_set(err, code, NULL, "%s %s: %s", step, what, strerror(e));
}

bh_status bh_fs_write_atomic(const char *path, const void *buf, size_t len,
                             bool keep_existing, mode_t mode, bh_status code,
                             bh_err *err) {
  const char *leaf;
  int dirfd = bh_fs_open_parent(path, &leaf, code, err);
  if (dirfd < 0) return code;
  bh_fs_replace_opts o = {.expect = NULL,
                          .keep_existing = keep_existing,
                          .mode = mode,
                          .what = path};
  bh_status st = bh_fs_replace_at(dirfd, leaf, buf, len, &o, NULL, code, err);
  (void)close(dirfd);
  return st;
}

/* ---- stale sockets --------------------------------------------------------
 */

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

bh_status bh_fs_remove_stale_socket(const char *path, bh_stale_result *res,
                                    bh_err *err) {
  *res = (bh_stale_result){0};
  const char *leaf;
  int dirfd = bh_fs_open_parent(path, &leaf, BH_SYSTEM, err);
  if (dirfd < 0) {
    if (errno != ENOENT) return BH_SYSTEM;
    bh_err_clear(err); /* its directory is gone: so is the socket */
    return BH_OK;
  }
  bh_status st = BH_OK;
  struct stat first, now;
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
  return st;
}
