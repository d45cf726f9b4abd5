/* Resource limits and the hostile peers no other test covers:
 * 100,000 probes in one process with no descriptor leak, a socket another
 * user cannot open (mode 0600, or a directory it cannot search) →
 * connect, identity strings holding NUL or invalid UTF-8 sent over a real
 * socket → decode_identity, clients that trickle or vanish. SIGINT on a
 * policy that never yields is in test_task_sigint.c. Floods of connections are
 * in test_respond_flood.c, memory per connection in test_probe_memory.c,
 * decoding costs in test_pbutil_decode.c. */
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop.h"
#include "net_helpers.h"
#include "wire.h"

enum {
  PROBES_TOTAL = 100000,
  IN_FLIGHT = 500,
  NOBODY = 65534,
};

static struct event_base *base;
static bh_endpoint ep; /* tmpdir/l.sock */
static bh_identity me; /* this process, at ep */

/* ---- 100,000 probes, no descriptor leak ---------------------------------
 */

typedef struct pool {
  int started, done, ok, full;
  bh_err first_err;
} pool;

static void pool_start(pool *pl);

/* One probe finished: count it and start the next, keeping IN_FLIGHT in
 * flight. Whatever the result holds is freed after this returns. */
static void on_pool_probe(bh_probe_result *res, void *ctx) {
  pool *pl = ctx;
  pl->done++;
  if (res->err.code == BH_OK)
    pl->ok++;
  else if (pl->first_err.code == BH_OK)
    pl->first_err = res->err;
  if (res->proc.pid > 0) pl->full++;
  if (pl->started < PROBES_TOTAL) pool_start(pl);
}

/* Start one probe: every tenth a full probe (verify_pid holds a pidfd,
 * so its release is counted too), the rest response-only. */
static void pool_start(pool *pl) {
  bh_probe_opts o = response_only_opts(10.0);
  if (pl->started % 10 == 0) {
    o = bh_probe_opts_default();
    o.timeout = 10.0;
  }
  pl->started++;
  if (bh_probe_start(base, &ep, &me, &o, on_pool_probe, pl) == NULL) {
    pl->done++;
    CHECK(!"bh_probe_start returned NULL");
  }
}

static bool pool_done(void *arg) {
  return ((pool *)arg)->done == PROBES_TOTAL;
}

static bool no_open_conns(void *arg) {
  return bh_respond_open_conns(arg) == 0;
}

static void test_hundred_thousand_probes(void) {
  int fds0 = bh_test_count_fds();
  bh_err err;
  bh_responder *r = bh_respond_start(base, &ep, &me, NULL, &err);
  CHECK(r != NULL);
  if (r == NULL) return;
  int fds1 = bh_test_count_fds();
  static pool pl;
  double t0 = bh_test_now();
  for (int i = 0; i < IN_FLIGHT; i++)
    pool_start(&pl);
  CHECK(loop_until(base, pool_done, &pl, 240.0));
  double took = bh_test_now() - t0;
  CHECK(loop_until(base, no_open_conns, r, 10.0));
  int fds2 = bh_test_count_fds();
  printf(
      "  %d probes (%d full), %d ok in %.2f s; descriptors %d before, "
      "%d after\n",
      pl.done, pl.full, pl.ok, took, fds1, fds2);
  CHECK_INT(pl.ok, PROBES_TOTAL);
  if (pl.first_err.code != BH_OK)
    CHECK_CODE(pl.first_err.code, BH_OK, &pl.first_err);
  CHECK_INT(pl.full, PROBES_TOTAL / 10);
  CHECK_INT(bh_respond_served(r), PROBES_TOTAL);
  CHECK_INT(bh_respond_rejected(r), 0);
  CHECK_INT(fds2, fds1);
  bh_respond_free(r);
  CHECK_INT(bh_test_count_fds(), fds0);
}

/* ---- a socket another user may not open ---------------------------------
 */

