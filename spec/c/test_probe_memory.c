/* Memory per connection, bounded on both sides independently of the
 * 16 MiB protocol cap. Prober: answers that would verify but carry a huge
 * unknown field, withheld by one byte, cost each probe in flight 16 MiB
 * (64 in flight: over 1 GiB); with max_response they are refused at their
 * header. Responder: requests of 16 MiB - 1, and valid requests with a
 * 15 MiB tracestate sent by clients that never read the echo, cost it
 * tens of MiB per connection; with max_request they are dropped at their
 * header. Peak resident sets are measured in child processes (the prober
 * or the responder alone) and printed; docs/hostile-peers.md quotes
 * them. */
#include <event2/event.h>
#include <signal.h>

#include "frame.pb-c.h"
#include "loop.h"
#include "resp_child.h"
#include "wire.h"

/* Targets of the plain build; sanitizer builds print their figures and
 * are held to twice these (shadow memory, quarantine, redzones). */
#define TARGET_64_KB (64L * 1024)
#define TARGET_128_KB (128L * 1024)

enum { PAD_TAG = 50, MIB = 1 << 20 };

static struct event_base *base;
static bh_endpoint ep; /* tmpdir/m.sock */
static bh_identity me;

static long bound_kb(long target) {
  return ch_sanitized() ? 2 * target : target;
}

static size_t varint_len(uint64_t v) {
  uint8_t tmp[10];
  return bh_test_varint(v, tmp);
}

/* ---- a daemon that withholds the end of huge answers --------------------- */

typedef struct wh_server wh_server;
typedef struct wh_conn {
  wh_server *s;
  struct wh_conn *next;
  int fd;
  struct event *ev;
  bh_frame_reader rd;
  uint8_t prefix[512];
  size_t prefix_len, sent, total;
} wh_conn;

struct wh_server {
  int lfd;
  struct event *lev;
  uint32_t announce; /* body length in every answer's header */
  size_t send_body;  /* body bytes sent; the rest is withheld */
  uint8_t *id_pb;
  size_t id_len;
  int accepted, delivered;
  wh_conn *conns;
};

static const uint8_t zeros[64 * 1024];

/* The body length of an answer whose pad field holds q zero bytes. */
static size_t answer_body_len(const wh_server *s, uint64_t req_id, size_t q) {
  size_t p = BH_NONCE_LEN + s->id_len + 2 + varint_len(q) + q;
  return 2 + 2 + 4 + 1 + varint_len(req_id) + 1 + varint_len(p) + p;
}

/* Header and the start of a RESPONSE frame for req: envelope, kind,
 * protocol, request_id, then the payload last: the nonce, our identity and
 * an unknown field 50 of zeros that pads the body to s->announce bytes.
 * Were it completed, it would verify. */
static void answer_prefix(wh_conn *c, const bh_request *req) {
  const wh_server *s = c->s;
  size_t q = s->announce;
  for (int i = 0;
       i < 8 && answer_body_len(s, req->request_id, q) != s->announce; i++)
    q -= answer_body_len(s, req->request_id, q) - s->announce;
  uint8_t *o = c->prefix;
  size_t n = 0, p = BH_NONCE_LEN + s->id_len + 2 + varint_len(q) + q;
  bh_frame_header(s->announce, o);
  n = BH_FRAME_HEADER_LEN;
  memcpy(o + n, "\x08\x01\x10\x01\x18\xb2\xe4\x02\x28", 9);
  n += 9;
  n += bh_test_varint(req->request_id, o + n);
  o[n++] = 0x22; /* payload */
  n += bh_test_varint(p, o + n);
  memcpy(o + n, req->nonce, BH_NONCE_LEN);
  n += BH_NONCE_LEN;
  memcpy(o + n, s->id_pb, s->id_len);
  n += s->id_len;
  o[n++] = (uint8_t)((PAD_TAG << 3 | 2) | 0x80); /* key of field 50, */
  o[n++] = (uint8_t)(PAD_TAG >> 4);              /* length-delimited */
  n += bh_test_varint(q, o + n);
  c->prefix_len = n;
  c->total = BH_FRAME_HEADER_LEN + s->send_body;
  CHECK(answer_body_len(s, req->request_id, q) == s->announce);
  CHECK(c->prefix_len <= c->total);
}

static void wh_conn_close(wh_conn *c) {
  if (c->fd < 0) return;
  event_free(c->ev);
  close(c->fd);
  c->fd = -1;
  bh_frame_reader_free(&c->rd);
}

