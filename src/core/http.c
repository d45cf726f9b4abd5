/* The service's HTTP endpoint (http.h) on evhttp.
 *
 * evhttp (libevent 2.1) neither caps its connections nor bounds the time
 * a request may take to arrive, and it logs every failed accept. So the
 * listener is ours (an evconnlistener with an error callback: a failed
 * accept pauses accepting with a growing back-off and is logged
 * rate-limited, instead of spinning and logging on every wake-up), and
 * every connection is tracked from the moment evhttp makes it: evhttp
 * asks us for its bufferevent (evhttp_set_bevcb), so we see it born, and
 * once evhttp has set it up (the bufferevent's callback argument is then
 * its connection) we hold a close callback that says when it ends. With
 * that: at most max_conns connections (a newcomer evicts the oldest one
 * that is not in the middle of answering), a whole request within
 * request_timeout of the connection's start or of its previous answer,
 * and a /probe whose client has gone (its socket reads EOF while the
 * probe runs) gives its slot back at once. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "list.h"
#include "log.h"
#include "manifest.h"

#define CT_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define CT_OPENMETRICS \
  "application/openmetrics-text; version=1.0.0; charset=utf-8"
#define CT_PLAIN "text/plain; charset=utf-8"
#define CT_JSON "application/json"
#define CT_HTML "text/html; charset=utf-8"

enum { MAX_HEADERS = 8192, IDLE_TIMEOUT_S = 30 };

enum { ACCEPT_PAUSE_FIRST_MS = 10, ACCEPT_PAUSE_MAX_MS = 1000 };

typedef struct conn conn;

/* A /probe request waiting for its answer. */
typedef struct pending {
  uint64_t id;
  struct evhttp_request *req;
  conn *conn; /* its connection; NULL once that is gone */
  bool openmetrics;
  struct pending *next;
} pending;

/* A connection evhttp made, tracked until its close callback. */
struct conn {
  bh_http *h;
  bh_list link;                    /* in h->conns, oldest first */
  struct bufferevent *bev;         /* ours until resolved (a reference) */
  struct evhttp_connection *evcon; /* NULL until resolved */
  struct event *deadline;          /* the whole request must come by then */
  struct event *gone;              /* EOF while its /probe runs */
  pending *probe;                  /* the /probe it waits for, if any */
  bool busy;                       /* a request of it is being answered */
};

struct bh_http {
  struct event_base *base;
  struct evhttp *http;
  struct evconnlistener *lev;
  bh_http_callbacks cb;
  bh_http_opts opts;
  unsigned npending, nconns;
  uint64_t next_id;
  pending *pending;
  bh_list conns;            /* conn.link, oldest first */
  struct event *resolve_ev; /* resolves the newest connection */
  struct event *pause_ev;   /* accepting again after a failed accept */
  unsigned pause_ms;        /* the next pause; 0 after a good accept */
  bool freeing;
  bh_http_stats stats;
  bh_log_limit accept_log;
  bh_http *next_server; /* the list of live endpoints (server_of) */
};

/* ---- the listening socket ---------------------------------------------- */

/* Split spec into host and port (host NULL when absent). buf holds the
 * copy that host and port point into. */
static bool split_spec(const char *spec, char *buf, size_t cap,
                       const char **host, const char **port) {
  if (strlen(spec) >= cap) return false;
  strcpy(buf, spec);
  char *colon = strrchr(buf, ':');
  *host = NULL;
  *port = buf;
  if (colon == NULL) return *buf != '\0';
  *colon = '\0';
  *port = colon + 1;
  if (buf[0] == '[') { /* [v6]:port */
    size_t n = strlen(buf);
    if (n < 2 || buf[n - 1] != ']') return false;
    buf[n - 1] = '\0';
    *host = buf + 1;
  } else if (buf[0] != '\0') {
    *host = buf;
  }
  return **port != '\0';
}

