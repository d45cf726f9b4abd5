/* Benchmark responder: serves its own identity at PATH until SIGTERM,
 * printing "ready" once it listens, with room for MAX_CONNS open
 * connections (default 4096; its descriptor limit is raised as far as the
 * hard limit allows). Usage: bench_responder PATH [MAX_CONNS] */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "identity.h"
#include "loop.h"
#include "proc.h"
#include "respond.h"

static void on_term(evutil_socket_t sig, short what, void *arg) {
  event_base_loopbreak(arg);
}

/* As many descriptors as the hard limit allows (one per connection). */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("bench_responder: setrlimit");
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    (void)fprintf(stderr, "usage: bench_responder PATH [MAX_CONNS]\n");
    return 2;
  }
  raise_nofile();
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return 1;
  bh_err err = {0};
  bh_endpoint ep = {0};
  bh_identity id;
  bh_identity_init(&id);
  bh_responder *r = NULL;
  struct event *term = NULL;
  int status = 1;
  struct event_base *base = bh_loop_new();
  if (base == NULL || bh_endpoint_set(&ep, "bench", argv[1], &err) != BH_OK ||
      bh_identity_current(&ep, NULL, &id, &err) != BH_OK)
    goto end;
  bh_respond_opts o = bh_respond_opts_default();
  o.max_conns = argc == 3 ? (unsigned)strtoul(argv[2], NULL, 10) : 4096;
  if ((r = bh_respond_start(base, &ep, &id, &o, &err)) == NULL) goto end;
  term = evsignal_new(base, SIGTERM, on_term, base);
  if (term == NULL || event_add(term, NULL) != 0) goto end;
  if (printf("ready\n") < 0 || fflush(stdout) != 0) goto end;
  status = event_base_dispatch(base) < 0;
end:
  if (status != 0)
    (void)fprintf(stderr, "bench_responder: %s\n",
                  err.message[0] ? err.message : "cannot start");
  bh_respond_free(r);
  if (term != NULL) event_free(term);
  if (base != NULL) bh_loop_free(base);
  bh_identity_clear(&id);
  bh_endpoint_clear(&ep);
  return status;
}
