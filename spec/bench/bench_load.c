/* Throughput, in a process that does nothing else (so that its peak RSS
 * is the prober's): TOTAL response-only probes of the responder at PATH,
 * IN_FLIGHT at a time, on one loop; each answer compared with the
 * identity in ID_FILE (JSON, prepared once) when given, else validated
 * only. Prints one line:
 *   WALL_S FAILED MAXRSS_KIB NOFILE FIRST_ERROR
 * (NOFILE: its descriptor limit, raised as far as the hard limit allows)
 * Usage: bench_load PATH TOTAL IN_FLIGHT [ID_FILE] */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "expect.h"
#include "loop.h"
#include "probe.h"

typedef struct load {
  struct event_base *base;
  bh_endpoint ep;
  bh_expected *expected; /* NULL: answers validated only */
  bh_probe_opts opts;
  long total, started, finished, failed;
  char first_error[240];
} load;

static void load_start(load *l);

static void load_cb(bh_probe_result *res, void *ctx) {
  load *l = ctx;
  l->finished++;
  if (res->err.code != BH_OK && l->failed++ == 0)
    (void)snprintf(l->first_error, sizeof l->first_error, "%.60s:%.160s",
                   bh_status_name(res->err.code), res->err.message);
  if (l->started < l->total) load_start(l);
}

static void load_start(load *l) {
  l->started++;
  if (bh_probe_start_expected(l->base, &l->ep, l->expected, &l->opts, load_cb,
                              l) == NULL) {
    (void)fprintf(stderr, "bench_load: out of memory\n");
    exit(1);
  }
}

/* The identity in the JSON file at path, prepared; NULL when unreadable. */
static bh_expected *read_identity(const char *path) {
  char text[8192];
  FILE *f = fopen(path, "r");
  size_t n = f != NULL ? fread(text, 1, sizeof text, f) : 0;
  if (f != NULL) (void)fclose(f);
  bh_identity id;
  bh_identity_init(&id);
  bh_err err;
  bh_expected *e = NULL;
  if (n > 0 && bh_identity_from_json(text, n, &id, &err) == BH_OK)
    e = bh_expected_new(&id, true, &err);
  bh_identity_clear(&id);
  if (e == NULL) (void)fprintf(stderr, "bench_load: cannot read %s\n", path);
  return e;
}

static double now(void) {
  struct timespec ts;
  (void)clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* As many descriptors as the hard limit allows (one per probe in
 * flight); returns the limit now in force. */
static long raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("bench_load: setrlimit");
  return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : -1;
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 5) {
    (void)fprintf(stderr, "usage: bench_load PATH TOTAL IN_FLIGHT [ID_FILE]\n");
    return 2;
  }
  long nofile = raise_nofile();
  load l = {.base = bh_loop_new(), .total = strtol(argv[2], NULL, 10)};
  long in_flight = strtol(argv[3], NULL, 10);
  l.opts = bh_probe_opts_default();
  l.opts.response_only = true;
  l.opts.peer_cred = false; /* as bh.probe_response */
  l.opts.identity = false;
  l.opts.timeout = 10.0; /* a full backlog is waited for, not a failure */
  (void)snprintf(l.first_error, sizeof l.first_error, "-");
  if (l.base == NULL || bh_endpoint_set(&l.ep, "bench", argv[1], NULL) != BH_OK)
    return 1;
  if (argc == 5 && (l.expected = read_identity(argv[4])) == NULL) return 1;
  double t0 = now();
  for (long i = 0; i < in_flight && i < l.total; i++)
    load_start(&l);
  while (l.finished < l.total)
    if (event_base_loop(l.base, EVLOOP_ONCE) < 0) return 1;
  double wall = now() - t0;
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 1;
  for (char *c = l.first_error; *c; c++)
    if (*c == ' ' || *c == '\n') *c = '_';
  printf("%.6f %ld %ld %ld %s\n", wall, l.failed, ru.ru_maxrss, nofile,
         l.first_error);
  bh_endpoint_clear(&l.ep);
  bh_expected_unref(l.expected);
  bh_loop_free(l.base);
  return 0;
}
