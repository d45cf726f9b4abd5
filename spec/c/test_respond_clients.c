/* The responder against real clients: binding rules (stale socket
 * replaced, live one refused, non-sockets never removed, mode 0600, close
 * unlinks only its own inode), count and the connection cap (kept by
 * eviction), and hostile clients that are dropped and counted while good
 * probes keep working. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.pb-c.h"
#include "fsutil.h"
#include "loop.h"
#include "net_helpers.h"
#include "stale.h"
#include "wire.h"

static struct event_base *base;
static bh_endpoint ep;
static bh_identity me;

static void expect_probe_ok(const bh_endpoint *e) {
  probe_out out;
  bh_probe_opts o = bh_probe_opts_default();
  run_probe(base, e, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_OK, &out.err);
  probe_out_clear(&out);
}

static bh_responder *start(const bh_respond_opts *o) {
  bh_err err;
  bh_responder *r = bh_respond_start(base, &ep, &me, o, &err);
  CHECK(r != NULL);
  if (r == NULL) fprintf(stderr, "respond: %s\n", err.message);
  return r;
}

static void test_stale_socket_replaced(void) {
  int fd = listen_raw(ep.path, 1);
  close(fd); /* the file stays, nothing listens */
  bh_responder *r = start(NULL);
  expect_probe_ok(&ep);
  CHECK_INT(bh_respond_served(r), 1);
  bh_respond_free(r);
  CHECK(access(ep.path, F_OK) != 0); /* unlinked on close */
}

static void test_live_listener_in_use(void) {
  bh_responder *a = start(NULL);
  bh_err err;
  bh_responder *b = bh_respond_start(base, &ep, &me, NULL, &err);
  CHECK(b == NULL);
  CHECK_CODE(err.code, BH_IN_USE, &err);
  CHECK(strstr(err.message, "live listener") != NULL);
  expect_probe_ok(&ep); /* a still serves */
  bh_respond_free(a);
}

