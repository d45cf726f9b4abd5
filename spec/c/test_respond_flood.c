/* A responder stays available under floods. Three processes: the
 * responder (a child, its own loop and CPU), a flooder (a child holding
 * thousands of connections and reconnecting each one the responder
 * closes, as a determined attacker would), and this process, which sends
 * good probes with a 0.5 s timeout meanwhile and counts how many succeed.
 * Floods: 3,000 idle connections; 1,100 slowloris clients trickling a
 * valid request one byte every 300 ms; both at once. Before eviction the
 * listener stopped accepting at the cap and good probes waited in the
 * backlog behind the attackers until they timed out. Also: 5,000 idle
 * clients that do not come back are all closed and counted. */
#include <event2/event.h>
#include <signal.h>

#include "loop.h"
#include "resp_child.h"
#include "wire.h"

enum {
  GOOD_PROBES = 200,     /* good probes per flood */
  GOOD_GAP_USEC = 10000, /* one started every 10 ms */
  SLOW_TICK_USEC = 300000,
  IDLE_ONCE = 5000,
};

/* The share of good probes that must succeed. The target (and what this
 * machine measures) is >= 99 %; the check leaves room for a loaded
 * machine, and before eviction the share was near 0 %. */
#define GOOD_SHARE_MIN 0.90

/* ASan keeps freed blocks in a quarantine (256 MiB by default) to catch
 * uses after free. A flood frees some 150,000 connections in 2 s, so the
 * responder's peak RSS in a sanitized tree grew with that quarantine
 * (110-160 MiB), not with anything the responder holds. A 16 MiB one
 * keeps the bound about our memory and still catches recent misuse. */
#if defined(__SANITIZE_ADDRESS__)
#define FLOOD_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FLOOD_UNDER_ASAN 1
#endif
#endif
#ifdef FLOOD_UNDER_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "quarantine_size_mb=16";
}
#endif

static struct event_base *base;
static bh_endpoint ep; /* tmpdir/f.sock */
static bh_identity me;

/* ---- the flooder (a child) ---------------------------------------------- */

typedef struct flood_args {
  int idle, slow; /* connections of each kind to hold */
} flood_args;

typedef struct flood_report {
  long connects, closed, refused; /* refused: backlog full (EAGAIN) */
  long bytes_trickled;
  int held; /* connected when the report was made */
} flood_report;

typedef struct slot {
  int fd;
  bool slow;
  size_t sent; /* bytes of the request trickled so far */
  struct event *ev;
} slot;

static struct {
  struct event_base *b;
  slot *slots;
  int n, held;
  bool ready_sent;
  int wfd;
  uint8_t req[128];
  size_t req_len;
  flood_report rep;
  struct event *retry;
} fl;

static void fl_connect(slot *s);

/* Readable on a flooding connection: the responder closed it (nothing
 * else is ever sent to a client that asks nothing). Come back at once. */
static void on_fl_readable(evutil_socket_t fd, short what, void *arg) {
  slot *s = arg;
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  fl.rep.closed++;
  fl.held--;
  event_free(s->ev);
  close(s->fd);
  s->fd = -1;
  fl_connect(s);
}

/* Connect slot s (non-blocking; a Unix socket connects at once or the
 * backlog is full, EAGAIN: then the retry timer tries again). */
static void fl_connect(slot *s) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", ep.path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) _exit(20);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (errno != EAGAIN) _exit(21);
    fl.rep.refused++;
    close(fd);
    return; /* the retry tick reconnects it */
  }
  s->fd = fd;
  s->sent = 0;
  s->ev = event_new(fl.b, fd, EV_READ | EV_PERSIST, on_fl_readable, s);
  if (s->ev == NULL || event_add(s->ev, NULL) != 0) _exit(22);
  fl.rep.connects++;
  fl.held++;
  if (!fl.ready_sent && fl.held == fl.n) {
    fl.ready_sent = true;
    ch_report(fl.wfd, "x", 1);
  }
}

/* Every 10 ms: reconnect slots the backlog refused. */
static void on_fl_retry(evutil_socket_t fd, short what, void *arg) {
  for (int i = 0; i < fl.n; i++)
    if (fl.slots[i].fd < 0) fl_connect(&fl.slots[i]);
}

/* Every 300 ms: each slowloris client sends one more byte of a valid
 * request (never the last one). */
static void on_fl_tick(evutil_socket_t fd, short what, void *arg) {
  for (int i = 0; i < fl.n; i++) {
    slot *s = &fl.slots[i];
    if (!s->slow || s->fd < 0 || s->sent + 1 >= fl.req_len) continue;
    if (send(s->fd, fl.req + s->sent, 1, MSG_NOSIGNAL) == 1) {
      s->sent++;
      fl.rep.bytes_trickled++;
    }
  }
}

