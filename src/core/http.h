/* The service's HTTP endpoint on the run's libevent loop (libevent's own
 * evhttp): GET /metrics, GET /-/healthy, GET /sd, GET / and,
 * blackbox_exporter's multi-target pattern, GET /probe?manifest=PATH
 * (design §3.2). The core owns the socket, HTTP and the checks of
 * hostile input; what the answers say is the caller's (the Lua binding
 * renders metrics and pages and runs probes):
 * - /metrics: the metrics callback fills the body at once (it must not
 *   block); text exposition 0.0.4, or OpenMetrics 1.0.0 when the request's
 *   Accept asks for application/openmetrics-text.
 * - /sd (Prometheus HTTP service discovery, application/json) and /
 *   (a small HTML page): the page callback fills the body at once.
 * - /probe?manifest=PATH[&debug=true]: PATH is checked here
 *   (bh_http_probe_path_ok), then the probe callback starts the work and
 *   answers later, from the loop, with bh_http_reply(id). At most
 *   max_probes are in flight; more get 503 at once, so a flood of scrapes
 *   cannot queue unbounded work. A /probe whose client goes away (its
 *   socket reads EOF) is abandoned at once: its slot is free again and the
 *   abandon callback stops the work.
 * Requests are GET/HEAD only, headers at most 8 KiB, no body. Whoever
 * reaches the port can open connections: at most max_conns are kept (a
 * newcomer evicts the oldest one not being answered), each must deliver
 * a whole request within request_timeout of its start or of its previous
 * answer (slowloris), an idle read or write ends after 30 s, and a failed
 * accept (out of descriptors) pauses accepting for 10 ms to 1 s, logged
 * rate-limited. */
#ifndef BH_HTTP_H
#define BH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct event_base;
typedef struct bh_http bh_http;

enum {
  BH_HTTP_PATH_MAX = 4095,
  BH_HTTP_DEFAULT_MAX_PROBES = 8,
  BH_HTTP_DEFAULT_MAX_CONNS = 64
};
#define BH_HTTP_DEFAULT_REQUEST_TIMEOUT 10.0 /* seconds */

typedef struct bh_http_opts {
  unsigned max_probes;    /* /probe requests in flight; 0 → 8 */
  unsigned max_conns;     /* open connections; < 2 → 64 */
  double request_timeout; /* seconds for a whole request; <= 0 → 10 */
} bh_http_opts;

bh_http_opts bh_http_opts_default(void);

/* What the endpoint has done to its clients (for tests and logs). */
typedef struct bh_http_stats {
  unsigned conns, pending; /* open now */
  uint64_t evicted;        /* closed at the cap to make room */
  uint64_t timed_out;      /* closed without a whole request in time */
  uint64_t abandoned;      /* /probe requests whose client went away */
  uint64_t accept_errors;  /* accepts that failed (EMFILE...) */
} bh_http_stats;

/* The pages other than /metrics that are rendered at once. */
typedef enum bh_http_page { BH_HTTP_PAGE_SD, BH_HTTP_PAGE_INDEX } bh_http_page;

typedef struct bh_http_callbacks {
  /* The metrics text (malloc'd, freed by the caller) or NULL (500). */
  char *(*metrics)(void *ctx, bool openmetrics, size_t *len);
  /* The body of page (malloc'd, freed by the caller) or NULL (500). NULL
   * callback: those pages are 404. */
  char *(*page)(void *ctx, bh_http_page page, size_t *len);
  /* Start probing the record at path (already checked); answer later
   * with bh_http_reply(h, id, ...). debug: the request asked for the
   * probe's description (debug=true) rather than metrics. Returns false
   * when it cannot start (500). NULL: /probe is 404. */
  bool (*probe)(void *ctx, uint64_t id, const char *path, bool openmetrics,
                bool debug);
  /* The client of the /probe id went away before its answer: stop the
   * work (a later bh_http_reply for id does nothing). May be NULL. */
  void (*abandon)(void *ctx, uint64_t id);
  void *ctx;
} bh_http_callbacks;

/* Parse "HOST:PORT", ":PORT" or "PORT" ("[::1]:PORT" for IPv6; HOST a
 * whole dotted-quad IPv4 address, never one of inet_aton's shorthands
 * such as "0" for 0.0.0.0, or "localhost"; default host 127.0.0.1,
 * loopback: a metrics endpoint is exposed to the network only when the
 * address is written out), create,
 * bind and listen on a non-blocking TCP socket. *fd_out is the socket;
 * bound (cap bytes) gets the address actually bound ("127.0.0.1:9464",
 * the real port when PORT is 0). Errors: system, naming spec. */
bh_status bh_http_listen(const char *spec, int *fd_out, char *bound, size_t cap,
                         bh_err *err);

/* Serve on listen_fd (taken over: closed by bh_http_free) in base, with
 * opts (NULL: the defaults). */
bh_http *bh_http_new(struct event_base *base, int listen_fd,
                     const bh_http_callbacks *cb, const bh_http_opts *opts,
                     bh_err *err);

bh_http_stats bh_http_get_stats(const bh_http *h);

/* Answer the /probe request id: 200 with a metrics body (content type
 * as the request asked, unless ctype names another), or another code
 * with a plain-text body. Does nothing when id is no longer pending (the
 * server closed meanwhile). */
void bh_http_reply(bh_http *h, uint64_t id, int code, const char *ctype,
                   const char *body, size_t len);

/* Answer every pending /probe with 503, stop listening, free. NULL is
 * fine. */
void bh_http_free(bh_http *h);

/* Is path acceptable for /probe? Absolute, at most BH_HTTP_PATH_MAX
 * bytes, no control bytes, no empty, "." or ".." component, and named
 * .running-process-manifest.pb or {service}-{version}.pb. On false, *why
 * says what is wrong. */
bool bh_http_probe_path_ok(const char *path, const char **why);

#endif