/* The bound address of fd as "HOST:PORT" ("[v6]:PORT"). */
static void bound_name(int fd, char *out, size_t cap) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      (void)inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
      port = ntohs(a->sin6_port);
      (void)snprintf(out, cap, "[%s]:%u", ip, port);
      return;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    (void)inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
  }
  (void)snprintf(out, cap, "%s:%u", ip, port);
}

static int bind_one(const struct addrinfo *ai) {
  int one = 1;
  int fd =
      socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    (void)close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* host as a literal address for getaddrinfo, into fam: a dotted quad of
 * four decimal parts (inet_pton, not inet_aton: "0", "127.1" or "0x7f.1"
 * would name 0.0.0.0 or some other address than the one written), an
 * IPv6 address (given in brackets), or "localhost" (127.0.0.1). NULL for
 * anything else. */
static const char *literal_host(const char *host, bool bracketed, int *fam) {
  unsigned char addr[sizeof(struct in6_addr)];
  if (bracketed) {
    *fam = AF_INET6;
    return inet_pton(AF_INET6, host, addr) == 1 ? host : NULL;
  }
  *fam = AF_INET;
  if (strcmp(host, "localhost") == 0) return "127.0.0.1";
  return inet_pton(AF_INET, host, addr) == 1 ? host : NULL;
}

bh_status bh_http_listen(const char *spec, int *fd_out, char *bound, size_t cap,
                         bh_err *err) {
  char buf[300];
  const char *host, *port;
  *fd_out = -1;
  if (!split_spec(spec, buf, sizeof buf, &host, &port) ||
      strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
      strtoul(port, NULL, 10) > 65535)
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "listen address '%s': expected HOST:PORT or PORT", spec);
  int fam = AF_INET;
  if (host == NULL) {
    host = "127.0.0.1";
  } else if ((host = literal_host(host, buf[0] == '[', &fam)) == NULL) {
    return bh_err_set(err, BH_SYSTEM, NULL,
                      "listen address '%s': the host must be a whole IPv4 "
                      "address (a.b.c.d), an IPv6 address in brackets or "
                      "localhost",
                      spec);
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = fam;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "listen address '%s': %s", spec,
                      gai_strerror(rc));
  int fd = bind_one(res);
  int e = errno;
  freeaddrinfo(res);
  if (fd < 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "listen on %s: %s", spec,
                      strerror(e));
  bound_name(fd, bound, cap);
  *fd_out = fd;
  return BH_OK;
}

/* ---- checks of hostile input ------------------------------------------- */

/* A cache root's manifest, or one of the central registry. */
static bool manifest_name(const char *base) {
  return strcmp(base, BH_MANIFEST_NAME) == 0 || bh_manifest_registry_name(base);
}

bool bh_http_probe_path_ok(const char *path, const char **why) {
  size_t len = strlen(path);
  if (len == 0 || path[0] != '/') return *why = "not an absolute path", false;
  if (len > BH_HTTP_PATH_MAX) return *why = "path too long", false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
      return *why = "control character in path", false;
  const char *c = path + 1, *base = path;
  while (true) { /* every component: non-empty, not "." or ".." */
    size_t n = strcspn(c, "/");
    if (n == 0 || (n == 1 && c[0] == '.') ||
        (n == 2 && c[0] == '.' && c[1] == '.'))
      return *why = "empty, '.' or '..' component", false;
    if (c[n] == '\0') {
      base = c;
      break;
    }
    c += n + 1;
  }
  if (!manifest_name(base))
    return *why = "not a manifest name (" BH_MANIFEST_NAME
                  " or SERVICE-VERSION.pb)",
           false;
  return true;
}

/* Does the request's Accept ask for OpenMetrics? */
static bool wants_openmetrics(struct evhttp_request *req) {
  const char *accept =
      evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
  return accept != NULL && strstr(accept, "application/openmetrics-text");
}

/* ---- connections -------------------------------------------------------- */

static void conn_close(conn *c);

/* Stop tracking c (its connection is gone or going): its events, its
 * place in the list and the count. Touches nothing of evhttp's. */
