/* bh_exec on a real libevent loop with real processes: output, exit
 * status, signals, truncation, environment changes, spawn failures, the
 * timeout killing the whole process group, cancel, and no fd leaks. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "loop.h"
#include "testutil.h"

typedef struct outcome {
  int calls;
  bh_exec_result res;
  char *out, *err; /* taken from the result */
} outcome;

static void on_done(bh_exec_result *res, void *ctx) {
  outcome *o = ctx;
  o->calls++;
  o->res = *res;
  o->out = res->out[BH_EXEC_STDOUT].data;
  o->err = res->out[BH_EXEC_STDERR].data;
  res->out[BH_EXEC_STDOUT].data = NULL; /* taken */
  res->out[BH_EXEC_STDERR].data = NULL;
}

/* Run argv to completion on a fresh loop. */
static bh_status run(const char *const *argv, const char *const *env,
                     double timeout, size_t max, outcome *o, bh_err *err) {
  memset(o, 0, sizeof *o);
  struct event_base *base = bh_loop_new();
  bh_exec_opts opts = {argv, env, timeout, max};
  bh_exec *e = bh_exec_start(base, &opts, on_done, o, err);
  if (e == NULL) {
    bh_loop_free(base);
    return err->code;
  }
  event_base_dispatch(base);
  bh_loop_free(base);
  return BH_OK;
}

static void outcome_free(outcome *o) {
  free(o->out);
  free(o->err);
}

static void test_echo_and_status(void) {
  outcome o;
  bh_err err;
  const char *echo[] = {"echo", "hello", "world", NULL};
  CHECK_CODE(run(echo, NULL, 0, 0, &o, &err), BH_OK, &err);
  CHECK_INT(o.calls, 1);
  CHECK_STR(o.out, "hello world\n");
  CHECK_STR(o.err, "");
  CHECK_INT(o.res.status, 0);
  CHECK_INT(o.res.signal, 0);
  CHECK(!o.res.timed_out);
  CHECK(!o.res.out[0].truncated);
  outcome_free(&o);

  const char *fail[] = {"sh", "-c", "echo oops >&2; exit 3", NULL};
  CHECK_CODE(run(fail, NULL, 0, 0, &o, &err), BH_OK, &err);
  CHECK_INT(o.res.status, 3);
  CHECK_STR(o.err, "oops\n");
  CHECK_STR(o.out, "");
  outcome_free(&o);

  /* stdin is /dev/null: cat ends at once. */
  const char *cat[] = {"cat", NULL};
  CHECK_CODE(run(cat, NULL, 0, 0, &o, &err), BH_OK, &err);
  CHECK_INT(o.res.status, 0);
  CHECK_INT(o.res.out[0].len, 0);
  outcome_free(&o);
}

static void test_signal(void) {
  outcome o;
  bh_err err;
  const char *argv[] = {"sh", "-c", "kill -TERM $$", NULL};
  CHECK_CODE(run(argv, NULL, 0, 0, &o, &err), BH_OK, &err);
  CHECK_INT(o.res.signal, SIGTERM);
  CHECK_INT(o.res.status, -1);
  CHECK(!o.res.timed_out);
  outcome_free(&o);
  /* SIGPIPE ignored here is back to default in the child. */
  signal(SIGPIPE, SIG_IGN);
  const char *ign[] = {"grep", "SigIgn", "/proc/self/status", NULL};
  CHECK_CODE(run(ign, NULL, 0, 0, &o, &err), BH_OK, &err);
  unsigned long long ignored =
      o.out && strlen(o.out) > 7 ? strtoull(o.out + 7, NULL, 16) : ~0ull;
  CHECK((ignored & (1ull << (SIGPIPE - 1))) == 0);
  outcome_free(&o);
  signal(SIGPIPE, SIG_DFL);
}

static void test_truncation(void) {
  outcome o;
  bh_err err;
  /* 3 MB on stdout, a little on stderr: stdout keeps exactly 1 MiB and
   * the child still runs to its end (we keep reading and dropping). */
  const char *argv[] = {"sh", "-c", "head -c 3000000 /dev/zero; echo done >&2",
                        NULL};
  CHECK_CODE(run(argv, NULL, 0, 0, &o, &err), BH_OK, &err);
  CHECK_INT(o.res.out[0].len, BH_EXEC_DEFAULT_MAX_OUTPUT);
  CHECK(o.res.out[0].truncated);
  CHECK(!o.res.out[1].truncated);
  CHECK_STR(o.err, "done\n");
  CHECK_INT(o.res.status, 0);
  outcome_free(&o);
  /* A small cap, exactly met, is not truncation. */
  const char *four[] = {"printf", "abcd", NULL};
  CHECK_CODE(run(four, NULL, 0, 4, &o, &err), BH_OK, &err);
  CHECK_STR(o.out, "abcd");
  CHECK(!o.res.out[0].truncated);
  outcome_free(&o);
  CHECK_CODE(run(four, NULL, 0, 3, &o, &err), BH_OK, &err);
  CHECK_STR(o.out, "abc");
  CHECK(o.res.out[0].truncated);
  outcome_free(&o);
}

