/* The definitions of resp_child.h (see there), compiled once into the
 * bhtestutil library that every C test links. */
#include "resp_child.h"

#include "child_helpers.h"
#include "loop.h"
#include "net_helpers.h"

static void rc_on_term(evutil_socket_t fd, short what, void *arg) {
  event_base_loopbreak(arg);
}

/* The child: serve, say "ready" (one byte), wait for SIGTERM, report. */
static void rc_main(void *arg, int wfd) {
  resp_child *rc = arg;
  raise_nofile();
  struct event_base *b = bh_loop_new();
  bh_err err;
  bh_responder *r =
      b ? bh_respond_start(b, rc->ep, rc->id, &rc->opts, &err) : NULL;
  struct event *term = b ? evsignal_new(b, SIGTERM, rc_on_term, b) : NULL;
  if (r == NULL || term == NULL || event_add(term, NULL) != 0) _exit(3);
  ch_reset_hwm();
  long start_kb = ch_rss_kb();
  ch_report(wfd, "x", 1);
  event_base_dispatch(b);
  resp_report rep = {0};
  rep.served = bh_respond_served(r);
  rep.rejected = bh_respond_rejected(r);
  rep.evicted = bh_respond_evicted(r);
  rep.open_conns = bh_respond_open_conns(r);
  rep.hwm_kb = ch_hwm_kb();
  rep.start_kb = start_kb;
  ch_report(wfd, &rep, sizeof rep);
  _exit(0);
}

/* Fork the responder child; true once it listens. */
bool resp_child_start(resp_child *rc) {
  char c;
  rc->pid = ch_spawn(rc_main, rc, &rc->rfd);
  if (rc->pid < 0) return false;
  if (ch_read_within(rc->rfd, &c, 1, 10.0)) return true;
  ch_collect(rc->pid, rc->rfd, &c, 0, 0);
  return false;
}

/* SIGTERM the child and read its report; true when it was still alive
 * (no crash), reported and exited 0. */
bool resp_child_stop(resp_child *rc, resp_report *rep) {
  int ws = 0;
  bool alive = waitpid(rc->pid, &ws, WNOHANG) == 0;
  memset(rep, 0, sizeof *rep);
  if (alive) kill(rc->pid, SIGTERM);
  return ch_collect(rc->pid, rc->rfd, rep, sizeof *rep, 30.0) && alive;
}
