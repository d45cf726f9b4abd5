/* The benchmark driver (issue 3; run by scripts/bench, not a test).
 * Measures, in one run on one machine, medians of REPS repetitions:
 *  (a) sequential response-only probes against a responder process:
 *      p50/p90/p99, against a raw blocking client/server pair doing the
 *      same bytes (p50; target ours <= 1.5x raw);
 *  (b) full probes to one daemon with the digest cached (p50), and the
 *      first, uncached hash of its executable (with the file's size);
 *  (c) 10,000 response-only probes with 1,000 in flight: wall time,
 *      probes/s and peak RSS of a process doing only that (targets
 *      <= 0.5 s, <= 64 MiB).
 * Prints a table and writes the same figures as JSON.
 * Usage: bench_driver BENCH_BIN_DIR OUT_JSON */
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "identity.h"
#include "loop.h"
#include "probe.h"
#include "wire.h"

enum {
  REPS = 5,
  SEQ_N = 2000,
  FULL_N = 500,
  CONC_TOTAL = 10000,
  CONC_INFLIGHT = 1000
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of v[0..n) (sorts v). */
static double quantile(double *v, int n, double q) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  int i = (int)(q * (n - 1) + 0.5);
  return v[i];
}

static double median(double *v, int n) {
  return quantile(v, n, 0.5);
}

static void die(const char *what) {
  fprintf(stderr, "bench_driver: %s\n", what);
  exit(1);
}

/* ---- child processes ---------------------------------------------------- */

/* Start argv as a child and wait for its "ready" line. */
static pid_t spawn(char *const argv[]) {
  int pfd[2];
  if (pipe(pfd) < 0) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    dup2(pfd[1], STDOUT_FILENO);
    close(pfd[0]);
    close(pfd[1]);
    execv(argv[0], argv);
    _exit(127);
  }
  close(pfd[1]);
  char line[16] = {0};
  if (read(pfd[0], line, sizeof line - 1) <= 0 || strncmp(line, "ready", 5))
    die("a benchmark server did not start");
  close(pfd[0]);
  return pid;
}

static void stop(pid_t pid) {
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
}

/* ---- our prober ---------------------------------------------------------- */

typedef struct one {
  bool done;
  bh_status code;
} one;

static void one_cb(bh_probe_result *res, void *ctx) {
  one *o = ctx;
  o->done = true;
  o->code = res->err.code;
}

/* One probe, start to callback, on base; returns seconds. */
static double probe_once(struct event_base *base, const bh_endpoint *ep,
                         const bh_identity *expected,
                         const bh_probe_opts *opts) {
  one o = {0};
  double t0 = now();
  if (bh_probe_start(base, ep, expected, opts, one_cb, &o) == NULL)
    die("bh_probe_start");
  while (!o.done)
    event_base_loop(base, EVLOOP_ONCE);
  double t = now() - t0;
  if (o.code != BH_OK) {
    fprintf(stderr, "probe failed: %s\n", bh_status_name(o.code));
    exit(1);
  }
  return t;
}

/* ---- the raw baseline client ----------------------------------------------
 */

static int raw_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    die("raw connect");
  return fd;
}

/* Connect, write req, read until EOF; returns the reply's size. */
static size_t raw_reply_size(const char *path, const uint8_t *req,
                             size_t req_len) {
  int fd = raw_connect(path);
  if (write(fd, req, req_len) != (ssize_t)req_len) die("raw write");
  uint8_t buf[4096];
  size_t total = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    total += (size_t)n;
  close(fd);
  return total;
}

/* Connect, write req, read exactly reply_len bytes, close; seconds. */
static double raw_once(const char *path, const uint8_t *req, size_t req_len,
                       size_t reply_len) {
  uint8_t buf[4096];
  double t0 = now();
  int fd = raw_connect(path);
  if (write(fd, req, req_len) != (ssize_t)req_len) die("raw write");
  size_t got = 0;
  while (got < reply_len) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) die("raw read");
    got += (size_t)n;
  }
  close(fd);
  return now() - t0;
}

