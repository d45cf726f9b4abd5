/* Helpers for the resource-limit tests (test_probe_limits.c,
 * test_probe_memory.c, test_respond_flood.c, test_pbutil_decode.c,
 * test_exec_limits.c, test_fsutil_fifo.c, ...): run a piece of work in a forked
 * child with a time bound (so a hang or a runaway allocation is a failed check,
 * never a stuck test or a dead test process), and read the child's peak
 * resident set. Defined in child_helpers.c (bhtestutil). */
#ifndef BH_CHILD_HELPERS_H
#define BH_CHILD_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* The "NAME: N kB" field of /proc/self/status in KiB, or -1. */
long ch_status_kb(const char *field);

/* VmHWM (peak resident set) of this process in KiB, or -1. */
long ch_hwm_kb(void);

/* VmRSS (resident set now) of this process in KiB, or -1. */
long ch_rss_kb(void);

/* Reset VmHWM to the current resident set (Linux >= 4.0), so a child
 * measures the peak of what it does from here on, not of its setup.
 * Returns false when the kernel does not allow it. */
bool ch_reset_hwm(void);

/* True under AddressSanitizer, whose shadow memory and quarantine inflate
 * every resident-set figure: bounds are then only printed and loosened. */
bool ch_sanitized(void);

/* Read exactly len bytes from fd within max_s seconds. */
bool ch_read_within(int fd, void *buf, size_t len, double max_s);

/* Start fn(arg, wfd) in a forked child, which must write its report to
 * wfd; the child exits after fn returns. *rfd is the read end of the
 * report pipe, for ch_collect or the caller's own loop. Returns the pid,
 * or -1. */
pid_t ch_spawn(void (*fn)(void *arg, int wfd), void *arg, int *rfd);

/* Read exactly len bytes of a spawned child's report (within max_s),
 * close rfd, reap it; on a timeout it is killed (SIGKILL) first. True
 * when the report came and it exited 0. */
bool ch_collect(pid_t pid, int rfd, void *rep, size_t len, double max_s);

/* Run fn(arg, wfd) in a forked child (ch_spawn), which must write exactly
 * rep_len bytes of report to wfd, and collect it (ch_collect). */
bool ch_run(void (*fn)(void *arg, int wfd), void *arg, void *rep,
            size_t rep_len, double max_s);

/* Make the system call nr fail with errnum in this process and its
 * children, as a container's seccomp profile or an old kernel does (for
 * a child: the filter cannot be removed). False when the filter cannot be
 * installed or this architecture is not handled here. */
bool ch_deny_syscall(long nr, int errnum);

/* Write the whole report or exit the child with status 9. */
void ch_report(int wfd, const void *rep, size_t len);

#endif
