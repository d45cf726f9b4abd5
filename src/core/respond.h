/* The responder (the daemon side of the probe, design §1.4, §4): a Unix
 * listener on a libevent loop that answers probe requests with an identity.
 * Survives hostile clients: a per-connection deadline proportionate to a
 * probe, a cap on open connections kept by evicting the oldest one without
 * a request (never by refusing newcomers), and a bad request drops only
 * its own connection. Knows nothing of Lua. */
#ifndef BH_RESPOND_H
#define BH_RESPOND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hostile.h"
#include "identity.h"
#include "status.h"
#include "wire.h"

struct event_base;
typedef struct bh_responder bh_responder;
/* A connection whose answer was deferred by the hook (BH_REPLY_DEFER). */
typedef struct bh_deferred bh_deferred;

/* What to do with one valid request; the hook fills it. */
typedef enum bh_reply_kind {
  BH_REPLY_NORMAL = 0, /* answer with the responder's identity */
  BH_REPLY_IDENTITY,   /* answer with reply->identity (copied) */
  BH_REPLY_DROP,       /* close without answering (counted as rejected) */
  BH_REPLY_RAW,        /* write reply->raw verbatim, then close */
  BH_REPLY_HOSTILE,    /* write the hostile answer reply->hostile */
  BH_REPLY_DEFER,      /* decide later: bh_respond_answer (see below) */
} bh_reply_kind;

typedef struct bh_reply {
  bh_reply_kind kind;
  const bh_identity *identity; /* BH_REPLY_IDENTITY; borrowed. Also the
                                  identity of BH_REPLY_HOSTILE (NULL: the
                                  responder's) */
  const uint8_t *raw;          /* BH_REPLY_RAW; borrowed, copied */
  size_t raw_len;
  bh_hostile hostile; /* BH_REPLY_HOSTILE */
  double delay;       /* seconds to wait before acting (0 = at once); the
                         connection deadline still applies */
  double trickle;     /* seconds between the bytes of the answer (0 = all
                         at once) */
  /* BH_REPLY_DEFER: set by the responder before the hook runs, the handle
   * to answer through; defer_ctx is set by the hook and given back to
   * on_abandon. */
  bh_deferred *deferred;
  void *defer_ctx;
} bh_reply;

/* Called once per valid request, from the loop. reply starts as
 * {BH_REPLY_NORMAL} with reply->deferred set. A hook that cannot decide
 * now sets BH_REPLY_DEFER (and defer_ctx): the connection then waits,
 * its deadline still running and its client watched for EOF, until
 * bh_respond_answer(reply->deferred, ...) gives the real reply, or until
 * the connection ends first (deadline, client gone, responder closed):
 * then on_abandon(r, defer_ctx, hook_ctx) is called once and the handle
 * is dead. */
typedef void (*bh_request_hook)(bh_responder *r, const bh_request *req,
                                bh_reply *reply, void *ctx);
typedef void (*bh_abandon_cb)(bh_responder *r, void *defer_ctx, void *ctx);
/* Called once when the responder stops serving (count reached, closed,
 * or freed while open). */
typedef void (*bh_respond_closed_cb)(bh_responder *r, void *ctx);

/* The largest request body the responder reads by default. A real probe
 * request body is at most 51 bytes (56 framed); with W3C trace context at
 * its bounds (traceparent 55 characters, tracestate 512) and request_id
 * and deadline at their widest it is 634. 1 KiB leaves room and bounds
 * what a client can make the responder hold, and echo back, far below the
 * 16 MiB protocol cap. */
#define BH_RESPOND_DEFAULT_MAX_REQUEST 1024u

/* The default per-connection deadline, seconds: twice a probe's default
 * timeout. A real prober sends its request as soon as it is connected and
 * gives up after its own timeout, so a connection open longer than that
 * serves nobody. */
#define BH_RESPOND_DEFAULT_CONN_TIMEOUT 1.0

typedef struct bh_respond_opts {
  unsigned mode;        /* socket file mode; 0 → 0600 */
  double conn_timeout;  /* per-connection deadline, s; <= 0 → 1 */
  unsigned max_conns;   /* open connections cap; 0 → 1024. At the cap a
                           new connection evicts the oldest one that has
                           not sent a whole request (counted in rejected
                           and in evicted) */
  uint32_t max_request; /* request body bytes; a larger header drops the
                           connection at once. 0 → the default; above the
                           16 MiB protocol cap → the cap */
  uint64_t count;       /* close after answering this many; 0 = never */
  bh_request_hook hook; /* may be NULL */
  void *hook_ctx;
  bh_abandon_cb on_abandon;       /* for hooks that defer; may be NULL */
  bh_respond_closed_cb on_closed; /* may be NULL */
  void *closed_ctx;
} bh_respond_opts;

bh_respond_opts bh_respond_opts_default(void);

/* Bind and listen at ep->path and start serving id (copied). A stale
 * socket file (nothing accepts on it) is replaced; a live listener gives
 * BH_IN_USE; a path that exists and is not a socket is never removed
 * (BH_IN_USE, message says what is there); bad path → BH_INVALID_ENDPOINT;
 * other failures → BH_SYSTEM. Returns NULL on failure. */
bh_responder *bh_respond_start(struct event_base *base, const bh_endpoint *ep,
                               const bh_identity *id,
                               const bh_respond_opts *opts, bh_err *err);

/* Stop accepting, drop in-flight connections, unlink the socket file if it
 * is still ours (same dev/inode). Fires on_closed once. Idempotent. Safe
 * to call from inside the hook or on_closed. */
void bh_respond_close(bh_responder *r);
/* Close (if open) and free. Must not be called from inside the hook. */
void bh_respond_free(bh_responder *r);

/* Act on a deferred connection with reply (any kind but BH_REPLY_DEFER;
 * borrowed pointers are copied now). d is dead afterwards. Must not be
 * called once on_abandon was called for d. */
void bh_respond_answer(bh_deferred *d, const bh_reply *reply);

bool bh_respond_is_closed(const bh_responder *r);
uint64_t bh_respond_served(const bh_responder *r);   /* answered */
uint64_t bh_respond_rejected(const bh_responder *r); /* dropped/bad */
/* Of the rejected: connections closed to make room for a new one. */
uint64_t bh_respond_evicted(const bh_responder *r);
unsigned bh_respond_open_conns(const bh_responder *r);

#endif