/* ---- (a) latency ----------------------------------------------------------
 */

typedef struct figures {
  double ours_p50, ours_p90, ours_p99, raw_p50;
  double full_p50, hash_us, exe_size, big_hash_ms;
  double conc_wall, conc_rate, conc_rss_mib;
} figures;

static void bench_latency(struct event_base *base, const bh_endpoint *ep,
                          const char *raw_path, figures *f) {
  static double v[SEQ_N];
  double p50[REPS], p90[REPS], p99[REPS], raw[REPS];
  bh_probe_opts o = bh_probe_opts_default();
  o.response_only = true;
  uint8_t nonce[BH_NONCE_LEN] = {7}, *req;
  size_t req_len;
  if (bh_probe_request_build(nonce, &req, &req_len, NULL) != BH_OK)
    die("request");
  size_t reply_len = raw_reply_size(ep->path, req, req_len);
  static double w[SEQ_N];
  for (int r = 0; r < REPS; r++) {
    /* Alternate ours and raw probe by probe, so a change in the machine's
     * load (2 cores, shared) hits both sides alike. */
    for (int i = 0; i < 200; i++) {
      probe_once(base, ep, NULL, &o);
      raw_once(raw_path, req, req_len, reply_len);
    }
    for (int i = 0; i < SEQ_N; i++) {
      v[i] = probe_once(base, ep, NULL, &o);
      w[i] = raw_once(raw_path, req, req_len, reply_len);
    }
    p50[r] = quantile(v, SEQ_N, 0.5) * 1e6;
    p90[r] = quantile(v, SEQ_N, 0.9) * 1e6;
    p99[r] = quantile(v, SEQ_N, 0.99) * 1e6;
    raw[r] = quantile(w, SEQ_N, 0.5) * 1e6;
  }
  f->ours_p50 = median(p50, REPS);
  f->ours_p90 = median(p90, REPS);
  f->ours_p99 = median(p99, REPS);
  f->raw_p50 = median(raw, REPS);
  free(req);
}

/* ---- (b) full probes and the uncached hash ----------------------------------
 */

static void bench_full(struct event_base *base, const bh_endpoint *ep,
                       pid_t daemon, figures *f) {
  static double v[FULL_N];
  double p50[REPS], hash[REPS];
  bh_identity expected;
  bh_err err;
  bh_identity_init(&expected);
  if (bh_identity_of_pid((uint32_t)daemon, ep, &expected, &err) != BH_OK)
    die(err.message);
  bh_probe_opts o = bh_probe_opts_default();
  for (int r = 0; r < REPS; r++) {
    bh_digest_cache_clear();
    bh_digests d;
    double t0 = now();
    if (bh_digest_file(expected.exe_path, expected.digests.algs, &d, &err) !=
        BH_OK)
      die(err.message);
    hash[r] = (now() - t0) * 1e6;
    for (int i = 0; i < FULL_N; i++)
      v[i] = probe_once(base, ep, &expected, &o);
    p50[r] = quantile(v, FULL_N, 0.5) * 1e6;
  }
  struct stat st;
  f->exe_size = stat(expected.exe_path, &st) == 0 ? (double)st.st_size : 0;
  f->full_p50 = median(p50, REPS);
  f->hash_us = median(hash, REPS);
  bh_identity_clear(&expected);
}

/* The cost of a first hash of a LARGE executable, which verify_pid pays
 * once per binary (off the loop when the prober has a hasher, inline
 * without one): both uncached digests of a 64 MiB file in one pass, median
 * of REPS. */
