/* The prober at scale and under pressure: 1,000 concurrent probes against
 * 100 responders on one loop, descriptor exhaustion (EMFILE) against a
 * responder in a child process, cancellation, and the 4 KiB heap budget
 * of an in-flight probe. Descriptors are counted before and after. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop.h"
#include "net_helpers.h"
#include "resp_child.h"
#include "wire.h"

enum { NRESP = 100, NPROBE = 1000, HEAP_BUDGET = 4096 };

static struct event_base *base;
static bh_identity me; /* this process, at endpoint "s.sock" */

static size_t max_heap;

static void note_heap(const bh_probe *p) {
  size_t h = bh_probe_heap(p);
  if (h > max_heap) max_heap = h;
}

typedef struct many {
  probe_out out[NPROBE];
  int done;
} many;

static bool all_done(void *arg) {
  many *m = arg;
  for (int i = m->done; i < NPROBE; i++, m->done++)
    if (!m->out[i].done) return false;
  return true;
}

/* 1,000 full probes (verify_pid included) in flight at once against 100
 * responders on the same loop: all succeed, no descriptor leaks. */
static void test_thousand_concurrent(void) {
  static many m;
  static bh_endpoint eps[NRESP];
  static bh_identity ids[NRESP];
  bh_responder *rs[NRESP];
  int fds = bh_test_count_fds();
  for (int i = 0; i < NRESP; i++) {
    char name[16];
    bh_err err;
    snprintf(name, sizeof name, "m%d.sock", i);
    make_endpoint(&eps[i], name);
    make_identity(&eps[i], &ids[i]);
    rs[i] = bh_respond_start(base, &eps[i], &ids[i], NULL, &err);
    CHECK(rs[i] != NULL);
  }
  bh_probe_opts o = bh_probe_opts_default();
  o.timeout = 20; /* generous: this measures correctness, not speed */
  max_heap = 0;
  for (int i = 0; i < NPROBE; i++) {
    probe_out_init(&m.out[i]);
    bh_probe *p = bh_probe_start(base, &eps[i % NRESP], &ids[i % NRESP], &o,
                                 probe_out_cb, &m.out[i]);
    CHECK(p != NULL);
    note_heap(p);
  }
  CHECK(loop_until(base, all_done, &m, 60.0));
  int ok = 0;
  for (int i = 0; i < NPROBE; i++) {
    if (m.out[i].err.code == BH_OK)
      ok++;
    else if (ok == i)
      CHECK_CODE(m.out[i].err.code, BH_OK, &m.out[i].err);
    probe_out_clear(&m.out[i]);
  }
  CHECK_INT(ok, NPROBE);
  CHECK(max_heap <= HEAP_BUDGET);
  uint64_t served = 0;
  for (int i = 0; i < NRESP; i++) {
    served += bh_respond_served(rs[i]);
    bh_respond_free(rs[i]);
    bh_identity_clear(&ids[i]);
    bh_endpoint_clear(&eps[i]);
  }
  CHECK_INT(served, NPROBE);
  CHECK_INT(bh_test_count_fds(), fds);
}

typedef struct batch {
  probe_out out[200];
  int n;
} batch;

static bool batch_done(void *arg) {
  batch *b = arg;
  for (int i = 0; i < b->n; i++)
    if (!b->out[i].done) return false;
  return true;
}

/* Lower our descriptor limit so some probes hit EMFILE: those fail with
 * connect and say so, the rest succeed, nothing leaks. */
static void test_descriptor_exhaustion(void) {
  static batch b;
  bh_endpoint ep = {0};
  make_endpoint(&ep, "x.sock");
  /* The responder runs in a child process with its own loop, so that our
   * descriptor limit does not starve it. */
  resp_child rc = {.ep = &ep, .id = &me, .opts = bh_respond_opts_default()};
  CHECK(resp_child_start(&rc));
  int fds = bh_test_count_fds();
  struct rlimit old, low;
  CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
  low = old;
  low.rlim_cur = 64;
  CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
  bh_probe_opts o = response_only_opts(10.0);
  b.n = 200;
  for (int i = 0; i < b.n; i++) {
    probe_out_init(&b.out[i]);
    CHECK(bh_probe_start(base, &ep, &me, &o, probe_out_cb, &b.out[i]));
  }
  CHECK(loop_until(base, batch_done, &b, 30.0));
  int ok = 0, out_of_fds = 0;
  for (int i = 0; i < b.n; i++) {
    bh_err *e = &b.out[i].err;
    if (e->code == BH_OK)
      ok++;
    else if (e->code == BH_CONNECT && strstr(e->message, "descriptors"))
      out_of_fds++;
    else
      CHECK_CODE(e->code, BH_OK, e);
    probe_out_clear(&b.out[i]);
  }
  CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
  fprintf(stderr, "  %d ok, %d out of descriptors\n", ok, out_of_fds);
  CHECK(ok > 0);
  CHECK(out_of_fds > 0);
  CHECK_INT(ok + out_of_fds, b.n);
  CHECK_INT(bh_test_count_fds(), fds);
  resp_report rr;
  CHECK(resp_child_stop(&rc, &rr));
  CHECK_INT(rr.served, ok);
  bh_endpoint_clear(&ep);
}

