/* The responder's simulations of hostile daemons (hostile.h, the
 * BH_REPLY_HOSTILE kind), trickled answers, and deferred answers
 * (BH_REPLY_DEFER, bh_respond_answer, on_abandon), over real Unix
 * sockets on one loop: each hostile answer gives the prober the code
 * bh_hostile_expected names. */
#include <event2/event.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostile.h"
#include "loop.h"
#include "net_helpers.h"

static struct event_base *base;
static bh_endpoint ep;
static bh_identity me;

/* What the hook does, and what happened to deferred connections. */
typedef struct hook_ctx {
  bh_reply reply; /* copied into the hook's reply */
  bh_deferred *pending;
  int abandoned;
} hook_ctx;

static void hook(bh_responder *r, const bh_request *req, bh_reply *reply,
                 void *ctx) {
  hook_ctx *h = ctx;
  bh_deferred *d = reply->deferred;
  *reply = h->reply;
  reply->deferred = d;
  if (reply->kind == BH_REPLY_DEFER) {
    h->pending = d;
    reply->defer_ctx = h;
  }
}

static void on_abandon(bh_responder *r, void *defer_ctx, void *ctx) {
  hook_ctx *h = defer_ctx;
  CHECK(h == ctx);
  h->pending = NULL;
  h->abandoned++;
}

static bh_responder *start(hook_ctx *h, double conn_timeout) {
  bh_err err;
  bh_respond_opts o = bh_respond_opts_default();
  o.hook = hook;
  o.hook_ctx = h;
  o.on_abandon = on_abandon;
  o.conn_timeout = conn_timeout;
  bh_responder *r = bh_respond_start(base, &ep, &me, &o, &err);
  CHECK(r != NULL);
  if (r == NULL) fprintf(stderr, "respond: %s\n", err.message);
  return r;
}

static void test_names(void) {
  CHECK(bh_hostile_name(BH_HOSTILE_NONE) == NULL);
  CHECK(bh_hostile_name(BH_HOSTILE_COUNT) == NULL);
  for (int h = 1; h < BH_HOSTILE_COUNT; h++) {
    CHECK(bh_hostile_name(h) != NULL);
    CHECK_INT(bh_hostile_from_name(bh_hostile_name(h)), h);
  }
  CHECK_INT(bh_hostile_from_name("no_such_mode"), BH_HOSTILE_NONE);
}

/* Every hostile answer, probed response-only: the prober's code is the
 * one the table names; the responder survives all of them. */
static void test_every_hostile_answer(void) {
  hook_ctx h = {.reply = {.kind = BH_REPLY_HOSTILE}};
  bh_responder *r = start(&h, 2.0);
  if (r == NULL) return;
  for (int i = 1; i < BH_HOSTILE_COUNT; i++) {
    h.reply.hostile = i;
    probe_out out;
    bh_probe_opts o = response_only_opts(2.0);
    run_probe(base, &ep, &me, &o, &out);
    const char *got = bh_status_name(out.err.code);
    if (strcmp(got, bh_hostile_expected(i)) != 0)
      fprintf(stderr, "  %s: got %s (%s)\n", bh_hostile_name(i), got,
              out.err.message);
    CHECK_STR(got, bh_hostile_expected(i));
    probe_out_clear(&out);
  }
  h.reply.kind = BH_REPLY_NORMAL;
  probe_out out;
  bh_probe_opts o = response_only_opts(2.0);
  run_probe(base, &ep, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_OK, &out.err);
  probe_out_clear(&out);
  bh_respond_free(r);
}

/* A good answer one byte every 5 ms is still a good answer; the same
 * trickle past the prober's deadline is a timeout. */
static void test_trickle(void) {
  hook_ctx h = {.reply = {.kind = BH_REPLY_NORMAL, .trickle = 0.005}};
  bh_responder *r = start(&h, 5.0);
  if (r == NULL) return;
  probe_out out;
  bh_probe_opts o = response_only_opts(4.0);
  run_probe(base, &ep, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_OK, &out.err);
  CHECK(out.elapsed >= 0.1); /* far more than 20 bytes, 5 ms apart */
  probe_out_clear(&out);
  h.reply.trickle = 0.05;
  o = response_only_opts(0.3);
  run_probe(base, &ep, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_TIMEOUT, &out.err);
  CHECK(strstr(out.err.message, "0 bytes received") == NULL);
  probe_out_clear(&out);
  bh_respond_free(r);
}

