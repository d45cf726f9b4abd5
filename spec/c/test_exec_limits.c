/* bh.exec's timeouts and its life without pidfd_open. A timeout of 1e19 s
 * or +inf overflowed the seconds-to-timeval conversion into a negative,
 * already expired timer, so the child was killed at once; now durations
 * are clamped (bh_timeval) and a timeout that long is none (exec). Where
 * pidfd_open is missing or refused (old kernels, seccomp, valgrind)
 * bh_exec failed outright and bh_proc_hold turned seccomp's EPERM into
 * `system`; a seccomp filter in a child process makes pidfd_open fail for
 * real (ENOSYS, then EPERM), and exec must still see every exit (polling
 * waitpid) and holding a live pid must still work (by bare pid). */
#include <event2/event.h>
#include <float.h>
#include <math.h>
#include <sys/syscall.h>

#include "child_helpers.h"
#include "clock.h"
#include "exec.h"
#include "loop.h"
#include "proc.h"
#include "procfs.h"

enum { CONCURRENT = 20 };

/* ---- the clamp ------------------------------------------------------------
 */

static void test_timeval_clamp(void) {
  static const double huge[] = {1e19, INFINITY, DBL_MAX, 1e9 + 1, 1e300};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    struct timeval tv = bh_timeval(huge[i]);
    CHECK_INT(tv.tv_sec, (long long)BH_TIMEVAL_MAX_SECONDS);
    CHECK_INT(tv.tv_usec, 0);
  }
  struct timeval tv = bh_timeval(NAN);
  CHECK(tv.tv_sec == 0 && tv.tv_usec == 0);
  tv = bh_timeval(-INFINITY);
  CHECK(tv.tv_sec == 0 && tv.tv_usec == 0);
  tv = bh_timeval(1.25);
  CHECK(tv.tv_sec == 1 && tv.tv_usec == 250000);
}

/* ---- running with a huge timeout ------------------------------------------
 */

typedef struct outcome {
  int calls;
  bh_exec_result res;
  char out[64];
} outcome;

static void on_done(bh_exec_result *res, void *ctx) {
  outcome *o = ctx;
  o->calls++;
  o->res = *res;
  snprintf(o->out, sizeof o->out, "%s", res->out[BH_EXEC_STDOUT].data);
  o->res.out[0].data = o->res.out[1].data = NULL; /* freed after this */
}

/* Run argv with the timeout on a fresh loop until it exits. */
static bh_status run(const char *const *argv, double timeout, outcome *o,
                     bh_err *err) {
  memset(o, 0, sizeof *o);
  struct event_base *b = bh_loop_new();
  bh_exec_opts opts = {argv, NULL, timeout, 0};
  bh_exec *e = bh_exec_start(b, &opts, on_done, o, err);
  if (e != NULL) event_base_dispatch(b);
  bh_loop_free(b);
  return e != NULL ? BH_OK : err->code;
}

static const char *const sleepy[] = {"sh", "-c", "sleep 0.2; echo done", NULL};

static void test_huge_timeouts_wait(void) {
  static const double timeouts[] = {1e19, INFINITY, DBL_MAX, 1e9 + 1, 1e9, NAN};
  for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
    outcome o;
    bh_err err;
    CHECK_CODE(run(sleepy, timeouts[i], &o, &err), BH_OK, &err);
    if (o.res.timed_out || o.res.signal)
      printf("  timeout %g: killed after %.3f s\n", timeouts[i], o.res.elapsed);
    CHECK_INT(o.calls, 1);
    CHECK(!o.res.timed_out);
    CHECK_INT(o.res.signal, 0);
    CHECK_INT(o.res.status, 0);
    CHECK_STR(o.out, "done\n");
    CHECK(o.res.elapsed >= 0.2 * 0.9);
  }
}

/* ---- without pidfd_open -------------------------------------------------- */

typedef struct nopidfd_report {
  bool filtered;       /* the filter is in place */
  int pidfd_errno;     /* what pidfd_open says now */
  bh_status echo_code; /* bh_exec_start of echo */
  int echo_status, exit_status, killed_signal;
  bool echo_out_ok, killed_timed_out;
  double killed_elapsed;
  int concurrent_done, concurrent_ok;
  bh_status hold_code;
  int hold_pidfd;
  bool hold_alive;
  char message[BH_ERR_MESSAGE_MAX];
} nopidfd_report;