/* Write what is left of the prefix, then zeros, up to c->total. */
static void wh_write(wh_conn *c) {
  while (c->sent < c->total) {
    const uint8_t *src = c->sent < c->prefix_len ? c->prefix + c->sent : zeros;
    size_t n = c->sent < c->prefix_len ? c->prefix_len - c->sent : sizeof zeros;
    if (n > c->total - c->sent) n = c->total - c->sent;
    ssize_t w = send(c->fd, src, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) return;
    if (w <= 0) {
      wh_conn_close(c); /* the prober gave up: fine */
      return;
    }
    c->sent += (size_t)w;
  }
  c->s->delivered++;
  event_del(c->ev); /* now hold: never send the rest */
}

static void on_wh_conn(evutil_socket_t fd, short what, void *arg);

/* Read the request; once whole, start answering. After the answer was
 * sent, readable means the prober closed. */
static void wh_read(wh_conn *c) {
  uint8_t buf[512];
  ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n < 0 && errno == EAGAIN) return;
  size_t used = 0;
  if (n <= 0 || c->prefix_len > 0 ||
      bh_frame_reader_feed(&c->rd, buf, (size_t)n, &used, NULL) ==
          BH_READ_ERROR) {
    wh_conn_close(c);
    return;
  }
  if (!c->rd.done) return;
  bh_request req = {0};
  CHECK_CODE(bh_probe_request_validate(c->rd.body, c->rd.body_len, &req, NULL),
             BH_OK, NULL);
  answer_prefix(c, &req);
  bh_request_clear(&req);
  event_del(c->ev);
  event_assign(c->ev, base, c->fd, EV_WRITE | EV_PERSIST, on_wh_conn, c);
  event_add(c->ev, NULL);
  wh_write(c);
}

static void on_wh_conn(evutil_socket_t fd, short what, void *arg) {
  wh_conn *c = arg;
  if (what & EV_WRITE)
    wh_write(c);
  else
    wh_read(c);
}

static void on_wh_accept(evutil_socket_t lfd, short what, void *arg) {
  wh_server *s = arg;
  int fd;
  while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
    wh_conn *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    c->s = s;
    c->fd = fd;
    bh_frame_reader_init(&c->rd);
    c->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_wh_conn, c);
    event_add(c->ev, NULL);
    c->next = s->conns;
    s->conns = c;
    s->accepted++;
  }
}

static void wh_start(wh_server *s, uint32_t announce, size_t send_body) {
  bh_err err;
  memset(s, 0, sizeof *s);
  s->announce = announce;
  s->send_body = send_body;
  CHECK_CODE(
      bh_identity_encode(&me, BH_FORM_ANSWER, &s->id_pb, &s->id_len, &err),
      BH_OK, &err);
  s->lfd = listen_raw(ep.path, 4096);
  s->lev = event_new(base, s->lfd, EV_READ | EV_PERSIST, on_wh_accept, s);
  event_add(s->lev, NULL);
}

static void wh_stop(wh_server *s) {
  while (s->conns != NULL) {
    wh_conn *c = s->conns;
    s->conns = c->next;
    wh_conn_close(c);
    free(c);
  }
  event_free(s->lev);
  close(s->lfd);
  unlink(ep.path);
  free(s->id_pb);
}

/* ---- the prober, in a child ---------------------------------------------- */

typedef struct pr_args {
  int n;
  double timeout;
  uint32_t max_response; /* 0: the default */
} pr_args;

typedef struct pr_report {
  int done, too_large, timeout, other;
  bh_status other_code;
  long hwm_kb;
  double secs;
} pr_report;

static void on_pr_probe(bh_probe_result *res, void *ctx) {
  pr_report *rep = ctx;
  rep->done++;
  if (res->err.code == BH_FRAME_TOO_LARGE)
    rep->too_large++;
  else if (res->err.code == BH_TIMEOUT)
    rep->timeout++;
  else
    rep->other++, rep->other_code = res->err.code;
}

/* Start n probes of ep at once, wait for all, report the peak RSS. */
static void prober_child(void *arg, int wfd) {
  const pr_args *a = arg;
  struct event_base *b = bh_loop_new();
  pr_report rep = {0};
  if (b == NULL || !ch_reset_hwm()) _exit(3);
  double t0 = bh_test_now();
  bh_probe_opts o = response_only_opts(a->timeout);
  if (a->max_response) o.max_response = a->max_response;
  for (int i = 0; i < a->n; i++)
    if (bh_probe_start(b, &ep, NULL, &o, on_pr_probe, &rep) == NULL) _exit(4);
  while (rep.done < a->n && bh_test_now() - t0 < a->timeout + 120)
    event_base_loop(b, EVLOOP_ONCE);
  rep.secs = bh_test_now() - t0;
  rep.hwm_kb = ch_hwm_kb();
  ch_report(wfd, &rep, sizeof rep);
}