static void conn_forget(conn *c) {
  bh_http *h = c->h;
  if (c->deadline != NULL) event_free(c->deadline);
  if (c->gone != NULL) event_free(c->gone);
  bh_list_remove(&c->link);
  h->nconns--;
  free(c);
}

/* p's client is gone (or its connection was closed): the slot is given
 * back now and the caller told to stop the probe; the request itself is
 * freed with its connection, never answered. */
static void pending_abandon(bh_http *h, pending *p) {
  pending **pp = &h->pending;
  while (*pp != NULL && *pp != p)
    pp = &(*pp)->next;
  if (*pp == NULL) return;
  *pp = p->next;
  h->npending--;
  h->stats.abandoned++;
  if (h->cb.abandon != NULL && !h->freeing) h->cb.abandon(h->cb.ctx, p->id);
  free(p);
}

/* evhttp's close callback: the connection ends, whichever way (our
 * close, the client's EOF, an error, evhttp's own timeout, its free). */
static void on_conn_closed(struct evhttp_connection *evcon, void *arg) {
  conn *c = arg;
  (void)evcon;
  if (c->probe != NULL) pending_abandon(c->h, c->probe);
  conn_forget(c);
}

/* (Re)start the time c has to deliver a whole request. */
static void conn_arm_deadline(conn *c) {
  struct timeval tv = bh_timeval(c->h->opts.request_timeout);
  if (c->deadline != NULL) (void)event_add(c->deadline, &tv);
}

/* The deadline passed without a whole request: close. */
static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  (void)fd;
  (void)what;
  c->h->stats.timed_out++;
  conn_close(c);
}

/* Close c now; its close callback forgets it. */
static void conn_close(conn *c) {
  if (c->evcon != NULL) evhttp_connection_free(c->evcon);
}

/* evhttp has set up the connections made since the last look: each
 * bufferevent's callback argument is its connection now, unless evhttp
 * gave up on it (then its callbacks were cleared and it was freed, our
 * reference keeping the memory). Hold their close callbacks, start their
 * deadlines, drop our references. The unresolved ones are the newest. */
static void resolve(bh_http *h) {
  bh_list *n = h->conns.prev;
  while (n != &h->conns) {
    conn *c = bh_list_entry(n, conn, link);
    if (c->evcon != NULL) break;
    n = n->prev; /* before c may be forgotten */
    struct bufferevent *bev = c->bev;
    void *evcon = NULL;
    bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
    c->bev = NULL;
    if (evcon == NULL) {
      conn_forget(c);
    } else {
      c->evcon = evcon;
      evhttp_connection_set_closecb(c->evcon, on_conn_closed, c);
      conn_arm_deadline(c);
    }
    bufferevent_decref(bev);
  }
}

static void on_resolve(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  resolve(arg);
}

/* At the cap: close the oldest connection that is not being answered
 * (idle, or still sending its request), else the oldest whose answer is
 * being written, else the oldest of all (its /probe is stopped). */
static void evict_one(bh_http *h) {
  conn *idle = NULL, *writing = NULL, *any = NULL;
  for (bh_list *n = h->conns.next; n != &h->conns && idle == NULL;
       n = n->next) {
    conn *c = bh_list_entry(n, conn, link);
    if (c->evcon == NULL) continue;
    if (any == NULL) any = c;
    if (!c->busy)
      idle = c;
    else if (writing == NULL && c->probe == NULL)
      writing = c;
  }
  conn *victim = idle != NULL ? idle : writing != NULL ? writing : any;
  if (victim == NULL) return;
  h->stats.evicted++;
  conn_close(victim);
}

