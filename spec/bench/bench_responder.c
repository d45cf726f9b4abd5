/* Benchmark responder: serves its own identity at PATH until SIGTERM,
 * printing "ready" once it listens. Usage: bench_responder PATH */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

#include "identity.h"
#include "loop.h"
#include "respond.h"

static void on_term(evutil_socket_t sig, short what, void *arg) {
  event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: bench_responder PATH\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  bh_err err;
  bh_endpoint ep = {0};
  bh_identity id;
  bh_identity_init(&id);
  struct event_base *base = bh_loop_new();
  if (base == NULL || bh_endpoint_set(&ep, "bench", argv[1], &err) != BH_OK ||
      bh_identity_current(&ep, NULL, &id, &err) != BH_OK) {
    fprintf(stderr, "bench_responder: %s\n", err.message);
    return 1;
  }
  bh_respond_opts o = bh_respond_opts_default();
  o.max_conns = 4096;
  bh_responder *r = bh_respond_start(base, &ep, &id, &o, &err);
  if (r == NULL) {
    fprintf(stderr, "bench_responder: %s\n", err.message);
    return 1;
  }
  struct event *term = evsignal_new(base, SIGTERM, on_term, base);
  event_add(term, NULL);
  printf("ready\n");
  fflush(stdout);
  event_base_dispatch(base);
  bh_respond_free(r);
  event_free(term);
  event_base_free(base);
  bh_identity_clear(&id);
  bh_endpoint_clear(&ep);
  return 0;
}
