/* Start times of the processes verified lately (proc.c). A process's
 * start time never changes while it lives, and a pidfd tells whether it
 * still does, so verifying a daemon verified before needs neither
 * pidfd_open nor /proc/PID/stat (6.5 us of kernel time here: the kernel
 * computes the whole stat line to give one field). Each entry keeps a
 * pidfd (close-on-exec); at most BH_PROC_CACHE_SIZE, the least recently
 * used goes first, and an entry whose process exited goes when looked at.
 * Thread-safe. */
#ifndef BH_PROC_CACHE_H
#define BH_PROC_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "proc.h"

enum { BH_PROC_CACHE_SIZE = 32 };

/* When pid is cached and its process still runs: *out holds it (a new
 * pidfd, the caller's) and *start_ms is its start time. */
bool bh_proc_cache_take(uint32_t pid, bh_proc *out, uint64_t *start_ms);

/* Remember p (held by pidfd: the cache keeps a duplicate) with the start
 * time read for it while it was held. Nothing when p has no pidfd. */
void bh_proc_cache_put(const bh_proc *p, uint64_t start_ms);

/* How many takes found their process (for tests and statistics). */
uint64_t bh_proc_cache_hits(void);

/* Forget every entry, closing their pidfds. */
void bh_proc_cache_clear(void);

#endif