/* evhttp makes a connection (evhttp_set_bevcb): count it, make room at
 * the cap, and give evhttp a bufferevent we hold a reference to until
 * we know its connection (resolve, right after evhttp's set-up). */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg) {
  bh_http *h = arg;
  resolve(h); /* the previous newcomer is set up by now */
  h->pause_ms = 0;
  while (h->nconns >= h->opts.max_conns) {
    unsigned before = h->nconns;
    evict_one(h);
    if (h->nconns == before) break;
  }
  conn *c = calloc(1, sizeof *c);
  struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
  if (c == NULL || bev == NULL ||
      (c->deadline = evtimer_new(base, on_deadline, c)) == NULL) {
    if (bev != NULL) bufferevent_free(bev);
    free(c);
    return NULL; /* evhttp tries its own; it goes untracked */
  }
  bufferevent_incref(bev);
  c->h = h;
  c->bev = bev;
  bh_list_insert_tail(&h->conns, &c->link);
  h->nconns++;
  event_active(h->resolve_ev, EV_TIMEOUT, 1);
  return bev;
}

static conn *conn_of(bh_http *h, struct evhttp_request *req) {
  struct evhttp_connection *evcon = evhttp_request_get_connection(req);
  for (bh_list *n = h->conns.next; n != &h->conns; n = n->next) {
    conn *c = bh_list_entry(n, conn, link);
    if (c->evcon == evcon && evcon != NULL) return c;
  }
  return NULL;
}

/* The answer to a request of c went out: c waits for its next request
 * (keep-alive) under a new deadline. */
static void on_answered(struct evhttp_request *req, void *arg) {
  conn *c = arg;
  (void)req;
  c->busy = false;
  conn_arm_deadline(c);
}

/* A whole request of c came: no deadline while it is answered. */
static void conn_request(conn *c, struct evhttp_request *req) {
  c->busy = true;
  (void)event_del(c->deadline);
  evhttp_request_set_on_complete_cb(req, on_answered, c);
}

/* c's socket turned readable while its /probe runs (evhttp reads nothing
 * then): EOF or an error means the client is gone; bytes (a pipelined
 * request) mean it is not, and we stop watching. */
static void on_gone(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  char b;
  (void)what;
  ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    (void)event_add(c->gone, NULL);
    return;
  }
  conn_close(c); /* the close callback abandons its /probe */
}

/* Watch c's socket while its /probe p runs. */
static void conn_watch_probe(conn *c, pending *p) {
  struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
  evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;
  c->probe = p;
  p->conn = c;
  if (fd < 0) return;
  if (c->gone == NULL) c->gone = event_new(c->h->base, fd, EV_READ, on_gone, c);
  if (c->gone != NULL) (void)event_add(c->gone, NULL);
}

/* p is answered: stop watching its connection. */
static void conn_unwatch_probe(pending *p) {
  conn *c = p->conn;
  if (c == NULL) return;
  c->probe = NULL;
  p->conn = NULL;
  if (c->gone != NULL) (void)event_del(c->gone);
}

/* ---- accepting ---------------------------------------------------------- */

/* The listener's error callback gets the listener's user data, which
 * evhttp_bind_listener made evhttp's: the endpoint is found by its
 * listener among the live ones. */
static pthread_mutex_t servers_lock = PTHREAD_MUTEX_INITIALIZER;
static bh_http *servers;

static void servers_add(bh_http *h) {
  (void)pthread_mutex_lock(&servers_lock);
  h->next_server = servers;
  servers = h;
  (void)pthread_mutex_unlock(&servers_lock);
}

static void servers_remove(bh_http *h) {
  (void)pthread_mutex_lock(&servers_lock);
  bh_http **pp = &servers;
  while (*pp != NULL && *pp != h)
    pp = &(*pp)->next_server;
  if (*pp != NULL) *pp = h->next_server;
  (void)pthread_mutex_unlock(&servers_lock);
}

static bh_http *server_of(struct evconnlistener *lev) {
  (void)pthread_mutex_lock(&servers_lock);
  bh_http *h = servers;
  while (h != NULL && h->lev != lev)
    h = h->next_server;
  (void)pthread_mutex_unlock(&servers_lock);
  return h;
}

static void on_pause_over(evutil_socket_t fd, short what, void *arg) {
  bh_http *h = arg;
  (void)fd;
  (void)what;
  (void)evconnlistener_enable(h->lev);
}

