/* The service's HTTP endpoint (http.h) on evhttp. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "manifest.h"

#define CT_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define CT_OPENMETRICS \
  "application/openmetrics-text; version=1.0.0; charset=utf-8"
#define CT_PLAIN "text/plain; charset=utf-8"

enum { MAX_HEADERS = 8192, IDLE_TIMEOUT_S = 30 };

/* A /probe request waiting for its answer. */
typedef struct pending {
  uint64_t id;
  struct evhttp_request *req;
  bool openmetrics;
  struct pending *next;
} pending;

struct bh_http {
  struct evhttp *http;
  bh_http_callbacks cb;
  unsigned max_probes, npending;
  uint64_t next_id;
  pending *pending;
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

/* ---- /probe ------------------------------------------------------------- */

/* The one manifest=PATH of the query, decoded, in *out (caller frees
 * with evhttp_clear_headers(params)); NULL with *why on bad input. An
 * encoded NUL is refused before decoding (evhttp would cut the value). */
static const char *probe_param(struct evhttp_request *req,
                               struct evkeyvalq *params, const char **why) {
  const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
  if (q == NULL || evhttp_parse_query_str(q, params) != 0)
    return *why = "expected ?manifest=PATH", NULL;
  if (strstr(q, "%00") != NULL) return *why = "NUL in query", NULL;
  const char *path = NULL;
  for (struct evkeyval *kv = params->tqh_first; kv; kv = kv->next.tqe_next) {
    if (strcmp(kv->key, "manifest") != 0)
      return *why = "unknown query parameter", NULL;
    if (path != NULL) return *why = "manifest given twice", NULL;
    path = kv->value;
  }
  if (path == NULL) return *why = "expected ?manifest=PATH", NULL;
  return bh_http_probe_path_ok(path, why) ? path : NULL;
}

static void serve_probe(bh_http *h, struct evhttp_request *req) {
  struct evkeyvalq params;
  const char *why = NULL;
  char msg[160];
  TAILQ_INIT(&params);
  const char *path = probe_param(req, &params, &why);
  pending *p = NULL;
  if (h->cb.probe == NULL) {
    send_plain(req, 404, "no probe handler\n");
  } else if (path == NULL) {
    (void)snprintf(msg, sizeof msg, "bad manifest: %s\n", why);
    send_plain(req, 400, msg);
  } else if (h->npending >= h->max_probes) {
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
    if (!h->cb.probe(h->cb.ctx, p->id, path, p->openmetrics))
      bh_http_reply(h, p->id, 500, "cannot start the probe\n", 23);
  }
  evhttp_clear_headers(&params);
}

static void on_request(struct evhttp_request *req, void *arg) {
  bh_http *h = arg;
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  if (path == NULL) path = "";
  if (strcmp(path, "/metrics") == 0) {
    serve_metrics(h, req);
  } else if (strcmp(path, "/-/healthy") == 0) {
    send_plain(req, 200, "bhprobe-lua is healthy.\n");
  } else if (strcmp(path, "/probe") == 0) {
    serve_probe(h, req);
  } else {
    send_plain(req, 404, "not found (try /metrics)\n");
  }
}

bh_http *bh_http_new(struct event_base *base, int listen_fd,
                     const bh_http_callbacks *cb, unsigned max_probes,
                     bh_err *err) {
  bh_http *h = calloc(1, sizeof *h);
  if (h == NULL || (h->http = evhttp_new(base)) == NULL ||
      evhttp_accept_socket_with_handle(h->http, listen_fd) == NULL) {
    if (h != NULL && h->http != NULL) evhttp_free(h->http);
    free(h);
    (void)close(listen_fd);
    bh_err_set(err, BH_SYSTEM, NULL, "cannot start the HTTP endpoint");
    return NULL;
  }
  h->cb = *cb;
  h->max_probes = max_probes;
  evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_max_headers_size(h->http, MAX_HEADERS);
  evhttp_set_max_body_size(h->http, 0);
  evhttp_set_timeout(h->http, IDLE_TIMEOUT_S);
  evhttp_set_gencb(h->http, on_request, h);
  return h;
}

void bh_http_reply(bh_http *h, uint64_t id, int code, const char *body,
                   size_t len) {
  pending **pp = &h->pending;
  while (*pp != NULL && (*pp)->id != id)
    pp = &(*pp)->next;
  pending *p = *pp;
  if (p == NULL) return;
  *pp = p->next;
  h->npending--;
  const char *ctype = code != 200      ? CT_PLAIN
                      : p->openmetrics ? CT_OPENMETRICS
                                       : CT_TEXT;
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
  bh_http_reply(h, h->pending->id, 503, msg, sizeof msg - 1);
  if (bev != NULL)
    (void)evbuffer_write(bufferevent_get_output(bev), bufferevent_getfd(bev));
}

void bh_http_free(bh_http *h) {
  if (h == NULL) return;
  while (h->pending != NULL)
    refuse_pending(h);
  evhttp_free(h->http);
  free(h);
}
