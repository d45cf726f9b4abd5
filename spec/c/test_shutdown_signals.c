/* The shutdown state machine (shutdown.h) against real child processes:
 * one that exits on SIGTERM, one that ignores it, one already gone; with
 * and without a pidfd; and a cancelled wait that never calls back. */
#include <event2/event.h>
#include <signal.h>
#include <unistd.h>

#include "loop.h"
#include "net_helpers.h"
#include "shutdown.h"

static struct event_base *base;

typedef struct outcome {
  bool done;
  bh_shutdown_result res;
} outcome;

static void on_done(const bh_shutdown_result *res, void *ctx) {
  outcome *o = ctx;
  CHECK(!o->done);
  o->done = true;
  o->res = *res;
}

/* A child that sleeps; ignore_term: with SIGTERM ignored. */
static pid_t child(bool ignore_term) {
  pid_t pid = fork();
  if (pid == 0) {
    if (ignore_term) signal(SIGTERM, SIG_IGN);
    for (;;)
      pause();
  }
  CHECK(pid > 0);
  usleep(20000); /* let it install its disposition */
  return pid;
}

/* Hold pid (with or without its pidfd) and shut it down. */
static outcome run_shutdown(pid_t pid, bool use_pidfd, double timeout,
                            bool kill) {
  outcome o = {0};
  bh_proc p;
  bh_err err;
  CHECK_CODE(bh_proc_hold((uint32_t)pid, &p, &err), BH_OK, &err);
  if (!use_pidfd && p.pidfd >= 0) {
    close(p.pidfd);
    p.pidfd = -1;
  }
  bh_shutdown *s = bh_proc_shutdown_start(base, &p, timeout, kill, on_done, &o);
  CHECK(s != NULL);
  CHECK(!o.done); /* never from inside start */
  CHECK(loop_until(base, flag_set, &o.done, 10.0));
  bh_proc_release(&p);
  return o;
}

/* Children are reaped by the kernel (SIGCHLD ignored, see main): a real
 * daemon is not our child, and a zombie would pass kill(pid, 0) in the
 * no-pidfd case. Wait until pid is gone. */
static void reap(pid_t pid) {
  for (int i = 0; i < 1000 && kill(pid, 0) == 0; i++)
    usleep(1000);
  CHECK(kill(pid, 0) != 0);
}

static void test_exits_on_term(void) {
  for (int pidfd = 0; pidfd <= 1; pidfd++) {
    pid_t pid = child(false);
    outcome o = run_shutdown(pid, pidfd, 5.0, false);
    CHECK_CODE(o.res.err.code, BH_OK, &o.res.err);
    CHECK(!o.res.killed);
    CHECK(o.res.elapsed < 4.0);
    reap(pid);
  }
}

static void test_ignores_term(void) {
  for (int pidfd = 0; pidfd <= 1; pidfd++) {
    pid_t pid = child(true);
    outcome o = run_shutdown(pid, pidfd, 0.2, false);
    CHECK_CODE(o.res.err.code, BH_TIMEOUT, &o.res.err);
    CHECK(strstr(o.res.err.message, "still running 0.2 s after SIGTERM") !=
          NULL);
    CHECK(o.res.elapsed >= 0.2); /* the wait is never short */
    o = run_shutdown(pid, pidfd, 0.2, true);
    CHECK_CODE(o.res.err.code, BH_OK, &o.res.err);
    CHECK(o.res.killed);
    reap(pid);
  }
}

static void test_already_gone(void) {
  pid_t pid = child(false);
  bh_proc p;
  bh_err err;
  CHECK_CODE(bh_proc_hold((uint32_t)pid, &p, &err), BH_OK, &err);
  kill(pid, SIGKILL);
  reap(pid); /* gone for good; the pidfd still names it */
  outcome o = {0};
  bh_shutdown *s = bh_proc_shutdown_start(base, &p, 1.0, false, on_done, &o);
  CHECK(loop_until(base, flag_set, &o.done, 10.0));
  CHECK_CODE(o.res.err.code, BH_OK, &o.res.err);
  bh_proc_release(&p);
  (void)s;
}

static void test_cancel(void) {
  pid_t pid = child(true);
  bh_proc p;
  bh_err err;
  CHECK_CODE(bh_proc_hold((uint32_t)pid, &p, &err), BH_OK, &err);
  outcome o = {0};
  bh_shutdown *s = bh_proc_shutdown_start(base, &p, 0.1, false, on_done, &o);
  loop_for(base, 0.05); /* SIGTERM sent, waiting */
  bh_proc_shutdown_cancel(s);
  loop_for(base, 0.2);
  CHECK(!o.done);
  kill(pid, SIGKILL);
  reap(pid);
  bh_proc_release(&p);
}

int main(void) {
  signal(SIGCHLD, SIG_IGN);
  base = bh_loop_new();
  RUN(test_exits_on_term);
  RUN(test_ignores_term);
  RUN(test_already_gone);
  RUN(test_cancel);
  bh_loop_free(base);
  return bh_test_summary();
}
