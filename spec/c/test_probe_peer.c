/* The peer that answers must be the verified process itself (design §1.5
 * step 3): a relay that forwards a probe to the real daemon, and a
 * squatter (another user) that answers with a live daemon's recorded
 * identity, both give valid answers from a verified pid and both are
 * peer_mismatch, with nothing held; a verified daemon whose socket has no
 * listener fails with connect (the verdict layer's unreachable). Real
 * processes, real sockets. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop.h"
#include "net_helpers.h"
#include "proc_helpers.h"
#include "wire.h"

enum { NOBODY = 65534 };

static struct event_base *base;

/* Copy what is readable from `from` to `to`; false at EOF or error. */
static bool pump(int from, int to) {
  char buf[4096];
  ssize_t n = read(from, buf, sizeof buf);
  if (n <= 0) return false;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

/* The relay, in a child: accept on listen_fd, connect to target, copy
 * bytes both ways, one connection at a time, until killed. */
static void relay(int listen_fd, const char *target) {
  for (;;) {
    int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) continue;
    int t = connect_raw(target);
    struct pollfd p[2] = {{.fd = c, .events = POLLIN},
                          {.fd = t, .events = POLLIN}};
    while (t >= 0 && poll(p, 2, 5000) > 0) {
      if ((p[0].revents & (POLLIN | POLLHUP)) && !pump(c, t)) break;
      if ((p[1].revents & (POLLIN | POLLHUP)) && !pump(t, c)) break;
    }
    if (t >= 0) close(t);
    close(c);
  }
}

/* Fork a relay listening at path towards target; its pid. The relay
 * makes its own listening socket: SO_PEERCRED names the process that
 * called listen(), so a socket made here and inherited would name us. */
