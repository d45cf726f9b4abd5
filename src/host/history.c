/* The -i prompt's history file (history.h). The format is readline's with
 * timestamps, so files written by earlier versions load: each entry is
 * a "#SECONDS" line followed by its lines (a multi-line chunk is one
 * entry). The file holds at most 2 * HISTORY_MAX entries: past that it is
 * rewritten in place, through the same descriptor, with the last
 * HISTORY_MAX (readline's stifled list). */
#include "history.h"

#ifdef BH_USE_READLINE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* readline's headers use FILE without including stdio.h. */
#include <readline/history.h>

#include "fsutil.h"
#include "log.h"

#define HISTORY_FILE ".bhprobe_history"
#define HISTORY_MAX 1000
#define HISTORY_FILE_MAX (8u << 20) /* a larger file is not loaded */

static struct {
  bool opened;
  int fd;           /* -1: no history file */
  char *path;       /* for messages */
  unsigned entries; /* entries in the file */
} hist = {false, -1, NULL, 0};

/* Say why there is no history file, and keep none. */
static void no_history(const char *why) {
  bh_log(BH_LOG_WARNING, "history %s %s: no history is kept", hist.path, why);
  if (hist.fd >= 0) (void)close(hist.fd);
  hist.fd = -1;
}

/* Is fd a file we may keep the history in? NULL if so, else why not. */
static const char *unfit(int fd, char *why, size_t cap) {
  struct stat sb;
  if (fstat(fd, &sb) != 0) return strerror(errno);
  if (!S_ISREG(sb.st_mode)) {
    (void)snprintf(why, cap, "is %s, not a regular file",
                   bh_file_kind(sb.st_mode));
  } else if (sb.st_uid != geteuid()) {
    (void)snprintf(why, cap, "is owned by uid %u, not by uid %u (us)",
                   (unsigned)sb.st_uid, (unsigned)geteuid());
  } else if (sb.st_nlink != 1) {
    (void)snprintf(why, cap, "has %u hard links", (unsigned)sb.st_nlink);
  } else if ((uint64_t)sb.st_size > HISTORY_FILE_MAX) {
    (void)snprintf(why, cap, "is larger than %u bytes", HISTORY_FILE_MAX);
  } else {
    return NULL;
  }
  return why;
}

/* Open path for reading and appending, never following a symlink nor
 * waiting (O_NONBLOCK: a FIFO cannot block the open); something that is
 * already there and is not a regular file is refused before it is
 * opened (no FIFO or device is ever opened). A file we create is 0600
 * whatever the umask. Returns the descriptor, or -1 and says why. */
static int open_history(const char *path) {
  const int flags =
      O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  char why[128];
  struct stat sb;
  if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
    (void)snprintf(why, sizeof why, "is %s, not a regular file",
                   bh_file_kind(sb.st_mode));
    no_history(why);
    return -1;
  }
  int fd = open(path, flags | O_CREAT | O_EXCL, 0600);
  if (fd >= 0 && fchmod(fd, 0600) != 0) {
    (void)close(fd);
    fd = -1;
  }
  if (fd < 0 && errno == EEXIST) fd = open(path, flags);
  if (fd < 0) {
    no_history(errno == ELOOP ? "is a symbolic link (never followed)"
                              : strerror(errno));
    return -1;
  }
  const char *bad = unfit(fd, why, sizeof why);
  if (bad != NULL) {
    (void)close(fd);
    no_history(bad);
    return -1;
  }
  return fd;
}

/* Add the entry of n bytes at p to readline's list (a copy with a NUL). */
static void load_entry(const char *p, size_t n) {
  char *e = strndup(p, n);
  if (e == NULL) return;
  add_history(e);
  hist.entries++;
  free(e);
}

/* Load every entry of the file: lines up to the next "#SECONDS" line. */
static void load(void) {
  struct stat sb;
  if (fstat(hist.fd, &sb) != 0 || sb.st_size == 0) return;
  size_t size = (size_t)sb.st_size, len = 0;
  char *buf = malloc(size + 1);
  if (buf == NULL) return;
  while (len < size) {
    ssize_t n = pread(hist.fd, buf + len, size - len, (off_t)len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0'; /* strspn below stops at it */
  const char *entry = NULL, *p = buf, *end = buf + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eol = nl != NULL ? nl : end;
    bool stamp = p[0] == '#' && eol - p > 1 &&
                 strspn(p + 1, "0123456789") == (size_t)(eol - p - 1);
    if (stamp && entry != NULL && p > entry) /* up to the newline before */
      load_entry(entry, (size_t)(p - 1 - entry));
    if (stamp)
      entry = eol + 1 <= end ? eol + 1 : end;
    else if (entry == NULL) /* lines before any stamp: one entry each */
      load_entry(p, (size_t)(eol - p));
    p = eol + 1;
  }
  if (entry != NULL && entry < end)
    load_entry(entry, (size_t)(end - entry - (end[-1] == '\n')));
  free(buf);
}

void bh_history_open(void) {
  if (hist.opened) return;
  hist.opened = true;
  using_history();
  stifle_history(HISTORY_MAX);
  const char *home = getenv("HOME");
  if (home == NULL || *home == '\0') return;
  size_t n = strlen(home) + sizeof "/" HISTORY_FILE;
  hist.path = malloc(n);
  if (hist.path == NULL) return;
  (void)snprintf(hist.path, n, "%s/%s", home, HISTORY_FILE);
  hist.fd = open_history(hist.path);
  if (hist.fd >= 0) load();
}

/* Append one entry (its stamp, then its lines) to the file. */
static bool append(const char *chunk) {
  char stamp[32];
  int n = snprintf(stamp, sizeof stamp, "#%lld\n", (long long)time(NULL));
  return bh_fs_write_all(hist.fd, stamp, (size_t)n, "history", NULL) == BH_OK &&
         bh_fs_write_all(hist.fd, chunk, strlen(chunk), "history", NULL) ==
             BH_OK &&
         bh_fs_write_all(hist.fd, "\n", 1, "history", NULL) == BH_OK;
}

/* Rewrite the file with readline's list (its last HISTORY_MAX entries),
 * in place: the descriptor stays the one that was checked. */
static bool rewrite(void) {
  if (ftruncate(hist.fd, 0) != 0) return false;
  hist.entries = 0;
  HIST_ENTRY **list = history_list();
  for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
    if (!append(list[i]->line)) return false;
    hist.entries++;
  }
  return true;
}

void bh_history_add(const char *chunk) {
  if (!hist.opened) return; /* no line was edited: no history */
  add_history(chunk);
  if (hist.fd < 0) return;
  bool ok;
  if (hist.entries + 1 > 2 * HISTORY_MAX) {
    ok = rewrite();
  } else {
    ok = append(chunk);
    hist.entries++;
  }
  if (!ok) no_history(strerror(errno));
}

#else
/* Without readline there is no history. */
void bh_history_open(void) {}
void bh_history_add(const char *chunk) {
  (void)chunk;
}
#endif
