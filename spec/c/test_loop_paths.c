/* The I/O path of a loop (loop.h, design §4.3): BH_IO chooses
 * it ("uring", "epoll", empty or unset: automatic, anything else is
 * refused), and a probe and a responder work on either. Where the kernel
 * refuses io_uring (a seccomp filter making io_uring_setup fail with
 * ENOSYS or EPERM, as container profiles and old kernels do;
 * kernel.io_uring_disabled gives EPERM too) an automatic choice falls
 * back to epoll and says so once, at debug level, and BH_IO=uring fails
 * with the reason. */
#include <sys/syscall.h>

#include "child_helpers.h"
#include "log.h"
#include "loop.h"
#include "net_helpers.h"
#include "uring.h"

static bh_endpoint ep;
static bh_identity me;

/* Would an automatic loop get a ring here? */
static bool kernel_has_uring(void) {
  struct event_base *b = event_base_new();
  bh_err err;
  bh_uring *u = b != NULL ? bh_uring_new(b, &err) : NULL;
  bool yes = u != NULL;
  bh_uring_free(u);
  if (b != NULL) event_base_free(b);
  return yes;
}

/* A responder and a response-only probe on base: the probe's code. */
static bh_status exchange(struct event_base *base) {
  bh_err err;
  bh_responder *r = bh_respond_start(base, &ep, &me, NULL, &err);
  if (r == NULL) return err.code;
  probe_out out;
  bh_probe_opts o = response_only_opts(5.0);
  run_probe(base, &ep, &me, &o, &out);
  bh_status st = out.err.code;
  probe_out_clear(&out);
  bh_respond_free(r);
  return st;
}

/* Open a loop with BH_IO set to v (NULL: unset): its path, or -1 when it
 * was refused (err says why). */
static int open_with(const char *v, bh_err *err) {
  if (v != NULL)
    setenv("BH_IO", v, 1);
  else
    unsetenv("BH_IO");
  bh_err_clear(err);
  struct event_base *b = bh_loop_open(err);
  if (b == NULL) return -1;
  int io = (int)bh_loop_io(b);
  CHECK_CODE(exchange(b), BH_OK, NULL);
  bh_loop_free(b);
  return io;
}

static void test_bh_io(void) {
  char *saved = getenv("BH_IO") ? strdup(getenv("BH_IO")) : NULL;
  bool uring = kernel_has_uring();
  int automatic = uring ? BH_IO_URING : BH_IO_EPOLL;
  printf("  this kernel %s io_uring\n", uring ? "gives" : "refuses");
  bh_err err;
  CHECK_INT(open_with(NULL, &err), automatic);
  CHECK_INT(open_with("", &err), automatic);
  CHECK_INT(open_with("epoll", &err), BH_IO_EPOLL);
  CHECK_INT(open_with("uring", &err), uring ? BH_IO_URING : -1);
  if (!uring) CHECK(strncmp(err.message, "BH_IO=uring: ", 13) == 0);
  CHECK_INT(open_with("io_uring", &err), -1);
  CHECK_STR(err.message,
            "BH_IO must be \"uring\", \"epoll\" or empty, got \"io_uring\"");
  CHECK_STR(bh_io_path_name(BH_IO_URING), "uring");
  CHECK_STR(bh_io_path_name(BH_IO_EPOLL), "epoll");
  if (saved != NULL)
    setenv("BH_IO", saved, 1);
  else
    unsetenv("BH_IO");
  free(saved);
}

/* ---- io_uring refused ---------------------------------------------------- */

typedef struct refused_report {
  bool filtered;
  int setup_errno;   /* what io_uring_setup says now */
  int auto_io[2];    /* two automatic loops */
  bh_status auto_ok; /* a probe on the first */
  bool forced_refused;
  char forced[BH_ERR_MESSAGE_MAX];
  char log[512]; /* what went to stderr */
} refused_report;

/* In a child: io_uring_setup fails with errnum; two automatic loops and
 * a forced one; stderr (debug level) goes to a file that is read back. */
static void refused_child(void *arg, int wfd) {
  refused_report r = {0};
  r.filtered = ch_deny_syscall(SYS_io_uring_setup, *(const int *)arg);
  r.setup_errno = syscall(SYS_io_uring_setup, 1, NULL) < 0 ? errno : 0;
  char path[256];
  bh_test_path(path, sizeof path, "stderr.txt");
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(7);
  bh_log_set_threshold(BH_LOG_DEBUG);
  unsetenv("BH_IO");
  for (int i = 0; i < 2; i++) {
    struct event_base *b = bh_loop_new();
    r.auto_io[i] = b != NULL ? (int)bh_loop_io(b) : -1;
    if (i == 0 && b != NULL) r.auto_ok = exchange(b);
    bh_loop_free(b);
  }
  setenv("BH_IO", "uring", 1);
  bh_err err;
  bh_err_clear(&err);
  struct event_base *b = bh_loop_open(&err);
  r.forced_refused = b == NULL;
  bh_loop_free(b);
  snprintf(r.forced, sizeof r.forced, "%s", err.message);
  ssize_t n = pread(fd, r.log, sizeof r.log - 1, 0);
  r.log[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
  ch_report(wfd, &r, sizeof r);
}

static void test_refused_falls_back(void) {
  static const int errnums[] = {ENOSYS, EPERM};
  for (size_t i = 0; i < 2; i++) {
    refused_report r;
    CHECK(ch_run(refused_child, (void *)&errnums[i], &r, sizeof r, 60.0));
    if (!r.filtered) {
      printf("  SKIP: cannot install a seccomp filter here\n");
      CHECK(true);
      return;
    }
    printf("  io_uring_setup failing with %s: loops %s and %s, log: %s",
           strerror(errnums[i]), bh_io_path_name(r.auto_io[0]),
           bh_io_path_name(r.auto_io[1]), r.log);
    CHECK_INT(r.setup_errno, errnums[i]);
    CHECK_INT(r.auto_io[0], BH_IO_EPOLL);
    CHECK_INT(r.auto_io[1], BH_IO_EPOLL);
    CHECK_CODE(r.auto_ok, BH_OK, NULL);
    char want[200];
    snprintf(want, sizeof want,
             "bhprobe-lua: debug: io_uring is not available (io_uring_setup: "
             "%s): using epoll\n",
             strerror(errnums[i]));
    CHECK_STR(r.log, want); /* once, for two loops */
    CHECK(r.forced_refused);
    snprintf(want, sizeof want, "BH_IO=uring: io_uring_setup: %s",
             strerror(errnums[i]));
    CHECK_STR(r.forced, want);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  make_endpoint(&ep, "l.sock");
  make_identity(&ep, &me);
  /* The children first: the fallback is said once per process, and they
   * are forked from this one. */
  RUN(test_refused_falls_back);
  RUN(test_bh_io);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
  return bh_test_summary();
}