typedef struct many {
  int done, ok;
} many;

static void on_many(bh_exec_result *res, void *ctx) {
  many *m = ctx;
  m->done++;
  if (res->status == 7 && res->signal == 0) m->ok++;
}

/* CONCURRENT children on one loop, each exiting 7 after its own short
 * sleep: every exit is seen, by its own waitpid. */
static void run_concurrent(nopidfd_report *r) {
  static const char *const argv[] = {"sh", "-c", "sleep 0.05; exit 7", NULL};
  struct event_base *b = bh_loop_new();
  many m = {0, 0};
  bh_exec_opts opts = {argv, NULL, 10.0, 0};
  for (int i = 0; i < CONCURRENT; i++)
    if (bh_exec_start(b, &opts, on_many, &m, NULL) == NULL) m.done++;
  event_base_dispatch(b);
  bh_loop_free(b);
  r->concurrent_done = m.done;
  r->concurrent_ok = m.ok;
}

static void nopidfd_child(void *arg, int wfd) {
  nopidfd_report r = {0};
  bh_err err;
  bh_err_clear(&err);
  r.filtered = ch_deny_syscall(SYS_pidfd_open, *(const int *)arg);
  r.pidfd_errno = bh_pidfd_open((uint32_t)getpid()) < 0 ? errno : 0;
  static const char *const echo[] = {"echo", "hello", NULL};
  static const char *const fail[] = {"sh", "-c", "exit 3", NULL};
  static const char *const slow[] = {"sleep", "10", NULL};
  outcome o;
  r.echo_code = run(echo, 0, &o, &err);
  snprintf(r.message, sizeof r.message, "%s", err.message);
  r.echo_status = o.res.status;
  r.echo_out_ok = strcmp(o.out, "hello\n") == 0;
  r.exit_status = run(fail, 0, &o, &err) == BH_OK ? o.res.status : -100;
  if (run(slow, 0.3, &o, &err) == BH_OK) {
    r.killed_timed_out = o.res.timed_out;
    r.killed_signal = o.res.signal;
    r.killed_elapsed = o.res.elapsed;
  }
  run_concurrent(&r);
  bh_proc p = BH_PROC_NONE;
  r.hold_code = bh_proc_hold((uint32_t)getppid(), &p, &err);
  if (r.hold_code != BH_OK)
    snprintf(r.message, sizeof r.message, "%s", err.message);
  r.hold_pidfd = p.pidfd;
  r.hold_alive = bh_proc_alive(&p);
  bh_proc_release(&p);
  ch_report(wfd, &r, sizeof r);
}

static void test_without_pidfd(void) {
  static const int errnums[] = {ENOSYS, EPERM};
  for (size_t i = 0; i < 2; i++) {
    nopidfd_report r;
    CHECK(ch_run(nopidfd_child, (void *)&errnums[i], &r, sizeof r, 60.0));
    if (!r.filtered) {
      printf("  SKIP: cannot install a seccomp filter here\n");
      CHECK(true);
      return;
    }
    printf(
        "  pidfd_open failing with %s: echo %s, timeout killed sleep after "
        "%.2f s, %d/%d concurrent exits seen, hold %s (pidfd %d)%s%s\n",
        strerror(errnums[i]), bh_status_name(r.echo_code), r.killed_elapsed,
        r.concurrent_ok, CONCURRENT, bh_status_name(r.hold_code), r.hold_pidfd,
        r.message[0] ? ": " : "", r.message);
    CHECK_INT(r.pidfd_errno, errnums[i]);
    CHECK_CODE(r.echo_code, BH_OK, NULL);
    CHECK_INT(r.echo_status, 0);
    CHECK(r.echo_out_ok);
    CHECK_INT(r.exit_status, 3);
    CHECK(r.killed_timed_out);
    CHECK_INT(r.killed_signal, SIGKILL);
    CHECK(r.killed_elapsed >= 0.3 * 0.9 && r.killed_elapsed < 5.0);
    CHECK_INT(r.concurrent_done, CONCURRENT);
    CHECK_INT(r.concurrent_ok, CONCURRENT);
    CHECK_CODE(r.hold_code, BH_OK, NULL);
    CHECK_INT(r.hold_pidfd, -1); /* held by its bare pid */
    CHECK(r.hold_alive);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_timeval_clamp);
  RUN(test_huge_timeouts_wait);
  RUN(test_without_pidfd);
  return bh_test_summary();
}