static void on_report_ready(evutil_socket_t fd, short what, void *arg) {
  *(bool *)arg = true;
}

typedef struct wh_case {
  const char *what;
  int n;
  uint32_t announce;
  size_t send_body;
  double timeout;
  bh_status want;
  long target_kb;
} wh_case;

/* Run one case: the withholding daemon here, the prober in a child. */
static void withheld(const wh_case *k) {
  wh_server s;
  wh_start(&s, k->announce, k->send_body);
  pr_args a = {k->n, k->timeout, 0};
  int rfd = -1;
  pid_t pid = ch_spawn(prober_child, &a, &rfd);
  CHECK(pid > 0);
  if (pid <= 0) return;
  bool ready = false;
  struct event *ev = event_new(base, rfd, EV_READ, on_report_ready, &ready);
  event_add(ev, NULL);
  CHECK(loop_until(base, flag_set, &ready, k->timeout + 120));
  event_free(ev);
  pr_report rep = {0};
  CHECK(ch_collect(pid, rfd, &rep, sizeof rep, 10.0));
  printf(
      "  %s: %d in flight, answers of %u bytes with %zu sent: %d "
      "frame_too_large, %d timeout, %d other, in %.2f s; %d answers fully "
      "sent; prober peak RSS %.1f MiB\n",
      k->what, k->n, k->announce, k->send_body, rep.too_large, rep.timeout,
      rep.other, rep.secs, s.delivered, (double)rep.hwm_kb / 1024);
  CHECK_INT(rep.done, k->n);
  CHECK_INT(k->want == BH_TIMEOUT ? rep.timeout : rep.too_large, k->n);
  if (rep.other) CHECK_CODE(rep.other_code, k->want, NULL);
  CHECK(rep.hwm_kb > 0 && rep.hwm_kb <= bound_kb(k->target_kb));
  wh_stop(&s);
}

