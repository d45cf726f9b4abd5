/* Random bytes for nonces, from a per-thread pool of getrandom(2) output:
 * one system call per 4 KiB instead of a call per nonce (OpenSSL's
 * RAND_bytes costs a getpid and its DRBG about 8,000 instructions per
 * call, a third of a probe's user time). */
#ifndef BH_RANDOM_H
#define BH_RANDOM_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* Fills buf with len (at most 256) unpredictable bytes, each handed out
 * once: never again in this process nor in a child forked after this
 * call (the pool is emptied in every child). BH_SYSTEM with err carrying
 * the errno when the kernel gives no randomness (ENOSYS before Linux
 * 3.17), or EINVAL for more than 256 bytes. */
bh_status bh_random_bytes(void *buf, size_t len, bh_err *err);

#endif