/* Reaps the child once; true from then on (loop_until asks again). */
static bool child_exited(void *arg) {
  int *st = arg; /* [0] pid in (0 once reaped), [1] wait status out */
  if (st[0] != 0 && waitpid(st[0], &st[1], WNOHANG) == st[0]) st[0] = 0;
  return st[0] == 0;
}

/* A 10 ms tick, so that loop_until re-checks child_exited even when
 * nothing else happens on the loop. */
static void on_tick(evutil_socket_t fd, short what, void *arg) {}

/* Fork a child that becomes nobody and probes path (response-only, no
 * expected identity) on its own loop; it sends back its bh_err through a
 * pipe and exits with the status number. Meanwhile this process runs its
 * loop, so a responder here can answer. Returns the child's status. */
static bh_status probe_as_nobody(const char *path, bh_err *err) {
  int pfd[2];
  CHECK(pipe2(pfd, O_CLOEXEC) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
      _exit(100);
    struct event_base *b = bh_loop_new();
    bh_endpoint pep = {0};
    bh_err e;
    if (b == NULL || bh_endpoint_set(&pep, "test", path, &e) != BH_OK)
      _exit(101);
    probe_out out;
    bh_probe_opts o = response_only_opts(5.0);
    run_probe(b, &pep, NULL, &o, &out);
    if (write(pfd[1], &out.err, sizeof out.err) != (ssize_t)sizeof out.err)
      _exit(102);
    _exit(out.err.code);
  }
  close(pfd[1]);
  int st[2] = {pid, 0};
  struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
  struct timeval tv = {0, 10000};
  CHECK(tick != NULL && event_add(tick, &tv) == 0);
  CHECK(loop_until(base, child_exited, st, 20.0));
  event_free(tick);
  bh_err_clear(err);
  CHECK_INT(read(pfd[0], err, sizeof *err), sizeof *err);
  close(pfd[0]);
  CHECK(WIFEXITED(st[1]));
  return WIFEXITED(st[1]) ? (bh_status)WEXITSTATUS(st[1]) : BH_SYSTEM;
}

/* Start a responder for `me` at dir/name with the given socket mode. */
static bh_responder *respond_at(const char *path, unsigned mode) {
  bh_endpoint e = {0};
  bh_err err;
  CHECK_CODE(bh_endpoint_set(&e, "test", path, &err), BH_OK, &err);
  bh_respond_opts o = bh_respond_opts_default();
  o.mode = mode;
  bh_responder *r = bh_respond_start(base, &e, &me, &o, &err);
  CHECK(r != NULL);
  if (r == NULL) fprintf(stderr, "respond %s: %s\n", path, err.message);
  bh_endpoint_clear(&e);
  return r;
}

static void expect_as_nobody(const char *path, bh_status want) {
  bh_err err;
  CHECK_CODE(probe_as_nobody(path, &err), want, &err);
  CHECK_INT(err.code, want); /* what came through the pipe agrees */
  if (want == BH_CONNECT) CHECK(strstr(err.message, strerror(EACCES)) != NULL);
}

/* Root's socket with mode 0600 in a directory nobody may search: the
 * probe fails with connect (permission denied). Mode 0666 there works
 * (proves the child can probe at all); a 0666 socket in a directory
 * nobody cannot search is connect again. */
static void test_other_user_socket(void) {
  char open_dir[128], shut_dir[128], p600[160], p666[160], pshut[160];
  CHECK(chmod(bh_test_tmpdir(), 0711) == 0);
  CHECK(mkdir(bh_test_path(open_dir, sizeof open_dir, "open"), 0711) == 0);
  CHECK(mkdir(bh_test_path(shut_dir, sizeof shut_dir, "shut"), 0700) == 0);
  snprintf(p600, sizeof p600, "%s/a.sock", open_dir);
  snprintf(p666, sizeof p666, "%s/b.sock", open_dir);
  snprintf(pshut, sizeof pshut, "%s/c.sock", shut_dir);
  bh_responder *r600 = respond_at(p600, 0600);
  bh_responder *r666 = respond_at(p666, 0666);
  bh_responder *rshut = respond_at(pshut, 0666);
  struct stat st;
  CHECK(stat(p600, &st) == 0 && st.st_uid == 0 && (st.st_mode & 0777) == 0600);
  expect_as_nobody(p666, BH_OK);
  expect_as_nobody(p600, BH_CONNECT);
  expect_as_nobody(pshut, BH_CONNECT);
  CHECK_INT(bh_respond_served(r666), 1);
  CHECK_INT(bh_respond_served(r600) + bh_respond_served(rshut), 0);
  bh_respond_free(r600);
  bh_respond_free(r666);
  bh_respond_free(rshut);
  CHECK(chmod(bh_test_tmpdir(), 0700) == 0);
}