/* ---- cancel and the heap budget --------------------------------------- */

static void test_cancel(void) {
  char path[108];
  bh_test_path(path, sizeof path, "c.sock");
  int lfd = listen_raw(path, 16); /* accepts nothing, answers nothing */
  bh_endpoint ep = {0};
  bh_err err;
  bh_endpoint_set(&ep, "test", path, &err);
  bh_identity id;
  make_identity(&ep, &id);
  int fds = bh_test_count_fds();
  probe_out out;
  probe_out_init(&out);
  /* Cancelled before its first step ran. */
  bh_probe_opts o = response_only_opts(0.2);
  bh_probe *p = bh_probe_start(base, &ep, &id, &o, probe_out_cb, &out);
  bh_probe_cancel(p);
  loop_for(base, 0.3);
  CHECK(!out.done);
  /* Cancelled while waiting for the answer: full probe, pidfd held. */
  o = bh_probe_opts_default();
  o.timeout = 5;
  p = bh_probe_start(base, &ep, &id, &o, probe_out_cb, &out);
  loop_for(base, 0.1);
  CHECK(!out.done);
  CHECK(bh_test_count_fds() >= fds + 1); /* its socket (and pidfd) */
  note_heap(p);
  bh_probe_cancel(p);
  /* On the io_uring path the socket is closed once the kernel has given
   * back the receive cancelled with it: after a turn of the loop. */
  loop_for(base, 0.1);
  CHECK_INT(bh_test_count_fds(), fds);
  CHECK(!out.done);
  close(lfd);
  bh_identity_clear(&id);
  bh_endpoint_clear(&ep);
}

/* A peer that announces a 16 MiB body and sends 1,000 bytes of it: the
 * probe holds only what arrived, within the 4 KiB budget. max_response is
 * raised to the protocol cap so that the header is not refused at once
 * (the default refusal is test_probe_memory.c's). */
static void test_heap_budget(void) {
  char path[108];
  bh_test_path(path, sizeof path, "h.sock");
  int lfd = listen_raw(path, 16);
  bh_endpoint ep = {0};
  bh_err err;
  bh_endpoint_set(&ep, "test", path, &err);
  probe_out out;
  probe_out_init(&out);
  bh_probe_opts o = response_only_opts(5.0);
  o.max_response = BH_FRAME_MAX_BODY;
  bh_probe *p = bh_probe_start(base, &ep, NULL, &o, probe_out_cb, &out);
  max_heap = 0;
  note_heap(p);
  loop_for(base, 0.1); /* connected (the backlog holds it), request sent */
  note_heap(p);
  int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  CHECK(cfd >= 0);
  uint8_t req[256];
  ssize_t n = read(cfd, req, sizeof req);
  CHECK(n > BH_FRAME_HEADER_LEN);       /* the request arrived in full */
  uint8_t junk[1005] = {1, 0, 0, 0, 1}; /* header: 16 MiB */
  memset(junk + 5, 0x08, 1000);
  CHECK_INT(write(cfd, junk, sizeof junk), sizeof junk);
  loop_for(base, 0.1);
  CHECK(!out.done);
  note_heap(p);
  fprintf(stderr, "  in-flight probe heap: at most %zu bytes\n", max_heap);
  CHECK(max_heap <= HEAP_BUDGET);
  CHECK(max_heap >= 1000); /* the 1,000 body bytes are counted */
  close(cfd);              /* now the peer closes mid-body */
  CHECK(loop_until(base, flag_set, &out.done, 5.0));
  CHECK_CODE(out.err.code, BH_IO, &out.err);
  probe_out_clear(&out);
  close(lfd);
  bh_endpoint_clear(&ep);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  base = bh_loop_new();
  bh_endpoint ep = {0};
  make_endpoint(&ep, "s.sock");
  make_identity(&ep, &me);
  RUN(test_cancel);
  RUN(test_heap_budget);
  RUN(test_thousand_concurrent);
  RUN(test_descriptor_exhaustion);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
  bh_loop_free(base);
  return bh_test_summary();
}
