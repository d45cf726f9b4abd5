/* Running a command as a reaction (bh.exec): no shell, its own process
 * group, stdin from /dev/null, stdout and stderr read through non-blocking
 * pipes on a libevent loop and each capped (truncation flagged), an
 * optional timeout after which the whole process group gets SIGKILL. The
 * child's exit is seen through a pidfd, so nothing depends on SIGCHLD;
 * where pidfd_open is missing or refused (old kernels, seccomp, valgrind)
 * a timer polls waitpid(WNOHANG) instead, which is just as exact (the
 * child stays a zombie, its pid reserved, until we reap it) but sees the
 * exit up to 50 ms late. Knows nothing of Lua. */
#ifndef BH_EXEC_H
#define BH_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "clock.h"
#include "status.h"

struct event_base;
typedef struct bh_exec bh_exec;

#define BH_EXEC_DEFAULT_MAX_OUTPUT ((size_t)1024 * 1024)
/* Timeouts above the longest timer (about 31.7 years) are no timeout. */
#define BH_EXEC_MAX_TIMEOUT BH_TIMEVAL_MAX_SECONDS

typedef struct bh_exec_opts {
  /* NULL-terminated; argv[0] is looked up in this process's PATH. */
  const char *const *argv;
  /* NULL-terminated environment changes, may be NULL: "NAME=VALUE" sets
   * or overrides NAME, a bare "NAME" removes it. The rest of this
   * process's environment is inherited. */
  const char *const *env;
  double timeout;    /* seconds; <= 0, NaN or above BH_EXEC_MAX_TIMEOUT
                        (+inf included) = no timeout */
  size_t max_output; /* per stream, bytes; 0 = BH_EXEC_DEFAULT_MAX_OUTPUT */
} bh_exec_opts;

enum { BH_EXEC_STDOUT = 0, BH_EXEC_STDERR = 1 };

typedef struct bh_exec_stream {
  char *data; /* NUL-terminated (data[len] == 0); may hold NULs; never NULL */
  size_t len;
  bool truncated; /* more was written than max_output; the rest dropped */
} bh_exec_stream;

typedef struct bh_exec_result {
  pid_t pid;
  int status;            /* exit status, or -1 when killed by a signal */
  int signal;            /* the killing signal, or 0 */
  bool timed_out;        /* the timeout fired and the group was SIGKILLed */
  double elapsed;        /* seconds from start to exit */
  bh_exec_stream out[2]; /* BH_EXEC_STDOUT, BH_EXEC_STDERR */
} bh_exec_result;

/* Called once from the loop when the child has exited and been reaped.
 * The callback may take out[i].data (set it to NULL); whatever is left is
 * freed after it returns, together with the bh_exec. */
typedef void (*bh_exec_cb)(bh_exec_result *res, void *ctx);

/* Spawn the command. Returns NULL when it cannot be started: BH_SYSTEM
 * with the program name and strerror (not found, not executable, out of
 * descriptors...); then nothing is left running. Output written before
 * the child exits is kept; output of leftover group members after that is
 * not waited for. */
bh_exec *bh_exec_start(struct event_base *base, const bh_exec_opts *opts,
                       bh_exec_cb cb, void *ctx, bh_err *err);

/* Kill the process group (SIGKILL), reap the child and free everything;
 * the callback is not called. Not from inside the callback, not after
 * completion. */
void bh_exec_cancel(bh_exec *e);

/* The child's pid (its process group id too). */
pid_t bh_exec_pid(const bh_exec *e);

#endif
