/* Helpers shared by the tests that verify real processes (test_proc_verify.c,
 * test_proc_attacks.c, test_probe_hash.c, test_probe_peer.c): a copy of
 * the test's own binary, run as "COPY block" so that the child's
 * /proc/PID/exe is the copy; waiting until that exec has happened; and a
 * plain forked child blocked on a pipe. Defined in proc_helpers.c
 * (bhtestutil). */
#ifndef BH_PROC_HELPERS_H
#define BH_PROC_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "identity.h"
#include "testutil.h"

/* Copy this test's binary to path, with `extra` bytes appended (an ELF
 * file runs the same with trailing bytes; its digests differ). */
void copy_self(const char *path, size_t extra);

/* Run exe (a copy of this binary) as "exe block": it blocks reading stdin
 * until *wfd closes, then exits 0 (see block_mode). With over != NULL the
 * child first moves to a mount namespace of its own and bind-mounts `over`
 * on exe there; when that is refused it exits 126. */
pid_t spawn_copy(const char *exe, const char *over, int *wfd);

/* Wait until the child's exe link names exe (exec is not instantaneous
 * after fork). False when the child exited first, or after 30 s; an
 * exited child is left unreaped, so the caller's waitpid still gets its
 * status. */
bool wait_exec(pid_t child, const char *exe);

/* spawn_copy(exe) and its identity as bh_identity_of_pid reads it into
 * *rec (cleared by the caller; left empty when the exec never shows). */
pid_t spawn_recorded(const char *exe, int *wfd, bh_identity *rec);

/* A forked child blocked reading a pipe; it exits 7 when *wfd closes. */
pid_t spawn_blocked(int *wfd);

/* The child side of spawn_copy, first thing in main:
 *   if (block_mode(argc, argv)) return 0;
 * With argv "block" it reads stdin until end of file (or an error other
 * than EINTR: retrying one would spin forever) and returns true. */
bool block_mode(int argc, char **argv);

#endif