static void test_prober_withheld_answers(void) {
  static const wh_case cases[] = {
      /* Over max_response: refused at the header, nothing held. */
      {"16 MiB answers withheld by one byte", 64, 16 * MIB, 16 * MIB - 1, 5.0,
       BH_FRAME_TOO_LARGE, TARGET_64_KB},
      {"16 MiB answers, 256 KiB sent", 1000, 16 * MIB, 256 << 10, 5.0,
       BH_FRAME_TOO_LARGE, TARGET_128_KB},
      /* At max_response: held until the deadline, the worst case. */
      {"64 KiB answers withheld by one byte", 64, 64 << 10, (64 << 10) - 1, 2.0,
       BH_TIMEOUT, TARGET_64_KB},
      {"64 KiB answers withheld by one byte", 1000, 64 << 10, (64 << 10) - 1,
       2.0, BH_TIMEOUT, TARGET_128_KB},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    withheld(&cases[i]);
}

/* ---- clients that send huge requests, or never read the echo -------------
 */

typedef struct pusher {
  int fd;
  struct event *ev;
  const uint8_t *data;
  size_t len, off;
  bool done, cut;
} pusher;

static int pushers_left;

/* Send the next chunk; a refused connection (EPIPE, ECONNRESET) is cut.
 * Whatever comes back is never read. */
static void on_push(evutil_socket_t fd, short what, void *arg) {
  pusher *p = arg;
  size_t n = p->len - p->off;
  if (n > (256u << 10)) n = 256u << 10;
  ssize_t w = send(p->fd, p->data + p->off, n, MSG_NOSIGNAL);
  if (w < 0 && errno == EAGAIN) return;
  if (w > 0) p->off += (size_t)w;
  if (w <= 0) p->cut = true;
  if (w <= 0 || p->off == p->len) {
    p->done = true;
    pushers_left--;
    event_del(p->ev);
  }
}

static bool no_pushers_left(void *arg) {
  return pushers_left == 0;
}

typedef struct push_result {
  int cut;
  resp_report rep;
} push_result;

/* A responder child with default options, started before the test builds
 * its big buffers (a child shares what its parent has touched, and that
 * would count in its resident set). */
static void start_responder(resp_child *rc) {
  *rc = (resp_child){.ep = &ep, .id = &me, .opts = bh_respond_opts_default()};
  CHECK(resp_child_start(rc));
}

/* n clients each send data (the same bytes) to the responder child and
 * never read; once every one has sent all or been cut off, wait a moment
 * and stop the responder. */
static push_result push_clients(resp_child *rc, int n, const uint8_t *data,
                                size_t len) {
  push_result res = {0};
  pusher *ps = calloc((size_t)n, sizeof *ps);
  CHECK(ps != NULL);
  pushers_left = n;
  for (int i = 0; i < n; i++) {
    ps[i] = (pusher){connect_raw(ep.path), NULL, data, len, 0, false, false};
    CHECK(ps[i].fd >= 0);
    CHECK(fcntl(ps[i].fd, F_SETFL, O_NONBLOCK) == 0);
    ps[i].ev =
        event_new(base, ps[i].fd, EV_WRITE | EV_PERSIST, on_push, &ps[i]);
    event_add(ps[i].ev, NULL);
  }
  CHECK(loop_until(base, no_pushers_left, NULL, 120.0));
  /* Wait (never reading, at most 10 s in all) until each client was
   * answered or closed. */
  double end = bh_test_now() + 10.0;
  for (int i = 0; i < n; i++) {
    struct pollfd pf = {.fd = ps[i].fd, .events = POLLIN};
    while (!ps[i].cut && poll(&pf, 1, 10) == 0 && bh_test_now() < end) {
    }
  }
  CHECK(resp_child_stop(rc, &res.rep));
  for (int i = 0; i < n; i++) {
    res.cut += ps[i].cut;
    event_free(ps[i].ev);
    close(ps[i].fd);
  }
  free(ps);
  return res;
}

/* The body of a probe request (nonce 7) with the given Frame fields set:
 * a traceparent and a tracestate of tp_len and ts_len characters ('f' and
 * 'a': valid UTF-8), request_id and deadline_unix_ms when wide is set at
 * their widest. Framed, malloc'd. */
static uint8_t *traced_request(size_t tp_len, size_t ts_len, bool wide,
                               size_t *len) {
  RunningProcess__Broker__V1__Frame f =
      RUNNING_PROCESS__BROKER__V1__FRAME__INIT;
  uint8_t nonce[BH_NONCE_LEN] = {7};
  char *tp = malloc(tp_len + 1), *ts = malloc(ts_len + 1);
  CHECK(tp != NULL && ts != NULL);
  memset(tp, 'f', tp_len);
  tp[tp_len] = '\0';
  memset(ts, 'a', ts_len);
  ts[ts_len] = '\0';
  f.envelope_version = 1;
  f.payload_protocol = BH_PROBE_PROTOCOL;
  f.payload.len = BH_NONCE_LEN;
  f.payload.data = nonce;
  f.request_id = wide ? UINT64_MAX : bh_request_id_from_nonce(nonce);
  f.deadline_unix_ms = wide ? UINT64_MAX : 0;
  f.traceparent = tp;
  f.tracestate = ts;
  size_t body = running_process__broker__v1__frame__get_packed_size(&f);
  uint8_t *out = malloc(BH_FRAME_HEADER_LEN + body);
  CHECK(out != NULL);
  bh_frame_header((uint32_t)body, out);
  running_process__broker__v1__frame__pack(&f, out + BH_FRAME_HEADER_LEN);
  free(tp);
  free(ts);
  *len = BH_FRAME_HEADER_LEN + body;
  return out;
}

static void test_responder_big_requests(void) {
  /* 64 clients announcing a 16 MiB request and sending all of it but
   * the last byte. */
  resp_child rc;
  start_responder(&rc);
  size_t big = BH_FRAME_HEADER_LEN + 16 * MIB - 1;
  uint8_t *junk = calloc(1, big);
  CHECK(junk != NULL);
  bh_frame_header(16 * MIB, junk);
  push_result r = push_clients(&rc, 64, junk, big);
  free(junk);
  printf(
      "  64 clients sending 16 MiB requests but the last byte: %d cut off, "
      "responder "
      "rejected %llu, peak RSS %.1f MiB (%.1f at start)\n",
      r.cut, (unsigned long long)r.rep.rejected, (double)r.rep.hwm_kb / 1024,
      (double)r.rep.start_kb / 1024);
  CHECK_INT(r.cut, 64);
  CHECK_INT(r.rep.rejected, 64);
  CHECK(r.rep.hwm_kb > 0 && r.rep.hwm_kb <= bound_kb(TARGET_64_KB));

  /* 32 reflect clients: valid requests with a 15 MiB tracestate, whose
   * echo they never read. */
  start_responder(&rc);
  size_t len = 0;
  uint8_t *reflect = traced_request(55, 15 * MIB, false, &len);
  r = push_clients(&rc, 32, reflect, len);
  free(reflect);
  printf(
      "  32 reflect clients (15 MiB tracestate, never reading): %d cut off, "
      "responder served %llu, rejected %llu, peak RSS %.1f MiB (%.1f at "
      "start)\n",
      r.cut, (unsigned long long)r.rep.served,
      (unsigned long long)r.rep.rejected, (double)r.rep.hwm_kb / 1024,
      (double)r.rep.start_kb / 1024);
  CHECK_INT(r.rep.served, 0);
  CHECK_INT(r.rep.rejected, 32);
  CHECK(r.rep.hwm_kb > 0 && r.rep.hwm_kb <= bound_kb(TARGET_64_KB));
}

/* The W3C bounds are served: 1,000 clients with a 55-character
 * traceparent and a 512-character tracestate that never read their
 * answers are all answered (the answer fits the socket buffer), and the
 * responder holds nothing for them. */
static void test_reflect_within_w3c_bounds(void) {
  resp_child rc;
  start_responder(&rc);
  size_t len = 0;
  uint8_t *req = traced_request(55, 512, true, &len);
  push_result r = push_clients(&rc, 1000, req, len);
  free(req);
  printf(
      "  1000 reflect clients at the W3C bounds (%zu-byte requests): "
      "responder served %llu, peak RSS %.1f MiB (%.1f at start)\n",
      len, (unsigned long long)r.rep.served, (double)r.rep.hwm_kb / 1024,
      (double)r.rep.start_kb / 1024);
  CHECK_INT(r.cut, 0);
  CHECK_INT(r.rep.served, 1000);
  CHECK(r.rep.hwm_kb > 0 && r.rep.hwm_kb <= bound_kb(TARGET_64_KB));
}

/* The request limit, exactly: a real request, the widest one a W3C
 * prober can send, and 1 KiB of body are answered; 1 KiB + 1 is dropped at
 * its header, before the body came. */
static void test_request_limit_exact(void) {
  bh_err err;
  bh_responder *r = bh_respond_start(base, &ep, &me, NULL, &err);
  CHECK(r != NULL);
  if (r == NULL) return;
  size_t plain_len = 0, w3c_len = 0;
  uint8_t *plain = traced_request(0, 0, false, &plain_len);
  uint8_t *w3c = traced_request(55, 512, true, &w3c_len);
  size_t base_body = plain_len - BH_FRAME_HEADER_LEN;
  /* tracestate that makes the body exactly 1024: 1 + 2 + ts bytes */
  size_t ts = BH_RESPOND_DEFAULT_MAX_REQUEST - base_body - 3;
  size_t at_len = 0, over_len = 0;
  uint8_t *at = traced_request(0, ts, false, &at_len);
  uint8_t *over = traced_request(0, ts + 1, false, &over_len);
  printf(
      "  a request body is %zu bytes (nonce 7); the widest a W3C prober "
      "sends is %zu\n",
      base_body, w3c_len - BH_FRAME_HEADER_LEN);
  CHECK(w3c_len - BH_FRAME_HEADER_LEN <= BH_RESPOND_DEFAULT_MAX_REQUEST);
  CHECK_INT(at_len - BH_FRAME_HEADER_LEN, BH_RESPOND_DEFAULT_MAX_REQUEST);
  const struct {
    const uint8_t *req;
    size_t len;
    bool served;
  } cases[] = {{plain, plain_len, true},
               {w3c, w3c_len, true},
               {at, at_len, true},
               {over, BH_FRAME_HEADER_LEN, false}}; /* header alone */
  for (size_t i = 0; i < 4; i++) {
    uint64_t served = bh_respond_served(r), rej = bh_respond_rejected(r);
    int fd = connect_raw(ep.path);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, cases[i].req, cases[i].len), cases[i].len);
    uint8_t buf[4096];
    ssize_t n = 0;
    for (int k = 0; k < 200 && bh_respond_served(r) == served &&
                    bh_respond_rejected(r) == rej;
         k++)
      loop_for(base, 0.01);
    n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    CHECK_INT(bh_respond_served(r), served + cases[i].served);
    CHECK_INT(bh_respond_rejected(r), rej + !cases[i].served);
    CHECK(cases[i].served ? n > 0 : n <= 0);
    close(fd);
  }
  free(plain);
  free(w3c);
  free(at);
  free(over);
  bh_respond_free(r);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  make_endpoint(&ep, "m.sock");
  make_identity(&ep, &me);
  base = bh_loop_new();
  /* The children fork from a small heap: the measuring tests first. */
  RUN(test_prober_withheld_answers);
  RUN(test_responder_big_requests);
  RUN(test_reflect_within_w3c_bounds);
  RUN(test_request_limit_exact);
  bh_identity_clear(&me);
  bh_endpoint_clear(&ep);
  bh_loop_free(base);
  return bh_test_summary();
}
