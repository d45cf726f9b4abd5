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

/* len bytes straight from the kernel. */
static bool fill(uint8_t *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(buf + got, len - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    got += (size_t)n;
  }
  return true;
}

bool bh_random_bytes(void *buf, size_t len) {
  if (len > MAX_REQUEST) {
    errno = EINVAL;
    return false;
  }
  if (pthread_once(&atfork_once, register_atfork) != 0 || !pool_safe)
    return fill(buf, len); /* no pool a child could inherit */
  if (pool_left < len) {
    if (!fill(pool, POOL_SIZE)) return false;
    pool_left = POOL_SIZE;
  }
  uint8_t *from = pool + (POOL_SIZE - pool_left);
  memcpy(buf, from, len);
  memset(from, 0, len);
  pool_left -= len;
  return true;
}