/* A client that leaves while its answer is delayed frees its connection
 * at once (not at the delay or the deadline). */
static void test_delay_client_leaves(void) {
  hook_ctx h = {.reply = {.kind = BH_REPLY_NORMAL, .delay = 30}};
  bh_responder *r = start(&h, 60.0);
  if (r == NULL) return;
  probe_out out;
  bh_probe_opts o = response_only_opts(0.05);
  run_probe(base, &ep, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_TIMEOUT, &out.err);
  probe_out_clear(&out);
  loop_for(base, 0.1);
  CHECK_INT(bh_respond_rejected(r), 1);
  CHECK_INT(bh_respond_open_conns(r), 0);
  bh_respond_free(r);
}

static struct event *answer_ev;

/* A tick of the loop's coarse clock: a plain libevent timer may fire that
 * much early by bh_mono_now (loop.h). */
static double coarse_tick(void) {
  struct timespec res = {0, 4000000}; /* 250 Hz when it cannot say */
  (void)clock_getres(CLOCK_MONOTONIC_COARSE, &res);
  return (double)res.tv_sec + (double)res.tv_nsec / 1e9;
}

static void on_answer_later(evutil_socket_t fd, short what, void *arg) {
  hook_ctx *h = arg;
  bh_reply reply = {.kind = BH_REPLY_NORMAL};
  CHECK(h->pending != NULL);
  bh_respond_answer(h->pending, &reply);
  h->pending = NULL;
}

/* Deferred: answered later from the loop; abandoned at the connection
 * deadline, when the client leaves, and when the responder closes; each
 * abandon reported exactly once, nothing answered after it. */
static void test_deferred(void) {
  hook_ctx h = {.reply = {.kind = BH_REPLY_DEFER}};
  bh_responder *r = start(&h, 0.3);
  if (r == NULL) return;
  answer_ev = evtimer_new(base, on_answer_later, &h);
  struct timeval tv = {0, 50000};
  evtimer_add(answer_ev, &tv);
  probe_out out;
  bh_probe_opts o = response_only_opts(2.0);
  run_probe(base, &ep, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_OK, &out.err);
  /* answered by the test's own 50 ms timer, started just before the
   * probe: not at once (an answer at once takes well under 1 ms) */
  CHECK(out.elapsed >= 0.05 - coarse_tick() - 0.001);
  CHECK_INT(h.abandoned, 0);
  probe_out_clear(&out);
  event_free(answer_ev);

  run_probe(base, &ep, &me, &o, &out); /* nobody answers: the deadline */
  CHECK_CODE(out.err.code, BH_IO, &out.err);
  CHECK_INT(h.abandoned, 1);
  CHECK(h.pending == NULL);
  probe_out_clear(&out);

  o = response_only_opts(0.05); /* the client leaves first */
  run_probe(base, &ep, &me, &o, &out);
  CHECK_CODE(out.err.code, BH_TIMEOUT, &out.err);
  loop_for(base, 0.05);
  CHECK_INT(h.abandoned, 2);
  probe_out_clear(&out);

  int fd = connect_raw(ep.path); /* pending when the responder closes */
  CHECK(fd >= 0);
  uint8_t nonce[BH_NONCE_LEN] = {1}, *req = NULL;
  size_t req_len = 0;
  CHECK_CODE(bh_probe_request_build(nonce, &req, &req_len, NULL), BH_OK, NULL);
  CHECK(send(fd, req, req_len, MSG_NOSIGNAL) == (ssize_t)req_len);
  free(req);
  loop_for(base, 0.05);
  CHECK(h.pending != NULL);
  bh_respond_close(r);
  CHECK_INT(h.abandoned, 3);
  CHECK_INT(bh_respond_served(r), 1);
  close(fd);
  bh_respond_free(r);
}

int main(void) {
  make_endpoint(&ep, "h.sock");
  make_identity(&ep, &me);
  base = bh_loop_new();
  RUN(test_names);
  RUN(test_every_hostile_answer);
  RUN(test_trickle);
  RUN(test_delay_client_leaves);
  RUN(test_deferred);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
  bh_loop_free(base);
  return bh_test_summary();
}
