/* The descriptor reserve (see fdreserve.h). */
#include "fdreserve.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { RESERVE_MAX = 64 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int fds[RESERVE_MAX];
static unsigned held, wanted;

/* One more descriptor for the reserve (lock held). */
static bool take_one(void) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  fds[held++] = fd;
  return true;
}

bh_status bh_fd_reserve_setup(unsigned n, bh_err *err) {
  struct rlimit rl;
  bh_status st = BH_OK;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    int e = errno;
    st = bh_err_sys(err, BH_SYSTEM, e, "getrlimit: %s", strerror(e));
  } else if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      int e = errno;
      st = bh_err_sys(err, BH_SYSTEM, e,
                      "cannot raise the descriptor limit: %s", strerror(e));
    }
  }
  if (n > RESERVE_MAX) n = RESERVE_MAX;
  (void)pthread_mutex_lock(&lock);
  wanted = n;
  while (held < wanted && take_one()) {
  }
  (void)pthread_mutex_unlock(&lock);
  return st;
}

unsigned bh_fd_reserve_held(void) {
  (void)pthread_mutex_lock(&lock);
  unsigned n = held;
  (void)pthread_mutex_unlock(&lock);
  return n;
}

/* Give one descriptor of the reserve back to the process: false when
 * none is left. */
static bool give_one(void) {
  (void)pthread_mutex_lock(&lock);
  bool ok = held > 0;
  if (ok) (void)close(fds[--held]); /* /dev/null, read-only */
  (void)pthread_mutex_unlock(&lock);
  return ok;
}

int bh_fd_openat(int dirfd, const char *path, int flags, mode_t mode) {
  for (;;) {
    int fd = openat(dirfd, path, flags, mode);
    if (fd >= 0 || (errno != EMFILE && errno != ENFILE)) return fd;
    int e = errno;
    if (!give_one()) {
      errno = e;
      return -1;
    }
  }
}

void bh_fd_reserve_refill(void) {
  (void)pthread_mutex_lock(&lock);
  while (held < wanted && take_one()) {
  }
  (void)pthread_mutex_unlock(&lock);
}

void bh_fd_reserve_close(void) {
  (void)pthread_mutex_lock(&lock);
  while (held > 0)
    (void)close(fds[--held]);
  wanted = 0;
  (void)pthread_mutex_unlock(&lock);
}