static void on_fl_term(evutil_socket_t fd, short what, void *arg) {
  event_base_loopbreak(fl.b);
}

static void flooder(void *arg, int wfd) {
  const flood_args *a = arg;
  uint8_t nonce[BH_NONCE_LEN] = {9}, *req = NULL;
  size_t n = 0;
  raise_nofile();
  if (bh_probe_request_build(nonce, &req, &n, NULL) != BH_OK ||
      n > sizeof fl.req)
    _exit(23);
  memcpy(fl.req, req, n);
  fl.req_len = n;
  free(req);
  fl.b = bh_loop_new();
  fl.wfd = wfd;
  fl.n = a->idle + a->slow;
  fl.slots = calloc((size_t)fl.n, sizeof *fl.slots);
  struct event *term = evsignal_new(fl.b, SIGTERM, on_fl_term, NULL);
  struct event *tick = event_new(fl.b, -1, EV_PERSIST, on_fl_tick, NULL);
  fl.retry = event_new(fl.b, -1, EV_PERSIST, on_fl_retry, NULL);
  struct timeval tv_tick = {0, SLOW_TICK_USEC}, tv_retry = {0, 10000};
  if (fl.slots == NULL || term == NULL || tick == NULL || fl.retry == NULL ||
      event_add(term, NULL) || event_add(tick, &tv_tick) ||
      event_add(fl.retry, &tv_retry))
    _exit(24);
  for (int i = 0; i < fl.n; i++) {
    fl.slots[i].fd = -1;
    fl.slots[i].slow = i >= a->idle;
    fl_connect(&fl.slots[i]);
  }
  event_base_dispatch(fl.b);
  fl.rep.held = fl.held;
  if (!fl.ready_sent) ch_report(wfd, "n", 1); /* never all held */
  ch_report(wfd, &fl.rep, sizeof fl.rep);
}

/* ---- good probes --------------------------------------------------------- */

typedef struct good {
  int started, done, ok;
  bh_status last_err;
  char last_msg[BH_ERR_MESSAGE_MAX];
  double max_ok; /* slowest success, s */
  struct event *tick;
} good;

static void on_good_probe(bh_probe_result *res, void *ctx) {
  good *g = ctx;
  g->done++;
  if (res->err.code == BH_OK) {
    g->ok++;
    if (res->elapsed > g->max_ok) g->max_ok = res->elapsed;
  } else {
    g->last_err = res->err.code;
    snprintf(g->last_msg, sizeof g->last_msg, "%s", res->err.message);
  }
}

/* Start the next good probe: response-only, expecting our identity, with
 * the 0.5 s timeout of a real policy. */
static void on_good_tick(evutil_socket_t fd, short what, void *arg) {
  good *g = arg;
  bh_probe_opts o = response_only_opts(0.5);
  if (g->started == GOOD_PROBES) return;
  g->started++;
  CHECK(bh_probe_start(base, &ep, &me, &o, on_good_probe, g) != NULL);
}

static bool good_done(void *arg) {
  return ((good *)arg)->done == GOOD_PROBES;
}

static void run_good_probes(good *g) {
  memset(g, 0, sizeof *g);
  g->tick = event_new(base, -1, EV_PERSIST, on_good_tick, g);
  struct timeval tv = {0, GOOD_GAP_USEC};
  CHECK(g->tick != NULL && event_add(g->tick, &tv) == 0);
  CHECK(loop_until(base, good_done, g, GOOD_PROBES * 0.6 + 30));
  event_free(g->tick);
}

/* ---- the floods -----------------------------------------------------------
 */

