/* The nonce pool (random.h). Bytes are wiped as they are handed out, so
 * that a copy of the pool (a core dump, a fork that escaped the handler)
 * holds none that were used. */
#include "random.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

enum { POOL_SIZE = 4096, MAX_REQUEST = 256 };

static _Thread_local uint8_t pool[POOL_SIZE];
static _Thread_local size_t pool_left; /* unused bytes at the pool's end */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static bool pool_safe; /* the child handler is registered */

/* In a forked child: the parent's unused bytes are the parent's. Only
 * the forking thread lives on in the child, and this is its pool. */
static void empty_in_child(void) {
  memset(pool, 0, sizeof pool);
  pool_left = 0;
}

static void register_atfork(void) {
  pool_safe = pthread_atfork(NULL, NULL, empty_in_child) == 0;
}

/* len bytes straight from the kernel: 0 or getrandom's errno. */
static int fill(uint8_t *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(buf + got, len - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    got += (size_t)n;
  }
  return 0;
}

/* The errno e of getrandom into err. */
static bh_status no_randomness(int e, bh_err *err) {
  return bh_err_sys(err, BH_SYSTEM, e, "getrandom: %s", strerror(e));
}

bh_status bh_random_bytes(void *buf, size_t len, bh_err *err) {
  if (len > MAX_REQUEST)
    return bh_err_sys(err, BH_SYSTEM, EINVAL,
                      "%zu random bytes asked for, at most %d at a time", len,
                      MAX_REQUEST);
  int e;
  if (pthread_once(&atfork_once, register_atfork) != 0 || !pool_safe) {
    e = fill(buf, len); /* no pool a child could inherit */
    return e == 0 ? BH_OK : no_randomness(e, err);
  }
  if (pool_left < len) {
    if ((e = fill(pool, POOL_SIZE)) != 0) return no_randomness(e, err);
    pool_left = POOL_SIZE;
  }
  uint8_t *from = pool + (POOL_SIZE - pool_left);
  memcpy(buf, from, len);
  memset(from, 0, len);
  pool_left -= len;
  return BH_OK;
}
