/* Helpers shared by the socket tests (test_probe.c, test_respond.c,
 * test_scale.c): run a probe to completion on a loop, run a loop until a
 * condition holds (bounded), start responders, raw listeners and raw
 * clients. spec/CMakeLists.txt links each test with testutil.c only, so
 * these are static functions in a header rather than another library. */
#ifndef BH_NET_HELPERS_H
#define BH_NET_HELPERS_H

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "identity.h"
#include "probe.h"
#include "respond.h"
#include "testutil.h"

#define NH_UNUSED __attribute__((unused))

/* What a probe's callback delivered. */
typedef struct probe_out {
  bool done;
  bh_err err;
  double elapsed;
  bool has_cred;
  pid_t peer_pid;
  bh_peer peer;       /* whoever accepted (err.peer / h.peer) */
  uint32_t successor; /* the listener check's successor, or 0 */
  bool answered;      /* identity is what the peer answered (err.got) */
  bh_identity identity;
  bh_proc proc;
} probe_out;

static NH_UNUSED void probe_out_cb(bh_probe_result *res, void *ctx) {
  probe_out *o = ctx;
  CHECK(!o->done); /* exactly once */
  o->done = true;
  o->err = res->err;
  o->elapsed = res->elapsed;
  o->has_cred = res->peer.known;
  o->peer_pid = res->peer.pid;
  bh_peer_move(&o->peer, &res->peer);
  o->successor = res->successor;
  o->answered = res->answered;
  bh_identity_move(&o->identity, &res->identity);
  o->proc = res->proc;
  res->proc = BH_PROC_NONE;
}

/* Reset an output record (its previous contents must have been cleared:
 * a zeroed bh_proc would name descriptor 0). */
static NH_UNUSED void probe_out_init(probe_out *o) {
  memset(o, 0, sizeof *o);
  bh_identity_init(&o->identity);
  o->proc = BH_PROC_NONE;
  o->peer = BH_PEER_NONE;
}

static NH_UNUSED void probe_out_clear(probe_out *o) {
  bh_identity_clear(&o->identity);
  bh_proc_release(&o->proc);
  bh_peer_clear(&o->peer);
  probe_out_init(o);
}

static void nh_guard_cb(evutil_socket_t fd, short what, void *arg) {
  *(bool *)arg = true;
}

/* Run the loop until done(arg) is true or max_s seconds passed (then the
 * caller's checks fail; a test never hangs). Returns done(arg). */
static NH_UNUSED bool loop_until(struct event_base *base, bool (*done)(void *),
                                 void *arg, double max_s) {
  bool expired = false;
  struct event *guard = evtimer_new(base, nh_guard_cb, &expired);
  struct timeval tv = {(time_t)max_s,
                       (suseconds_t)((max_s - (double)(time_t)max_s) * 1e6)};
  evtimer_add(guard, &tv);
  while (!done(arg) && !expired)
    event_base_loop(base, EVLOOP_ONCE);
  event_free(guard);
  return done(arg);
}

static NH_UNUSED bool flag_set(void *arg) {
  return *(bool *)arg;
}

/* Run the loop for about s seconds (lets other events happen). */
static NH_UNUSED void loop_for(struct event_base *base, double s) {
  bool expired = false;
  struct event *guard = evtimer_new(base, nh_guard_cb, &expired);
  struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
  evtimer_add(guard, &tv);
  while (!expired)
    event_base_loop(base, EVLOOP_ONCE);
  event_free(guard);
}

/* Probe ep expecting expected and wait for the callback (10 s bound). */
static NH_UNUSED void run_probe(struct event_base *base, const bh_endpoint *ep,
                                const bh_identity *expected,
                                const bh_probe_opts *opts, probe_out *out) {
  probe_out_init(out);
  bh_probe *p = bh_probe_start(base, ep, expected, opts, probe_out_cb, out);
  CHECK(p != NULL);
  CHECK(!out->done); /* never called from inside bh_probe_start */
  if (p == NULL) return;
  CHECK(loop_until(base, flag_set, &out->done, 10.0));
}

static NH_UNUSED bh_probe_opts response_only_opts(double timeout) {
  bh_probe_opts o = bh_probe_opts_default();
  o.response_only = true;
  o.timeout = timeout;
  return o;
}

/* An endpoint in namespace "test" at tmpdir/name (buf keeps the path). */
static NH_UNUSED void make_endpoint(bh_endpoint *ep, const char *name) {
  char buf[256];
  bh_err err;
  bh_test_path(buf, sizeof buf, name);
  CHECK_CODE(bh_endpoint_set(ep, "test", buf, &err), BH_OK, &err);
}

/* This process's identity, listening at ep. */
static NH_UNUSED void make_identity(const bh_endpoint *ep, bh_identity *id) {
  bh_err err;
  bh_identity_init(id);
  CHECK_CODE(bh_identity_current(ep, NULL, id, &err), BH_OK, &err);
}

/* A bound, listening Unix socket that nobody accepts on. */
static NH_UNUSED int listen_raw(const char *path, int backlog) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  unlink(path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      listen(fd, backlog) < 0) {
    perror("listen_raw");
    exit(2);
  }
  return fd;
}

/* A blocking client connected to path (or -1). */
static NH_UNUSED int connect_raw(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Raise the soft descriptor limit to the hard one. */
static NH_UNUSED void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

#endif
