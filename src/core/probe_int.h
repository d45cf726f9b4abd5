/* What the two files of the prober share (internal to the core; probe.h
 * is the prober's interface): the state of a probe and of a loop's
 * prober, and the steps one file calls in the other. probe.c: a probe's
 * life, its checks (verify_pid, the listener check) and the answer's
 * validation; probe_io.c: the exchange with the endpoint, on the epoll
 * path or on the ring (design §4.3). */
#ifndef BH_PROBE_INT_H
#define BH_PROBE_INT_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "digest.h"
#include "expect.h"
#include "hasher.h"
#include "probe.h"
#include "uring.h"
#include "usock.h"
#include "wire.h"

enum {
  CONNECT_RETRY_USEC = 10000,
  /* The receive buffer of a probe on the ring: a typical answer (a few
   * hundred bytes) comes in one receive; a longer one takes more. */
  URING_RECV_BUF = 512,
  /* Distinct probe timeouts whose common timeout a prober remembers. */
  DEADLINES = 4,
};

/* What a loop keeps for its probes (probe.h). */
struct bh_prober {
  struct event_base *base;
  bh_uring *ring;    /* NULL: the epoll path */
  bh_hasher *hasher; /* made on the first hash a probe needs */
  bool no_hasher;    /* it could not be made: hash inline */
  struct {
    double timeout;
    const struct timeval *tv;
  } deadlines[DEADLINES];
  unsigned ndeadlines;
};

struct bh_probe {
  struct event_base *base;
  bh_prober *pr; /* NULL for a loop not made by loop.h */
  bh_usock *us;  /* the socket on the ring (io_uring path), or NULL */
  bh_probe_cb cb;
  void *ctx;
  bh_probe_opts opts;
  bh_endpoint ep;
  bh_expected *exp;     /* the expected identity, NULL when none */
  bh_identity expected; /* exp's identity, borrowed (never cleared) */
  bool has_expected;    /* response-only probes may skip the comparison */
  double t0;          /* when the probe started: the deadline counts from it */
  double t_verify;    /* when verify_pid started (0: not run) */
  double t_exchange;  /* when the exchange started (0: not yet) */
  double t_connected; /* when connect completed (0: not yet) */
  bh_hash_job *job;   /* verify_pid's hashing, while it runs */
  struct stat exe_st; /* the executable verify_pid found the digests of */
  bool exe_checked;   /* ... and they were the recorded ones */
  int peer_pidfd;     /* SO_PEERPIDFD of the peer, or -1 */
  int via_fd;         /* O_PATH descriptor of the socket checked for the
                         owner (connect goes through it), or -1 */
  /* The listener check (probe.h): the recorded process is gone for the
   * reason in gone; is its endpoint held, and by its successor? */
  bool listener;
  int connect_errno;    /* why the endpoint could not be connected to */
  bool exe_deleted;     /* the recorded file was deleted on disk */
  bh_err gone;          /* why the recorded process is gone */
  bh_identity answered; /* what the listener answered (successor check) */
  bh_proc succ;         /* the answered identity's process, held */
  /* What the digests got by hash_exe are for. */
  void (*hashed)(struct bh_probe *p, const bh_digests *d);
  int fd;
  struct event start_ev; /* first step; later the connect-retry timer */
  struct event deadline_ev;
  struct event io_ev;
  bool io_assigned;
  uint8_t nonce[BH_NONCE_LEN];
  uint64_t request_id;
  uint8_t req[BH_PROBE_REQUEST_MAX];
  size_t req_len, req_off;
  size_t bytes_read;
  bh_frame_reader reader;
  bh_probe_result result;
};

/* probe.c */

/* The outcome is known (result.err says which): close the socket at
 * once, call back exactly once, free. */
void bh_probe_finish(bh_probe *p);
/* A whole frame arrived (body, valid during the call): validate it as
 * the answer to our request; finishes the probe. */
void bh_probe_validate(bh_probe *p, const uint8_t *body, size_t len);

/* probe_io.c */

/* Close the probe's socket: the one place that does. */
void bh_probe_close_socket(bh_probe *p);
/* Fail with "OP PATH: strerror(errnum)". */
void bh_probe_fail(bh_probe *p, bh_status code, const char *op, int errnum);
/* The active exchange: the owner check, the request, the socket, connect,
 * send, receive; ends in bh_probe_validate or bh_probe_finish. */
void bh_probe_exchange(bh_probe *p);

#endif