static void flood(const char *what, int idle, int slow) {
  resp_child rc = {.ep = &ep, .id = &me, .opts = bh_respond_opts_default()};
  CHECK(resp_child_start(&rc));
  flood_args a = {idle, slow};
  int rfd = -1;
  char ready = 0;
  pid_t fpid = ch_spawn(flooder, &a, &rfd);
  CHECK(fpid > 0);
  CHECK(ch_read_within(rfd, &ready, 1, 60.0));
  CHECK(ready == 'x'); /* every attacking connection is held */
  loop_for(base, 0.5); /* the responder is now at its cap */
  good g;
  double t0 = bh_test_now();
  run_good_probes(&g);
  double took = bh_test_now() - t0;
  CHECK(kill(fpid, SIGTERM) == 0);
  flood_report fr = {0};
  CHECK(ch_collect(fpid, rfd, &fr, sizeof fr, 30.0));
  resp_report rr;
  CHECK(resp_child_stop(&rc, &rr));
  double share = (double)g.ok / GOOD_PROBES;
  printf(
      "  %s: %d/%d good probes ok (%.1f %%) in %.1f s, slowest ok %.0f ms%s%s\n"
      "    flooder: %d held, %ld connects, %ld closed by the responder, %ld "
      "refused (backlog full), %ld bytes trickled\n"
      "    responder: served %llu, rejected %llu (evicted %llu), open %u, "
      "peak RSS %.1f MiB\n",
      what, g.ok, GOOD_PROBES, 100 * share, took, g.max_ok * 1e3,
      g.ok < GOOD_PROBES ? "; last failure: " : "",
      g.ok < GOOD_PROBES ? g.last_msg : "", fr.held, fr.connects, fr.closed,
      fr.refused, fr.bytes_trickled, (unsigned long long)rr.served,
      (unsigned long long)rr.rejected, (unsigned long long)rr.evicted,
      rr.open_conns, (double)rr.hwm_kb / 1024);
  CHECK(share >= GOOD_SHARE_MIN);
  CHECK(rr.served >= (uint64_t)g.ok);
  CHECK(rr.hwm_kb > 0 && rr.hwm_kb < 64L * 1024 * (ch_sanitized() ? 2 : 1));
}

static void test_idle_flood(void) {
  flood("3,000 idle connections", 3000, 0);
}

static void test_slowloris_flood(void) {
  flood("1,100 slowloris clients", 0, 1100);
}

static void test_both_floods(void) {
  flood("3,000 idle and 1,100 slowloris at once", 3000, 1100);
}

/* ---- 5,000 idle clients that do not come back ---------------------------- */

static struct { int connected, closed, answered; } once;

static void on_once_readable(evutil_socket_t fd, short what, void *arg) {
  struct event *ev = arg;
  char c;
  ssize_t n = read(fd, &c, 1);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    event_add(ev, NULL);
    return;
  }
  if (n > 0) once.answered++;
  once.closed++;
  event_free(ev);
  close(fd);
}

static bool once_all_closed(void *arg) {
  return once.closed == once.connected && ((good *)arg)->done == GOOD_PROBES;
}

/* Every one is closed, by eviction or at its deadline, and counted; none
 * is sent a byte; good probes started meanwhile succeed. */
static void test_idle_once(void) {
  resp_child rc = {.ep = &ep, .id = &me, .opts = bh_respond_opts_default()};
  CHECK(resp_child_start(&rc));
  for (int i = 0; i < IDLE_ONCE; i++) {
    int fd = connect_raw(ep.path);
    if (fd < 0) break; /* a full backlog blocks connect_raw: not here */
    struct event *ev =
        event_new(base, fd, EV_READ, on_once_readable, event_self_cbarg());
    CHECK(ev != NULL && event_add(ev, NULL) == 0);
    once.connected++;
  }
  good g;
  memset(&g, 0, sizeof g);
  g.tick = event_new(base, -1, EV_PERSIST, on_good_tick, &g);
  struct timeval tv = {0, GOOD_GAP_USEC};
  CHECK(g.tick != NULL && event_add(g.tick, &tv) == 0);
  double t0 = bh_test_now();
  CHECK(loop_until(base, once_all_closed, &g, 60.0));
  double took = bh_test_now() - t0;
  event_free(g.tick);
  resp_report rr;
  CHECK(resp_child_stop(&rc, &rr));
  printf(
      "  %d idle clients, not reconnecting: all closed after %.1f s; %d/%d "
      "good probes ok; responder rejected %llu (evicted %llu), served %llu, "
      "peak RSS %.1f MiB\n",
      once.connected, took, g.ok, GOOD_PROBES, (unsigned long long)rr.rejected,
      (unsigned long long)rr.evicted, (unsigned long long)rr.served,
      (double)rr.hwm_kb / 1024);
  CHECK_INT(once.connected, IDLE_ONCE);
  CHECK_INT(once.closed, IDLE_ONCE);
  CHECK_INT(once.answered, 0);
  CHECK((double)g.ok / GOOD_PROBES >= GOOD_SHARE_MIN);
  CHECK_INT(rr.rejected, IDLE_ONCE);
  CHECK(rr.served >= (uint64_t)g.ok);
  CHECK_INT(rr.open_conns, 0);
  CHECK(rr.hwm_kb > 0 && rr.hwm_kb < 64L * 1024 * (ch_sanitized() ? 2 : 1));
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  make_endpoint(&ep, "f.sock");
  make_identity(&ep, &me);
  base = bh_loop_new();
  RUN(test_idle_flood);
  RUN(test_slowloris_flood);
  RUN(test_both_floods);
  RUN(test_idle_once);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
  bh_loop_free(base);
  return bh_test_summary();
}