/* accept failed with something else than "try again" (EMFILE: out of
 * descriptors, ENOBUFS...): the listener stays readable, so accepting
 * again at once would spin. Pause accepting, 10 ms the first time,
 * doubling up to 1 s while failures go on; say so, rate-limited. */
static void on_accept_error(struct evconnlistener *lev, void *arg) {
  bh_http *h = server_of(lev);
  int e = EVUTIL_SOCKET_ERROR();
  (void)arg; /* evhttp's */
  if (h == NULL) return;
  h->pause_ms = h->pause_ms == 0                         ? ACCEPT_PAUSE_FIRST_MS
                : h->pause_ms >= ACCEPT_PAUSE_MAX_MS / 2 ? ACCEPT_PAUSE_MAX_MS
                                                         : h->pause_ms * 2;
  h->stats.accept_errors++;
  (void)bh_log_limited(&h->accept_log, BH_LOG_WARNING,
                       "HTTP endpoint: accept: %s (%u open connections); "
                       "not accepting for %u ms",
                       strerror(e), h->nconns, h->pause_ms);
  (void)evconnlistener_disable(lev);
  struct timeval tv = bh_timeval(h->pause_ms / 1000.0);
  (void)event_add(h->pause_ev, &tv);
}

/* ---- answers ------------------------------------------------------------ */

static void send_text(struct evhttp_request *req, int code, const char *reason,
                      const char *ctype, const char *body, size_t len) {
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  struct evbuffer *buf = evbuffer_new();
  (void)evhttp_add_header(out, "Content-Type", ctype);
  if (code == 503) (void)evhttp_add_header(out, "Retry-After", "1");
  if (buf != NULL && evbuffer_add(buf, body, len) == 0) {
    evhttp_send_reply(req, code, reason, buf);
  } else {
    evhttp_send_error(req, 500, "Internal Server Error");
  }
  if (buf != NULL) evbuffer_free(buf);
}