static void test_env(void) {
  outcome o;
  bh_err err;
  setenv("BH_EXEC_GONE", "x", 1);
  setenv("BH_EXEC_KEPT", "k", 1);
  const char *argv[] = {
      "sh", "-c", "echo \"$BH_EXEC_NEW|${BH_EXEC_GONE-unset}|$BH_EXEC_KEPT\"",
      NULL};
  const char *env[] = {"BH_EXEC_NEW=a=b", "BH_EXEC_GONE", NULL};
  CHECK_CODE(run(argv, env, 0, 0, &o, &err), BH_OK, &err);
  CHECK_STR(o.out, "a=b|unset|k\n");
  outcome_free(&o);
}

static void test_spawn_failure(void) {
  outcome o;
  bh_err err;
  if (getenv("BH_UNDER_VALGRIND") != NULL) {
    /* valgrind runs posix_spawn's vfork as a fork: a failed exec then
     * shows as an exit status of 127, not as an error from posix_spawn. */
    printf("  SKIP under valgrind: posix_spawn cannot report exec errors\n");
    CHECK(true);
    return;
  }
  const char *missing[] = {"/nonexistent/prog", NULL};
  CHECK_CODE(run(missing, NULL, 0, 0, &o, &err), BH_SYSTEM, &err);
  CHECK(strstr(err.message, "/nonexistent/prog") != NULL);
  CHECK(strstr(err.message, strerror(ENOENT)) != NULL);
  CHECK_INT(o.calls, 0);
  const char *nopath[] = {"bh-no-such-program-anywhere", NULL};
  CHECK_CODE(run(nopath, NULL, 0, 0, &o, &err), BH_SYSTEM, &err);
  const char *empty[] = {NULL};
  CHECK_CODE(run(empty, NULL, 0, 0, &o, &err), BH_SYSTEM, &err);
  /* No zombie or child left behind. */
  CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

/* The child starts a grandchild in its group and waits; after the timeout
 * both must be dead. We are the subreaper, so the orphaned grandchild
 * comes back to us and we can see what killed it. The bound on elapsed is
 * only "it ended" (20 s slack for a loaded machine). */
static void test_timeout_kills_group(void) {
  outcome o;
  bh_err err;
  CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  const char *argv[] = {"sh", "-c", "sleep 100 & echo $!; wait", NULL};
  CHECK_CODE(run(argv, NULL, 0.3, 0, &o, &err), BH_OK, &err);
  CHECK(o.res.timed_out);
  CHECK_INT(o.res.signal, SIGKILL);
  CHECK(o.res.elapsed >= 0.29 && o.res.elapsed < 20);
  pid_t grandchild = o.out ? (pid_t)atoi(o.out) : 0;
  CHECK(grandchild > 0);
  if (grandchild > 0) {
    int status = 0;
    CHECK(waitpid(grandchild, &status, 0) == grandchild);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  outcome_free(&o);
  CHECK(prctl(PR_SET_CHILD_SUBREAPER, 0) == 0);
}

static void never(bh_exec_result *res, void *ctx) {
  (*(int *)ctx)++;
}

static void test_cancel(void) {
  struct event_base *base = bh_loop_new();
  int calls = 0;
  const char *argv[] = {"sleep", "100", NULL};
  bh_exec_opts opts = {argv, NULL, 0, 0};
  bh_err err;
  bh_exec *e = bh_exec_start(base, &opts, never, &calls, &err);
  CHECK(e != NULL);
  if (e == NULL) return;
  pid_t pid = bh_exec_pid(e);
  CHECK(pid > 0);
  CHECK(getpgid(pid) == pid); /* its own process group */
  bh_exec_cancel(e);
  CHECK(kill(pid, 0) != 0 && errno == ESRCH); /* killed and reaped */
  event_base_loop(base, EVLOOP_NONBLOCK);
  CHECK_INT(calls, 0);
  bh_loop_free(base);
}

int main(void) {
  int fds = bh_test_count_fds();
  RUN(test_echo_and_status);
  RUN(test_signal);
  RUN(test_truncation);
  RUN(test_env);
  RUN(test_spawn_failure);
  RUN(test_timeout_kills_group);
  RUN(test_cancel);
  CHECK_INT(bh_test_count_fds(), fds);
  return bh_test_summary();
}
