/* The definitions of net_helpers.h (see there), compiled once into the
 * bhtestutil library that every C test links. */
#include "net_helpers.h"

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

void probe_out_cb(bh_probe_result *res, void *ctx) {
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

void probe_out_init(probe_out *o) {
  memset(o, 0, sizeof *o);
  bh_identity_init(&o->identity);
  o->proc = BH_PROC_NONE;
  o->peer = BH_PEER_NONE;
}

void probe_out_clear(probe_out *o) {
  bh_identity_clear(&o->identity);
  bh_proc_release(&o->proc);
  bh_peer_clear(&o->peer);
  probe_out_init(o);
}

static void nh_guard_cb(evutil_socket_t fd, short what, void *arg) {
  *(bool *)arg = true;
}

bool loop_until(struct event_base *base, bool (*done)(void *), void *arg,
                double max_s) {
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

bool flag_set(void *arg) {
  return *(bool *)arg;
}

void loop_for(struct event_base *base, double s) {
  bool expired = false;
  struct event *guard = evtimer_new(base, nh_guard_cb, &expired);
  struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
  evtimer_add(guard, &tv);
  while (!expired)
    event_base_loop(base, EVLOOP_ONCE);
  event_free(guard);
}

void run_probe(struct event_base *base, const bh_endpoint *ep,
               const bh_identity *expected, const bh_probe_opts *opts,
               probe_out *out) {
  probe_out_init(out);
  bh_probe *p = bh_probe_start(base, ep, expected, opts, probe_out_cb, out);
  CHECK(p != NULL);
  CHECK(!out->done); /* never called from inside bh_probe_start */
  if (p == NULL) return;
  CHECK(loop_until(base, flag_set, &out->done, 10.0));
}

bh_probe_opts response_only_opts(double timeout) {
  bh_probe_opts o = bh_probe_opts_default();
  o.response_only = true;
  o.timeout = timeout;
  return o;
}

void make_endpoint(bh_endpoint *ep, const char *name) {
  char buf[256];
  bh_err err;
  bh_test_path(buf, sizeof buf, name);
  CHECK_CODE(bh_endpoint_set(ep, "test", buf, &err), BH_OK, &err);
}

void make_identity(const bh_endpoint *ep, bh_identity *id) {
  bh_err err;
  bh_identity_init(id);
  CHECK_CODE(bh_identity_current(ep, NULL, id, &err), BH_OK, &err);
}

int listen_raw(const char *path, int backlog) {
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

int connect_raw(const char *path) {
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

void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}