static void test_not_a_socket_untouched(void) {
  int fd = open(ep.path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  CHECK_INT(write(fd, "keep", 4), 4);
  close(fd);
  bh_err err;
  bh_responder *r = bh_respond_start(base, &ep, &me, NULL, &err);
  CHECK(r == NULL);
  CHECK_CODE(err.code, BH_IN_USE, &err);
  CHECK(strstr(err.message, "regular file") != NULL);
  struct stat st;
  CHECK(stat(ep.path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 4);
  bh_stale_result sr;
  CHECK_CODE(bh_fs_remove_stale_socket(ep.path, &sr, &err), BH_OK, &err);
  CHECK(sr.existed && !sr.is_socket && !sr.removed);
  unlink(ep.path);
  char dir[256];
  bh_test_path(dir, sizeof dir, "adir");
  CHECK(mkdir(dir, 0700) == 0);
  bh_endpoint dep = {0};
  bh_endpoint_set(&dep, "test", dir, &err);
  r = bh_respond_start(base, &dep, &me, NULL, &err);
  CHECK(r == NULL);
  CHECK_CODE(err.code, BH_IN_USE, &err);
  CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
  bh_endpoint_clear(&dep);
}

static void test_remove_stale_socket(void) {
  bh_err err;
  bh_stale_result sr;
  CHECK_CODE(bh_fs_remove_stale_socket(ep.path, &sr, &err), BH_OK, &err);
  CHECK(!sr.existed && !sr.removed);
  close(listen_raw(ep.path, 1));
  CHECK_CODE(bh_fs_remove_stale_socket(ep.path, &sr, &err), BH_OK, &err);
  CHECK(sr.existed && sr.is_socket && !sr.live && sr.removed);
  CHECK(access(ep.path, F_OK) != 0);
  bh_responder *r = start(NULL);
  CHECK_CODE(bh_fs_remove_stale_socket(ep.path, &sr, &err), BH_OK, &err);
  CHECK(sr.existed && sr.is_socket && sr.live && !sr.removed);
  CHECK(access(ep.path, F_OK) == 0);
  bh_respond_free(r);
}

static void test_mode(void) {
  struct stat st;
  bh_responder *r = start(NULL);
  CHECK(stat(ep.path, &st) == 0 && S_ISSOCK(st.st_mode));
  CHECK_INT(st.st_mode & 07777, 0600);
  bh_respond_free(r);
  bh_respond_opts o = bh_respond_opts_default();
  o.mode = 0660;
  r = start(&o);
  CHECK(stat(ep.path, &st) == 0);
  CHECK_INT(st.st_mode & 07777, 0660);
  bh_respond_free(r);
}

/* Someone replaced our socket file: close must leave theirs alone. */
static void test_close_only_our_inode(void) {
  bh_responder *r = start(NULL);
  CHECK(unlink(ep.path) == 0);
  int fd = listen_raw(ep.path, 1);
  struct stat before, after;
  CHECK(stat(ep.path, &before) == 0);
  bh_respond_close(r);
  CHECK(bh_respond_is_closed(r));
  CHECK(stat(ep.path, &after) == 0 && after.st_ino == before.st_ino);
  bh_respond_free(r);
  close(fd);
  unlink(ep.path);
}

static int closed_calls;
static void on_closed(bh_responder *r, void *ctx) {
  closed_calls++;
}

static void test_count(void) {
  bh_respond_opts o = bh_respond_opts_default();
  o.count = 2;
  o.on_closed = on_closed;
  closed_calls = 0;
  bh_responder *r = start(&o);
  expect_probe_ok(&ep);
  CHECK(!bh_respond_is_closed(r));
  expect_probe_ok(&ep);
  CHECK(bh_respond_is_closed(r));
  CHECK_INT(bh_respond_served(r), 2);
  CHECK_INT(closed_calls, 1);
  CHECK(access(ep.path, F_OK) != 0);
  probe_out out;
  bh_probe_opts po = bh_probe_opts_default();
  run_probe(base, &ep, &me, &po, &out);
  CHECK_CODE(out.err.code, BH_CONNECT, &out.err);
  probe_out_clear(&out);
  bh_respond_free(r);
  CHECK_INT(closed_calls, 1);
}

static bool two_open(void *arg) {
  return bh_respond_open_conns(arg) == 2;
}

/* The client at fd was closed by the responder (EOF or reset), within 5 s. */
static bool closed_by_peer(int fd) {
  for (int i = 0; i < 500; i++) {
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
    loop_for(base, 0.01);
  }
  return false;
}

static bool still_open(int fd) {
  char c;
  return recv(fd, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* Delay every reply by 1.5 s (the deadline is 5 s here): a connection
 * with a whole request waits while the others come and go. */
static void delay_hook(bh_responder *r, const bh_request *req, bh_reply *reply,
                       void *ctx) {
  reply->delay = 1.5;
}

/* Bytes arrived at fd within 5 s (the loop runs meanwhile). */
static bool answered(int fd) {
  for (int i = 0; i < 500; i++) {
    char c;
    if (recv(fd, &c, 1, MSG_DONTWAIT) > 0) return true;
    loop_for(base, 0.01);
  }
  return false;
}

/* With max_conns 2, a newcomer is accepted at once and the oldest
 * connection without a whole request is evicted (counted as rejected and
 * as evicted); one that sent a whole request is passed over while another
 * can go, and still gets its (delayed) answer. */
static void test_max_conns(void) {
  bh_respond_opts o = bh_respond_opts_default();
  o.max_conns = 2;
  o.conn_timeout = 5.0;
  o.hook = delay_hook;
  bh_responder *r = start(&o);
  uint8_t nonce[BH_NONCE_LEN] = {5}, *req = NULL;
  size_t n = 0;
  bh_err err;
  CHECK_CODE(bh_probe_request_build(nonce, &req, &n, &err), BH_OK, &err);
  int whole = connect_raw(ep.path); /* oldest, and answered later */
  CHECK_INT(write(whole, req, n), n);
  int idle = connect_raw(ep.path);
  CHECK(loop_until(base, two_open, r, 5.0));
  int half = connect_raw(ep.path); /* half a request: still unhandled */
  CHECK_INT(write(half, req, n / 2), n / 2);
  CHECK(closed_by_peer(idle)); /* not `whole`, though older */
  CHECK_INT(bh_respond_evicted(r), 1);
  CHECK_INT(bh_respond_open_conns(r), 2);
  CHECK(still_open(half));
  int late = connect_raw(ep.path);
  CHECK(closed_by_peer(half));
  CHECK_INT(bh_respond_evicted(r), 2);
  CHECK_INT(bh_respond_rejected(r), 2);
  CHECK(answered(whole)); /* the delayed answer */
  CHECK_INT(bh_respond_served(r), 1);
  close(whole);
  close(idle);
  close(half);
  close(late);
  free(req);
  bh_respond_free(r);
}

/* ---- hostile clients ------------------------------------------------- */

static size_t request_frame(uint8_t *out, int env, int kind, uint32_t proto,
                            int enc, size_t payload_len) {
  static const uint8_t payload[64] = {1, 2, 3};
  RunningProcess__Broker__V1__Frame f =
      RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  f.envelope_version = env;
  f.kind = kind;
  f.payload_protocol = proto;
  f.payload_encoding = enc;
  f.payload.data = (uint8_t *)payload;
  f.payload.len = payload_len;
  size_t n = running_process__broker__v1__frame__pack(&f, out + 5);
  bh_frame_header((uint32_t)n, out);
  return n + 5;
}

static bool rejected_reached(void *arg) {
  uint64_t *want = arg;
  return bh_respond_rejected((bh_responder *)(uintptr_t)want[1]) >= want[0];
}

/* Send bytes (maybe none) from a raw client, then close it or keep it
 * silent; the responder must drop and count it, and still serve. */
static void hostile_client(bh_responder *r, const void *bytes, size_t n,
                           bool keep_open) {
  uint64_t want[2] = {bh_respond_rejected(r) + 1, (uintptr_t)r};
  int fd = connect_raw(ep.path);
  CHECK(fd >= 0);
  if (n) CHECK_INT(write(fd, bytes, n), n);
  if (!keep_open) close(fd);
  double t0 = bh_test_now();
  CHECK(loop_until(base, rejected_reached, want, 5.0));
  if (keep_open) {
    char c;
    CHECK(bh_test_now() - t0 >= 0.25); /* not before its deadline */
    CHECK_INT(read(fd, &c, 1), 0);     /* dropped: EOF, no answer */
    close(fd);
  }
  expect_probe_ok(&ep);
}

static void test_hostile_clients(void) {
  bh_respond_opts o = bh_respond_opts_default();
  o.conn_timeout = 0.3;
  bh_responder *r = start(&o);
  uint8_t buf[256];
  hostile_client(r, NULL, 0, true); /* silent */
  size_t n = request_frame(buf, 1, 0, 0xB232, 0, 32);
  hostile_client(r, buf, n / 2, false);                /* half, then close */
  hostile_client(r, buf, n / 2, true);                 /* half, then silent */
  hostile_client(r, "\x02\x00\x00\x00\x00", 5, false); /* framing byte */
  hostile_client(r, "\x01\xff\xff\xff\xff", 5, false); /* 4 GiB */
  hostile_client(r, "\x01\x04\x00\x00\x00\xff\xff\xff\xff", 9, false);
  n = request_frame(buf, 2, 0, 0xB232, 0, 32); /* envelope 2 */
  hostile_client(r, buf, n, false);
  n = request_frame(buf, 1, 1, 0xB232, 0, 32); /* kind RESPONSE */
  hostile_client(r, buf, n, false);
  n = request_frame(buf, 1, 0, 0xB233, 0, 32); /* protocol */
  hostile_client(r, buf, n, false);
  n = request_frame(buf, 1, 0, 0xB232, 1, 32); /* zstd */
  hostile_client(r, buf, n, false);
  n = request_frame(buf, 1, 0, 0xB232, 0, 31); /* 31-byte nonce */
  hostile_client(r, buf, n, false);
  n = request_frame(buf, 1, 0, 0xB232, 0, 33); /* 33-byte nonce */
  hostile_client(r, buf, n, false);
  hostile_client(r, "\x01\x00\x00\x00\x00", 5, false); /* empty body */
  CHECK_INT(bh_respond_rejected(r), 13);
  CHECK_INT(bh_respond_served(r), 13);
  CHECK_INT(bh_respond_open_conns(r), 0);
  bh_respond_free(r);
}

/* A listener that never accepts, its backlog full: the probe's connect
 * gets EAGAIN and is retried until the deadline → timeout, not a hang. */
static void test_full_backlog_times_out(void) {
  char path[108];
  int lfd = listen_raw(bh_test_path(path, sizeof path, "full.sock"), 1);
  int fills[64], nfill = 0, last_errno = 0;
  while (nfill < 64) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
      last_errno = errno;
      close(fd);
      break;
    }
    fills[nfill++] = fd;
  }
  CHECK_INT(last_errno, EAGAIN);
  bh_endpoint fep = {0};
  bh_err err;
  bh_endpoint_set(&fep, "test", path, &err);
  probe_out out;
  bh_probe_opts o = response_only_opts(0.3);
  run_probe(base, &fep, NULL, &o, &out);
  CHECK_CODE(out.err.code, BH_TIMEOUT, &out.err);
  if (out.elapsed < 0.3 || out.elapsed > 0.3 + 0.05)
    fprintf(stderr, "  elapsed %.4f\n", out.elapsed);
  CHECK(out.elapsed >= 0.3 && out.elapsed < 0.3 + 0.05);
  probe_out_clear(&out);
  for (int i = 0; i < nfill; i++)
    close(fills[i]);
  close(lfd);
  bh_endpoint_clear(&fep);
}

int main(void) {
  base = bh_loop_new();
  make_endpoint(&ep, "r.sock");
  make_identity(&ep, &me);
  int fds = bh_test_count_fds();
  RUN(test_stale_socket_replaced);
  RUN(test_live_listener_in_use);
  RUN(test_not_a_socket_untouched);
  RUN(test_remove_stale_socket);
  RUN(test_mode);
  RUN(test_close_only_our_inode);
  RUN(test_count);
  RUN(test_max_conns);
  RUN(test_hostile_clients);
  RUN(test_full_backlog_times_out);
  /* On the io_uring path a probe that timed out closes its socket once
   * the kernel has given back its cancelled operations, a pass or two of
   * the loop later (design §4.3): let the loop turn before counting. */
  loop_for(base, 0.05);
  CHECK_INT(bh_test_count_fds(), fds);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
  bh_loop_free(base);
  return bh_test_summary();
}