static pid_t start_relay(const char *path, const char *target) {
  int ready[2];
  CHECK_INT(pipe2(ready, O_CLOEXEC), 0);
  pid_t pid = fork();
  if (pid == 0) {
    int lfd = listen_raw(path, 16);
    int flags = fcntl(lfd, F_GETFL);
    if (fcntl(lfd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
        write(ready[1], "r", 1) != 1)
      _exit(3);
    relay(lfd, target);
  }
  close(ready[1]);
  char c = 0;
  CHECK_INT(read(ready[0], &c, 1), 1);
  close(ready[0]);
  return pid;
}

static void stop(pid_t pid) {
  CHECK_INT(kill(pid, SIGKILL), 0);
  CHECK_INT(waitpid(pid, NULL, 0), pid);
}

/* This process is the daemon: its identity names the relay's socket, its
 * responder listens elsewhere, and the relay forwards. The answer is
 * right in every byte; who sent it is not. */
static void test_relay(void) {
  bh_endpoint front = {0}, back = {0};
  bh_identity me;
  bh_err err;
  make_endpoint(&front, "front.sock");
  make_endpoint(&back, "back.sock");
  make_identity(&front, &me);
  bh_responder *r = bh_respond_start(base, &back, &me, NULL, &err);
  CHECK(r != NULL);
  pid_t relay_pid = start_relay(front.path, back.path);
  probe_out out;
  bh_probe_opts o = bh_probe_opts_default();
  o.timeout = 5.0;
  /* Response only: the relayed answer is valid. */
  bh_probe_opts ro = response_only_opts(5.0);
  run_probe(base, &front, &me, &ro, &out);
  CHECK_CODE(out.err.code, BH_OK, &out.err);
  CHECK_INT(out.peer_pid, relay_pid);
  probe_out_clear(&out);
  /* Full: the pid verifies (it is us), the peer is the relay. */
  run_probe(base, &front, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_PEER_MISMATCH, &out.err);
  CHECK(strstr(out.err.message, "another process") != NULL);
  CHECK_INT(out.proc.pid, 0); /* nothing held: no signal can follow */
  /* what the relay passed on is kept, as what the peer claimed (err.got) */
  CHECK(out.answered);
  CHECK_INT(out.identity.pid, me.pid);
  probe_out_clear(&out);
  stop(relay_pid);
  bh_respond_free(r);
  bh_identity_clear(&me);
  bh_endpoint_clear(&front);
  bh_endpoint_clear(&back);
}

/* The squatter, in a child (as nobody when other_uid): serve `id` at ep
 * with our own responder on a loop of its own, until killed. */
static void squatter(const bh_endpoint *ep, const bh_identity *id, int ready,
                     bool other_uid) {
  if (other_uid &&
      (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
       setresuid(NOBODY, NOBODY, NOBODY) != 0))
    _exit(3);
  struct event_base *b = bh_loop_new();
  bh_err err;
  bh_respond_opts o = bh_respond_opts_default();
  o.mode = 0666;
  bh_responder *r = bh_respond_start(b, ep, id, &o, &err);
  if (r == NULL) {
    fprintf(stderr, "squatter: %s\n", err.message);
    _exit(4);
  }
  if (write(ready, "r", 1) != 1) _exit(5);
  event_base_dispatch(b);
  _exit(0);
}

/* A victim process (a child blocked on a pipe) whose identity was
 * recorded with a socket it never had; a squatter (of our uid, or of
 * another) answers there with exactly that identity. */
static void replay_squatter(const char *name, bool other_uid) {
  char dir[256];
  bh_test_path(dir, sizeof dir, name);
  CHECK_INT(mkdir(dir, 0755), 0);
  CHECK_INT(chmod(bh_test_tmpdir(), 0755), 0);
  if (other_uid) CHECK_INT(chown(dir, NOBODY, NOBODY), 0);
  char path[300];
  snprintf(path, sizeof path, "%s/d.sock", dir);
  bh_endpoint ep = {0};
  bh_err err;
  bh_endpoint_set(&ep, "test", path, &err);
  int victim_wfd;
  pid_t victim = spawn_blocked(&victim_wfd);
  bh_identity rec;
  bh_identity_init(&rec);
  CHECK_CODE(bh_identity_of_pid((uint32_t)victim, &ep, &rec, &err), BH_OK,
             &err);
  int rfd[2];
  CHECK_INT(pipe2(rfd, O_CLOEXEC), 0);
  pid_t sq = fork();
  if (sq == 0) squatter(&ep, &rec, rfd[1], other_uid);
  close(rfd[1]);
  char c = 0;
  CHECK_INT(read(rfd[0], &c, 1), 1);
  close(rfd[0]);
  probe_out out;
  bh_probe_opts o = bh_probe_opts_default();
  o.timeout = 5.0;
  run_probe(base, &ep, &rec, &o, &out);
  CHECK_CODE(out.err.code, BH_PEER_MISMATCH, &out.err);
  CHECK_INT(out.peer_pid, sq);
  CHECK_INT(out.proc.pid, 0);
  probe_out_clear(&out);
  /* The victim is untouched and still running. */
  CHECK_INT(waitpid(victim, NULL, WNOHANG), 0);
  stop(sq);
  close(victim_wfd);
  CHECK_INT(waitpid(victim, NULL, 0), victim);
  bh_identity_clear(&rec);
  bh_endpoint_clear(&ep);
}

static void test_replay_squatter(void) {
  replay_squatter("squat", false);
}

static void test_replay_squatter_other_uid(void) {
  replay_squatter("squat-nobody", true);
}

/* The daemon is alive and verifies, its socket does not answer: connect,
 * whether the file is missing, a stale socket, or not a socket at all. */
static void test_verified_but_no_listener(void) {
  bh_endpoint ep = {0};
  bh_identity me;
  make_endpoint(&ep, "nolisten.sock");
  make_identity(&ep, &me);
  bh_probe_opts o = bh_probe_opts_default();
  o.timeout = 5.0;
  for (int how = 0; how < 3; how++) {
    if (how == 1) close(listen_raw(ep.path, 1));
    if (how == 2) {
      CHECK_INT(unlink(ep.path), 0);
      CHECK_INT(mkdir(ep.path, 0700), 0);
    }
    probe_out out;
    run_probe(base, &ep, &me, &o, &out);
    CHECK_CODE(out.err.code, BH_CONNECT, &out.err);
    CHECK_STR(bh_status_stage(out.err.code), "response");
    CHECK(out.elapsed < 4.0);
    CHECK_INT(out.proc.pid, 0);
    probe_out_clear(&out);
  }
  /* A stale record of a process that is gone is found first. */
  me.pid = 4194304;
  probe_out out;
  run_probe(base, &ep, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_PID_NOT_FOUND, &out.err);
  probe_out_clear(&out);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  base = bh_loop_new();
  RUN(test_relay);
  RUN(test_replay_squatter);
  RUN_ROOT(test_replay_squatter_other_uid, "a squatter of another uid");
  RUN(test_verified_but_no_listener);
  bh_loop_free(base);
  return bh_test_summary();
}
