/* Where a probe's time goes (bh_probe_result.timings): verify, connect
 * and exchange, each < 0 when that phase did not run, over real sockets. */
#include <event2/event.h>

#include "loop.h"
#include "net_helpers.h"

static struct event_base *base;
static bh_endpoint ep;
static bh_identity me;

typedef struct timed {
  bool done;
  bh_status code;
  double elapsed;
  bh_probe_timings t;
} timed;

static void on_done(bh_probe_result *res, void *ctx) {
  timed *o = ctx;
  o->done = true;
  o->code = res->err.code;
  o->elapsed = res->elapsed;
  o->t = res->timings;
}

static timed probe(const bh_endpoint *e, bool response_only, double timeout) {
  timed o = {0};
  bh_probe_opts opts = bh_probe_opts_default();
  opts.response_only = response_only;
  opts.timeout = timeout;
  CHECK(bh_probe_start(base, e, &me, &opts, on_done, &o) != NULL);
  CHECK(loop_until(base, flag_set, &o.done, 10.0));
  return o;
}

static void delay_hook(bh_responder *r, const bh_request *req, bh_reply *reply,
                       void *ctx) {
  reply->delay = *(double *)ctx;
}

static void test_phases(void) {
  double delay = 0;
  bh_err err;
  bh_respond_opts ro = bh_respond_opts_default();
  ro.hook = delay_hook;
  ro.hook_ctx = &delay;
  bh_responder *r = bh_respond_start(base, &ep, &me, &ro, &err);
  CHECK(r != NULL);
  if (r == NULL) return;

  timed o = probe(&ep, false, 2.0); /* full: all three */
  CHECK_CODE(o.code, BH_OK, NULL);
  CHECK(o.t.verify >= 0 && o.t.connect >= 0 && o.t.exchange >= 0);
  CHECK(o.t.verify + o.t.connect + o.t.exchange <= o.elapsed);

  o = probe(&ep, true, 2.0); /* response-only: no verify */
  CHECK_CODE(o.code, BH_OK, NULL);
  CHECK(o.t.verify < 0 && o.t.connect >= 0 && o.t.exchange >= 0);

  delay = 0.1; /* a slow answer is exchange time */
  o = probe(&ep, true, 2.0);
  CHECK_CODE(o.code, BH_OK, NULL);
  CHECK(o.t.exchange >= 0.1);
  CHECK(o.t.connect < 0.1);

  delay = 5; /* timed out while exchanging */
  o = probe(&ep, true, 0.2);
  CHECK_CODE(o.code, BH_TIMEOUT, NULL);
  CHECK(o.t.exchange >= 0.15);
  bh_respond_free(r);

  bh_endpoint none = {0}; /* nothing listens: connect only */
  char path[256];
  bh_test_path(path, sizeof path, "none.sock");
  CHECK_CODE(bh_endpoint_set(&none, "test", path, &err), BH_OK, &err);
  o = probe(&none, true, 2.0);
  CHECK_CODE(o.code, BH_CONNECT, NULL);
  CHECK(o.t.verify < 0 && o.t.connect >= 0 && o.t.exchange < 0);
  bh_endpoint_clear(&none);

  /* Failed at verify, the process gone: its endpoint is tried (the
   * listener check), nothing listens there: no exchange. */
  bh_identity dead = {0};
  CHECK_CODE(bh_identity_copy(&dead, &me, &err), BH_OK, &err);
  dead.pid = 0x7ffffffe;
  timed d = {0};
  bh_probe_opts opts = bh_probe_opts_default();
  CHECK(bh_probe_start(base, &ep, &dead, &opts, on_done, &d) != NULL);
  CHECK(loop_until(base, flag_set, &d.done, 10.0));
  CHECK_CODE(d.code, BH_PID_NOT_FOUND, NULL);
  CHECK(d.t.verify >= 0 && d.t.connect >= 0 && d.t.exchange < 0);
  bh_identity_clear(&dead);
}

int main(void) {
  make_endpoint(&ep, "t.sock");
  make_identity(&ep, &me);
  base = bh_loop_new();
  RUN(test_phases);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
  bh_loop_free(base);
  return bh_test_summary();
}
