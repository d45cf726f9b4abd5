/* The pairs whose prober runs in this process: our prober (bh_probe_start,
 * response-only or full, against any responder process) on either I/O
 * path, the raw baseline (a blocking client loop against a blocking
 * server loop doing the same bytes) and the reference pairs (the least a
 * client and a server can do for those bytes on epoll and on io_uring,
 * bench_ref.h). A round times every probe from start to answer and takes
 * the CPU time of both processes around the measured probes. */
#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "bench_ref.h"
#include "expect.h"
#include "loop.h"
#include "probe.h"

static void make_loop(void *arg) {
  if ((*(struct event_base **)arg = bh_loop_new()) == NULL)
    bench_die("bh_loop_new");
}

/* One event loop per I/O path for every probe this process makes. */
static struct event_base *loop(bool uring) {
  static struct event_base *base[BENCH_PATHS];
  if (base[uring] == NULL) bench_with_io(uring, make_loop, &base[uring]);
  if (bh_loop_io(base[uring]) != (uring ? BH_IO_URING : BH_IO_EPOLL))
    bench_die("the %s loop is not on %s", bench_io_name(uring),
              bench_io_name(uring));
  return base[uring];
}

typedef struct one {
  bool done;
  bh_err err;
} one;

static void one_cb(bh_probe_result *res, void *ctx) {
  one *o = ctx;
  o->done = true;
  o->err = res->err;
}

/* One probe, start to callback; seconds, or -1 with err filled. */
static double ours_once(const bench_pair *p, bh_err *err) {
  bh_probe_opts opts = bh_probe_opts_default();
  opts.response_only = !p->full;
  opts.peer_cred = p->full; /* as bh.probe_response, bh.probe */
  opts.identity = p->full;  /* as bh.probe_response, bh.probe */
  opts.timeout = 5.0;       /* a loaded machine must not turn into failures */
  one o = {0};
  struct event_base *base = loop(p->uring);
  double t0 = bench_now();
  if (bh_probe_start_expected(base, &p->ep, p->prepared, &opts, one_cb, &o) ==
      NULL)
    bench_die("bh_probe_start: out of memory");
  while (!o.done)
    if (event_base_loop(base, EVLOOP_ONCE) < 0) bench_die("event loop");
  double t = bench_now() - t0;
  *err = o.err;
  return o.err.code == BH_OK ? t : -1;
}

static int raw_connect(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  (void)snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    bench_die("raw connect to %s: %s", path, strerror(errno));
  return fd;
}

/* Connect, write the request, read until EOF: the size of the answer the
 * raw server must give to match the responder at path. */
size_t bench_raw_reply_size(const char *path, const uint8_t *req,
                            size_t req_len) {
  int fd = raw_connect(path);
  if (write(fd, req, req_len) != (ssize_t)req_len) bench_die("raw write");
  uint8_t buf[4096];
  size_t total = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    total += (size_t)n;
  (void)close(fd);
  return total;
}

/* The raw client: connect, write, read reply_len bytes, close; seconds. */
static double raw_once(const bench_pair *p) {
  uint8_t buf[4096];
  double t0 = bench_now();
  int fd = raw_connect(p->ep.path);
  if (write(fd, p->req, p->req_len) != (ssize_t)p->req_len)
    bench_die("raw write");
  for (size_t got = 0; got < p->reply_len;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) bench_die("raw read");
    got += (size_t)n;
  }
  (void)close(fd);
  return bench_now() - t0;
}

/* A reference client's probe; seconds, or -1 when it failed. */
static double ref_once(const bench_pair *p) {
  double t0 = bench_now();
  long failed = bench_ref_run(p->ref, 1, 1);
  return failed == 0 ? bench_now() - t0 : -1;
}

static double local_once(bench_pair *p) {
  if (p->kind == BENCH_RAW) return raw_once(p);
  if (p->kind == BENCH_REF) {
    double t = ref_once(p);
    if (t < 0) p->failed++;
    return t;
  }
  bh_err err;
  double t = ours_once(p, &err);
  if (t < 0) p->failed++;
  return t;
}