static void bench_big_hash(const char *dir, figures *f) {
  enum { BIG_MIB = 64 };
  char path[128];
  (void)snprintf(path, sizeof path, "%s/big.bin", dir);
  FILE *out = fopen(path, "wb");
  if (out == NULL) die("cannot create the large file");
  static uint8_t chunk[1 << 20];
  for (size_t i = 0; i < sizeof chunk; i++)
    chunk[i] = (uint8_t)(i * 2654435761u >> 13);
  for (int i = 0; i < BIG_MIB; i++)
    if (fwrite(chunk, 1, sizeof chunk, out) != sizeof chunk)
      die("cannot write the large file");
  if (fclose(out) != 0) die("cannot write the large file");
  double ms[REPS];
  for (int r = 0; r < REPS; r++) {
    bh_digests d;
    bh_err err;
    double t0 = now();
    if (bh_digest_file_uncached(path, BH_ALGS_ALL, &d, &err) != BH_OK)
      die(err.message);
    ms[r] = (now() - t0) * 1e3;
  }
  f->big_hash_ms = median(ms, REPS);
  (void)unlink(path);
}

/* ---- (c) concurrency, measured in a fresh child process --------------------
 */

typedef struct conc {
  struct event_base *base;
  const bh_endpoint *ep;
  bh_probe_opts opts;
  int started, finished, failed;
} conc;

static void conc_start(conc *c);

static void conc_cb(bh_probe_result *res, void *ctx) {
  conc *c = ctx;
  c->finished++;
  if (res->err.code != BH_OK) c->failed++;
  if (c->started < CONC_TOTAL) conc_start(c);
}

static void conc_start(conc *c) {
  c->started++;
  if (bh_probe_start(c->base, c->ep, NULL, &c->opts, conc_cb, c) == NULL)
    die("bh_probe_start");
}

/* In a child: run the batch, report {wall, failed, maxrss KiB}. */
static void conc_child(const bh_endpoint *ep, int wfd) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  conc c = {.base = bh_loop_new(), .ep = ep};
  c.opts = bh_probe_opts_default();
  c.opts.response_only = true;
  c.opts.timeout = 5.0;
  double t0 = now();
  for (int i = 0; i < CONC_INFLIGHT; i++)
    conc_start(&c);
  while (c.finished < CONC_TOTAL)
    event_base_loop(c.base, EVLOOP_ONCE);
  double out[3] = {now() - t0, c.failed, 0};
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  out[2] = (double)ru.ru_maxrss;
  if (write(wfd, out, sizeof out) != (ssize_t)sizeof out) _exit(1);
  _exit(0);
}

static void bench_concurrency(const bh_endpoint *ep, figures *f) {
  double wall[REPS], rss[REPS];
  for (int r = 0; r < REPS; r++) {
    int pfd[2];
    if (pipe(pfd) < 0) die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
      close(pfd[0]);
      conc_child(ep, pfd[1]);
    }
    close(pfd[1]);
    double out[3];
    if (read(pfd[0], out, sizeof out) != (ssize_t)sizeof out)
      die("concurrency child failed");
    close(pfd[0]);
    waitpid(pid, NULL, 0);
    if (out[1] != 0) {
      fprintf(stderr, "concurrency: %.0f probes failed\n", out[1]);
      exit(1);
    }
    wall[r] = out[0];
    rss[r] = out[2] / 1024.0;
  }
  f->conc_wall = median(wall, REPS);
  f->conc_rate = CONC_TOTAL / f->conc_wall;
  f->conc_rss_mib = median(rss, REPS);
}

/* ---- report
 * ------------------------------------------------------------------ */