/* ---- NUL and invalid UTF-8 in identity strings, over a socket -----------
 */

typedef struct raw_hook {
  const char *tail; /* appended to `me`'s encoding (later fields win) */
  size_t tail_len;
  uint8_t *out; /* the framed response, freed before the next */
} raw_hook;

/* Answer with `me`'s DaemonProcess followed by h->tail: a later
 * occurrence of a string field replaces the earlier one, and an embedded
 * message is merged, so the tail rewrites one string of a valid identity. */
static void raw_identity_hook(bh_responder *r, const bh_request *req,
                              bh_reply *reply, void *ctx) {
  raw_hook *h = ctx;
  uint8_t *id = NULL, buf[1024];
  size_t idn = 0, outn = 0;
  bh_err err;
  free(h->out);
  h->out = NULL;
  CHECK_CODE(bh_identity_encode(&me, BH_FORM_ANSWER, &id, &idn, &err), BH_OK,
             &err);
  CHECK(idn + h->tail_len <= sizeof buf);
  memcpy(buf, id, idn);
  memcpy(buf + idn, h->tail, h->tail_len);
  free(id);
  CHECK_CODE(bh_probe_response_build_raw(req, buf, idn + h->tail_len, &h->out,
                                         &outn, &err),
             BH_OK, &err);
  reply->kind = BH_REPLY_RAW;
  reply->raw = h->out;
  reply->raw_len = outn;
}

static void test_bad_identity_strings(void) {
  static const struct {
    const char *tail;
    size_t len;
    const char *field; /* named in the message; NULL for success */
  } cases[] = {
      {"", 0, NULL},
      {"\x12\x03/\0b", 5, "exe_path"},  /* NUL */
      {"\x12\x02/\xff", 4, "exe_path"}, /* bad UTF-8 */
      {"\x32\x03"
       "a\0b",
       5, "boot_id"},                                           /* NUL */
      {"\x32\x03\xed\xa0\x80", 5, "boot_id"},                   /* surrogate */
      {"\x22\x05\x0a\x03n\0s", 7, "ipc_endpoint.namespace_id"}, /* NUL */
      {"\x22\x04\x12\x02\xc0\x80", 6, "ipc_endpoint.path"},     /* overlong */
  };
  raw_hook h = {0};
  bh_respond_opts ro = bh_respond_opts_default();
  ro.hook = raw_identity_hook;
  ro.hook_ctx = &h;
  bh_err err;
  bh_responder *r = bh_respond_start(base, &ep, &me, &ro, &err);
  CHECK(r != NULL);
  if (r == NULL) return;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    h.tail = cases[i].tail;
    h.tail_len = cases[i].len;
    probe_out out;
    bh_probe_opts o = response_only_opts(2.0);
    run_probe(base, &ep, &me, &o, &out);
    if (cases[i].field == NULL) {
      CHECK_CODE(out.err.code, BH_OK, &out.err);
    } else {
      CHECK_CODE(out.err.code, BH_DECODE_IDENTITY, &out.err);
      CHECK(strstr(out.err.message, cases[i].field) != NULL);
    }
    probe_out_clear(&out);
  }
  bh_respond_free(r);
  free(h.out);
}

/* ---- clients that trickle, or leave before the answer ------------------
 */

typedef struct trickle {
  int fd;
  const uint8_t *req;
  size_t len, sent;
} trickle;