/* Our prober against the responder process at path: response-only
 * (compared with the identity that responder really has, prepared once
 * as a policy's table is, when compare; else only validated), or (full)
 * a full probe of that identity, whose executable's digest the first
 * probe puts in the cache. One probe decides whether the pair works at
 * all. */
void bench_pair_ours(bench_pair *p, const char *key, const char *label,
                     const char *path, pid_t responder, bool full, bool uring,
                     bool compare) {
  bh_err err;
  *p = (bench_pair){.key = key,
                    .label = label,
                    .kind = BENCH_OURS,
                    .responder = responder,
                    .uring = uring,
                    .full = full};
  if (bh_endpoint_set(&p->ep, "bench", path, &err) != BH_OK)
    bench_die("%s", err.message);
  if (full || compare) {
    bh_identity id;
    bh_identity_init(&id);
    if (bh_identity_of_pid((uint32_t)responder, &p->ep, &id, &err) != BH_OK ||
        (p->prepared = bh_expected_new(&id, true, &err)) == NULL)
      bench_die("identity of the responder: %s", err.message);
    bh_identity_clear(&id);
  }
  p->available = ours_once(p, &err) >= 0;
  if (!p->available)
    (void)snprintf(p->why, sizeof p->why, "%.40s: %s", bh_status_name(err.code),
                   err.message);
}

void bench_pair_raw(bench_pair *p, const char *path, pid_t server,
                    const uint8_t *req, size_t req_len, size_t reply_len) {
  bh_err err;
  *p = (bench_pair){.key = "raw",
                    .label = "raw pair",
                    .kind = BENCH_RAW,
                    .available = true,
                    .responder = server,
                    .req = req,
                    .req_len = req_len,
                    .reply_len = reply_len};
  if (bh_endpoint_set(&p->ep, "bench", path, &err) != BH_OK)
    bench_die("%s", err.message);
}

void bench_pair_ref(bench_pair *p, const char *key, const char *label,
                    const char *path, pid_t server, bench_ref_io io,
                    const uint8_t *req, size_t req_len, size_t reply_len) {
  bh_err err;
  *p = (bench_pair){.key = key,
                    .label = label,
                    .kind = BENCH_REF,
                    .responder = server,
                    .uring = io != BENCH_REF_EPOLL};
  if (bh_endpoint_set(&p->ep, "bench", path, &err) != BH_OK)
    bench_die("%s", err.message);
  p->ref = bench_ref_new(io, path, req, req_len, reply_len, 1, p->why,
                         sizeof p->why);
  p->available = p->ref != NULL && ref_once(p) >= 0;
  if (p->ref != NULL && !p->available)
    (void)snprintf(p->why, sizeof p->why, "its first probe failed");
}

/* A round of p (its prober is this process, its responder p->responder):
 * plan->warmup unmeasured probes, then plan->probes timed ones. */
void bench_round_local(bench_pair *p, const bench_plan *plan,
                       bench_round *out) {
  static double lat[BENCH_MAX_PROBES];
  for (int i = 0; i < plan->warmup; i++)
    (void)local_once(p);
  double cpu0 = bench_cpu_self(), rcpu0 = bench_cpu_of(p->responder);
  double t0 = bench_now();
  int n = 0;
  for (int i = 0; i < plan->probes; i++) {
    double t = local_once(p);
    if (t >= 0) lat[n++] = t * 1e6;
  }
  double wall = bench_now() - t0;
  double cpu = bench_cpu_self() - cpu0;
  double rcpu = bench_cpu_of(p->responder) - rcpu0;
  bench_round_figures(out, plan->probes, wall, cpu, rcpu, lat, n);
}

void bench_pair_free(bench_pair *p) {
  if (p->kind == BENCH_LUA) bench_pair_lua_free(p);
  bench_ref_free(p->ref);
  p->ref = NULL;
  bh_expected_unref(p->prepared);
  p->prepared = NULL;
  bh_endpoint_clear(&p->ep);
}
