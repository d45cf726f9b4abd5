/* A batch of a reference client (bench_ref.h) in a fresh process, for the
 * CPU its prober takes with many probes in flight: TOTAL probes of the
 * server at PATH, IN_FLIGHT at a time. Prints "WALL_S FAILED". REQ_HEX is
 * the request frame in hex. uring-fd: the io_uring client on sockets of
 * socket(2) (bench_ref.h).
 * Usage: bench_ref_load epoll|uring|uring-fd PATH REQ_HEX REPLY_SIZE TOTAL
 *        IN_FLIGHT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_ref.h"

static double now(void) {
  struct timespec ts;
  (void)clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  bench_ref_io io;
  if (argc != 7 || !bench_ref_io_named(argv[1], &io)) {
    (void)fprintf(stderr,
                  "usage: bench_ref_load epoll|uring|uring-fd PATH REQ_HEX "
                  "REPLY_SIZE TOTAL IN_FLIGHT\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  size_t n = strlen(argv[3]) / 2;
  uint8_t req[512];
  if (n > sizeof req) return 2;
  for (size_t i = 0; i < n; i++)
    (void)sscanf(argv[3] + 2 * i, "%2hhx", &req[i]);
  unsigned in_flight = (unsigned)strtoul(argv[6], NULL, 10);
  char why[200];
  bench_ref *r = bench_ref_new(io, argv[2], req, n, strtoul(argv[4], NULL, 10),
                               in_flight, why, sizeof why);
  if (r == NULL) {
    (void)fprintf(stderr, "bench_ref_load: %s\n", why);
    return 1;
  }
  double t0 = now();
  long failed = bench_ref_run(r, strtol(argv[5], NULL, 10), in_flight);
  printf("%.6f %ld\n", now() - t0, failed);
  bench_ref_free(r);
  return 0;
}