/* Send the next byte of a valid request (50 ms apart: the whole request
 * would take over 2 s, far past the responder's 0.4 s deadline). */
static void on_trickle(evutil_socket_t fd, short what, void *arg) {
  trickle *t = arg;
  if (t->sent < t->len && send(t->fd, t->req + t->sent, 1, MSG_NOSIGNAL) == 1)
    t->sent++;
}

static bool rejected_is(void *arg) {
  const uint64_t *w = arg; /* [0] wanted count, [1] the responder */
  return bh_respond_rejected((bh_responder *)(uintptr_t)w[1]) >= w[0];
}

/* A client trickling a valid request byte by byte is dropped at the
 * connection deadline (not before), counted, and sent nothing. */
static void trickling_client(bh_responder *r, const uint8_t *req, size_t n) {
  uint64_t want[2] = {bh_respond_rejected(r) + 1, (uintptr_t)r};
  trickle t = {connect_raw(ep.path), req, n, 0};
  CHECK(t.fd >= 0);
  struct event *tick = event_new(base, -1, EV_PERSIST, on_trickle, &t);
  struct timeval tv = {0, 50000};
  CHECK(tick != NULL && event_add(tick, &tv) == 0);
  double t0 = bh_test_now();
  CHECK(loop_until(base, rejected_is, want, 5.0));
  double took = bh_test_now() - t0;
  event_free(tick);
  CHECK(took >= 0.4 * 0.9);        /* at the deadline, not before */
  CHECK(t.sent > 2 && t.sent < n); /* bytes came, the request never did */
  char c;
  CHECK(read(t.fd, &c, 1) <= 0); /* EOF or reset: no answer */
  close(t.fd);
}

/* A client that sends a whole valid request and closes before reading:
 * the answer meets EPIPE. SIGPIPE is at its default (deadly) here, so
 * this also proves the responder sends with MSG_NOSIGNAL. */
static void vanishing_client(bh_responder *r, const uint8_t *req, size_t n) {
  uint64_t want[2] = {bh_respond_rejected(r) + 1, (uintptr_t)r};
  uint64_t served = bh_respond_served(r);
  int fd = connect_raw(ep.path);
  CHECK(fd >= 0);
  CHECK_INT(write(fd, req, n), n);
  close(fd); /* before the loop runs: the responder has not accepted yet */
  CHECK(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
  CHECK(loop_until(base, rejected_is, want, 5.0));
  CHECK(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
  CHECK_INT(bh_respond_served(r), served); /* not an answer */
}

static void test_slow_and_vanishing_clients(void) {
  bh_err err;
  bh_respond_opts ro = bh_respond_opts_default();
  ro.conn_timeout = 0.4;
  bh_responder *r = bh_respond_start(base, &ep, &me, &ro, &err);
  CHECK(r != NULL);
  uint8_t nonce[BH_NONCE_LEN] = {7}, *req = NULL;
  size_t n = 0;
  CHECK_CODE(bh_probe_request_build(nonce, &req, &n, &err), BH_OK, &err);
  if (r == NULL || req == NULL) goto end;
  trickling_client(r, req, n);
  vanishing_client(r, req, n);
  probe_out out;
  bh_probe_opts o = response_only_opts(2.0);
  run_probe(base, &ep, &me, &o, &out); /* still serving */
  CHECK_CODE(out.err.code, BH_OK, &out.err);
  probe_out_clear(&out);
  CHECK_INT(bh_respond_rejected(r), 2);
  CHECK_INT(bh_respond_open_conns(r), 0);
end:
  free(req);
  bh_respond_free(r);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  make_endpoint(&ep, "l.sock");
  make_identity(&ep, &me);
  base = bh_loop_new();
  RUN(test_hundred_thousand_probes);
  RUN_ROOT(test_other_user_socket, "a socket owned by another uid");
  RUN(test_bad_identity_strings);
  RUN(test_slow_and_vanishing_clients);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
  bh_loop_free(base);
  return bh_test_summary();
}