static void report(const figures *f, const char *json_path) {
  double ratio = f->ours_p50 / f->raw_p50;
  printf("bhprobe-lua benchmarks (medians of %d runs)\n", REPS);
  printf("  %-44s %10s\n", "figure", "value");
  printf("  %-44s %8.1f us\n", "(a) response-only probe p50", f->ours_p50);
  printf("  %-44s %8.1f us\n", "(a) response-only probe p90", f->ours_p90);
  printf("  %-44s %8.1f us\n", "(a) response-only probe p99", f->ours_p99);
  printf("  %-44s %8.1f us\n", "(a) raw blocking baseline p50", f->raw_p50);
  printf("  %-44s %8.2f x  (target <= 1.5: %s)\n", "(a) ours p50 / raw p50",
         ratio, ratio <= 1.5 ? "met" : "NOT met");
  printf("  %-44s %8.1f us\n", "(b) full probe p50 (digest cached)",
         f->full_p50);
  printf("  %-44s %8.1f us  (%.1f MiB executable)\n", "(b) first uncached hash",
         f->hash_us, f->exe_size / 1048576.0);
  printf("  %-44s %8.1f ms  (%.0f MiB/s; blocks the loop once)\n",
         "(b) first hash of a 64 MiB executable", f->big_hash_ms,
         64.0 / (f->big_hash_ms / 1e3));
  printf("  %-44s %8.3f s   (target <= 0.5: %s)\n",
         "(c) 10,000 probes, 1,000 in flight: wall", f->conc_wall,
         f->conc_wall <= 0.5 ? "met" : "NOT met");
  printf("  %-44s %8.0f /s\n", "(c) probes per second", f->conc_rate);
  printf("  %-44s %8.1f MiB (target <= 64: %s)\n", "(c) peak RSS",
         f->conc_rss_mib, f->conc_rss_mib <= 64 ? "met" : "NOT met");
  json_t *j = json_pack(
      "{s:i, s:{s:f, s:f, s:f, s:f, s:f}, s:{s:f, s:f, s:f, s:f}, "
      "s:{s:i, s:i, s:f, s:f, s:f}}",
      "repetitions", REPS, "latency_us", "ours_p50", f->ours_p50, "ours_p90",
      f->ours_p90, "ours_p99", f->ours_p99, "raw_p50", f->raw_p50, "ratio_p50",
      ratio, "full_probe", "p50_us", f->full_p50, "uncached_hash_us",
      f->hash_us, "exe_bytes", f->exe_size, "hash_64mib_ms", f->big_hash_ms,
      "concurrency", "probes", CONC_TOTAL, "in_flight", CONC_INFLIGHT, "wall_s",
      f->conc_wall, "probes_per_s", f->conc_rate, "peak_rss_mib",
      f->conc_rss_mib);
  if (j == NULL || json_dump_file(j, json_path, JSON_INDENT(2)) != 0)
    die("cannot write the JSON report");
  json_decref(j);
  printf("  figures written to %s\n", json_path);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bench_driver BENCH_BIN_DIR OUT_JSON\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  char dir[] = "/tmp/bhb.XXXXXX", ours[64], raw[64], resp_bin[4096],
       raw_bin[4096];
  if (mkdtemp(dir) == NULL) die("mkdtemp");
  snprintf(ours, sizeof ours, "%s/ours.sock", dir);
  snprintf(raw, sizeof raw, "%s/raw.sock", dir);
  snprintf(resp_bin, sizeof resp_bin, "%s/bench_responder", argv[1]);
  snprintf(raw_bin, sizeof raw_bin, "%s/bench_raw_server", argv[1]);
  pid_t rp = spawn((char *const[]){resp_bin, ours, NULL});
  bh_endpoint ep = {0};
  if (bh_endpoint_set(&ep, "bench", ours, NULL) != BH_OK) die("endpoint");
  /* The raw server replies with as many bytes as our responder does. */
  uint8_t nonce[BH_NONCE_LEN] = {7}, *req;
  size_t req_len;
  if (bh_probe_request_build(nonce, &req, &req_len, NULL) != BH_OK)
    die("request");
  char size[32];
  snprintf(size, sizeof size, "%zu", raw_reply_size(ours, req, req_len));
  free(req);
  pid_t sp = spawn((char *const[]){raw_bin, raw, size, NULL});
  struct event_base *base = bh_loop_new();
  figures f = {0};
  bench_latency(base, &ep, raw, &f);
  bench_full(base, &ep, rp, &f);
  bench_big_hash(dir, &f);
  bench_concurrency(&ep, &f);
  stop(sp);
  stop(rp);
  report(&f, argv[2]);
  event_base_free(base);
  bh_endpoint_clear(&ep);
  unlink(raw);
  rmdir(dir);
  return 0;
}