static const char *reason_of(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

static void send_plain(struct evhttp_request *req, int code, const char *msg) {
  send_text(req, code, reason_of(code), CT_PLAIN, msg, strlen(msg));
}

static void serve_metrics(bh_http *h, struct evhttp_request *req) {
  bool om = wants_openmetrics(req);
  size_t len = 0;
  char *body = h->cb.metrics ? h->cb.metrics(h->cb.ctx, om, &len) : NULL;
  if (body == NULL) {
    send_plain(req, 500, "metrics unavailable\n");
    return;
  }
  send_text(req, 200, "OK", om ? CT_OPENMETRICS : CT_TEXT, body, len);
  free(body);
}

/* /sd and /: rendered at once by the page callback. */
static void serve_page(bh_http *h, struct evhttp_request *req,
                       bh_http_page page) {
  if (h->cb.page == NULL) {
    send_plain(req, 404, "not found (try /metrics)\n");
    return;
  }
  size_t len = 0;
  char *body = h->cb.page(h->cb.ctx, page, &len);
  if (body == NULL) {
    send_plain(req, 500, "page unavailable\n");
    return;
  }
  send_text(req, 200, "OK", page == BH_HTTP_PAGE_SD ? CT_JSON : CT_HTML, body,
            len);
  free(body);
}

/* ---- /probe ------------------------------------------------------------- */

/* The one manifest=PATH of the query, decoded, in *out (caller frees
 * with evhttp_clear_headers(params)), and *debug from an optional
 * debug=true|false; NULL with *why on bad input. An encoded NUL is
 * refused before decoding (evhttp would cut the value). */
static const char *probe_param(struct evhttp_request *req,
                               struct evkeyvalq *params, bool *debug,
                               const char **why) {
  const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
  if (q == NULL || evhttp_parse_query_str(q, params) != 0)
    return *why = "expected ?manifest=PATH", NULL;
  if (strstr(q, "%00") != NULL) return *why = "NUL in query", NULL;
  const char *path = NULL, *dbg = NULL;
  for (struct evkeyval *kv = params->tqh_first; kv; kv = kv->next.tqe_next) {
    const char **dest = strcmp(kv->key, "manifest") == 0 ? &path
                        : strcmp(kv->key, "debug") == 0  ? &dbg
                                                         : NULL;
    if (dest == NULL) return *why = "unknown query parameter", NULL;
    if (*dest != NULL) return *why = "a query parameter given twice", NULL;
    *dest = kv->value;
  }
  if (path == NULL) return *why = "expected ?manifest=PATH", NULL;
  if (dbg != NULL && strcmp(dbg, "true") != 0 && strcmp(dbg, "false") != 0)
    return *why = "debug must be true or false", NULL;
  *debug = dbg != NULL && strcmp(dbg, "true") == 0;
  return bh_http_probe_path_ok(path, why) ? path : NULL;
}

static void serve_probe(bh_http *h, struct evhttp_request *req, conn *c) {
  struct evkeyvalq params;
  const char *why = NULL;
  char msg[160];
  bool debug = false;
  TAILQ_INIT(&params);
  const char *path = probe_param(req, &params, &debug, &why);
  pending *p = NULL;
  if (h->cb.probe == NULL) {
    send_plain(req, 404, "no probe handler\n");
  } else if (path == NULL) {
    (void)snprintf(msg, sizeof msg, "bad query: %s\n", why);
    send_plain(req, 400, msg);
  } else if (h->npending >= h->opts.max_probes) {
    send_plain(req, 503, "too many probes in flight\n");
  } else if ((p = calloc(1, sizeof *p)) == NULL) {
    send_plain(req, 500, "out of memory\n");
  } else {
    p->id = ++h->next_id;
    p->req = req;
    p->openmetrics = wants_openmetrics(req);
    p->next = h->pending;
    h->pending = p;
    h->npending++;
    if (c != NULL) conn_watch_probe(c, p);
    if (!h->cb.probe(h->cb.ctx, p->id, path, p->openmetrics, debug))
      bh_http_reply(h, p->id, 500, NULL, "cannot start the probe\n", 23);
  }
  evhttp_clear_headers(&params);
}

static void on_request(struct evhttp_request *req, void *arg) {
  bh_http *h = arg;
  resolve(h);
  conn *c = conn_of(h, req);
  if (c != NULL) conn_request(c, req);
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  if (path == NULL) path = "";
  if (strcmp(path, "/metrics") == 0) {
    serve_metrics(h, req);
  } else if (strcmp(path, "/-/healthy") == 0) {
    send_plain(req, 200, "bhprobe-lua is healthy.\n");
  } else if (strcmp(path, "/probe") == 0) {
    serve_probe(h, req, c);
  } else if (strcmp(path, "/sd") == 0) {
    serve_page(h, req, BH_HTTP_PAGE_SD);
  } else if (strcmp(path, "/") == 0) {
    serve_page(h, req, BH_HTTP_PAGE_INDEX);
  } else {
    send_plain(req, 404, "not found (try /metrics)\n");
  }
}

bh_http_opts bh_http_opts_default(void) {
  return (bh_http_opts){.max_probes = BH_HTTP_DEFAULT_MAX_PROBES,
                        .max_conns = BH_HTTP_DEFAULT_MAX_CONNS,
                        .request_timeout = BH_HTTP_DEFAULT_REQUEST_TIMEOUT};
}

/* Our listener on listen_fd (taken over), serving h->http: accept errors
 * come to us, not to libevent's log. */
static bool listen_on(bh_http *h, int listen_fd) {
  h->lev = evconnlistener_new(h->base, NULL, NULL,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
                              listen_fd);
  if (h->lev == NULL) {
    (void)close(listen_fd);
    return false;
  }
  if (evhttp_bind_listener(h->http, h->lev) == NULL) {
    evconnlistener_free(h->lev); /* closes listen_fd */
    h->lev = NULL;
    return false;
  }
  evconnlistener_set_error_cb(h->lev, on_accept_error);
  servers_add(h);
  return true;
}

bh_http *bh_http_new(struct event_base *base, int listen_fd,
                     const bh_http_callbacks *cb, const bh_http_opts *opts,
                     bh_err *err) {
  bh_http *h = calloc(1, sizeof *h);
  if (h == NULL) {
    (void)close(listen_fd);
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory for the HTTP endpoint");
    return NULL;
  }
  bh_list_init(&h->conns);
  h->base = base;
  h->cb = *cb;
  h->opts = opts != NULL ? *opts : bh_http_opts_default();
  if (h->opts.max_probes == 0) h->opts.max_probes = BH_HTTP_DEFAULT_MAX_PROBES;
  if (h->opts.max_conns < 2) h->opts.max_conns = BH_HTTP_DEFAULT_MAX_CONNS;
  if (!(h->opts.request_timeout > 0))
    h->opts.request_timeout = BH_HTTP_DEFAULT_REQUEST_TIMEOUT;
  h->resolve_ev = event_new(base, -1, 0, on_resolve, h);
  h->pause_ev = evtimer_new(base, on_pause_over, h);
  h->http = evhttp_new(base);
  if (h->resolve_ev == NULL || h->pause_ev == NULL || h->http == NULL ||
      !listen_on(h, listen_fd)) {
    if (h->http == NULL || h->resolve_ev == NULL || h->pause_ev == NULL)
      (void)close(listen_fd);
    bh_http_free(h);
    bh_err_set(err, BH_SYSTEM, NULL, "cannot start the HTTP endpoint");
    return NULL;
  }
  evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_max_headers_size(h->http, MAX_HEADERS);
  evhttp_set_max_body_size(h->http, 0);
  evhttp_set_timeout(h->http, IDLE_TIMEOUT_S);
  evhttp_set_bevcb(h->http, on_new_conn, h);
  evhttp_set_gencb(h->http, on_request, h);
  return h;
}

bh_http_stats bh_http_get_stats(const bh_http *h) {
  bh_http_stats st = h->stats;
  st.conns = h->nconns;
  st.pending = h->npending;
  return st;
}

void bh_http_reply(bh_http *h, uint64_t id, int code, const char *ctype,
                   const char *body, size_t len) {
  pending **pp = &h->pending;
  while (*pp != NULL && (*pp)->id != id)
    pp = &(*pp)->next;
  pending *p = *pp;
  if (p == NULL) return;
  *pp = p->next;
  h->npending--;
  conn_unwatch_probe(p);
  if (code != 200)
    ctype = CT_PLAIN;
  else if (ctype == NULL)
    ctype = p->openmetrics ? CT_OPENMETRICS : CT_TEXT;
  send_text(p->req, code, reason_of(code), ctype, body, len);
  free(p);
}

/* Answer the oldest pending /probe with 503 and write the answer out at
 * once (best effort: a few hundred bytes to a socket we just read from),
 * since the loop will not turn again to send it. */
static void refuse_pending(bh_http *h) {
  static const char msg[] = "shutting down\n";
  struct evhttp_connection *evcon =
      evhttp_request_get_connection(h->pending->req);
  struct bufferevent *bev =
      evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
  bh_http_reply(h, h->pending->id, 503, NULL, msg, sizeof msg - 1);
  if (bev != NULL)
    (void)evbuffer_write(bufferevent_get_output(bev), bufferevent_getfd(bev));
}

void bh_http_free(bh_http *h) {
  if (h == NULL) return;
  h->freeing = true;
  servers_remove(h);
  while (h->pending != NULL)
    refuse_pending(h);
  /* Frees our listener (and its socket) and every connection; the close
   * callbacks forget the connections they belong to. */
  if (h->http != NULL) evhttp_free(h->http);
  bh_list *n;
  while ((n = bh_list_first(&h->conns)) != NULL) {
    /* made, never set up: ours to let go */
    conn *c = bh_list_entry(n, conn, link);
    struct bufferevent *bev = c->bev;
    conn_forget(c);
    if (bev != NULL) bufferevent_decref(bev);
  }
  if (h->resolve_ev != NULL) event_free(h->resolve_ev);
  if (h->pause_ev != NULL) event_free(h->pause_ev);
  free(h);
}
