/* The ring of a loop (see uring.h). Four events of the loop drive it:
 * the ring's descriptor (readable when completions wait), added while
 * operations are in flight and removed once none has been for a moment
 * (so that a loop with nothing to do still runs dry, as libevent's own
 * events let it, without an epoll_ctl pair per probe of a task probing in
 * a loop); the flush, made active by the first entry queued in a pass,
 * which waits behind the other callbacks active in that pass (they may
 * queue more: a task resumed by one probe's answer starting the next) so
 * that the pass ends with one submission; the idle timer that removes
 * the descriptor's event; and a retry timer for the rare submission the
 * kernel refuses for want of memory.
 *
 * Why liburing and not raw system calls: it is Debian's (liburing-dev),
 * it owns the ring's memory layout, barriers and feature quirks, and the
 * prep helpers keep every entry's fields right for the kernel's ABI. */
#include "uring.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* Submission entries: a pass that queues more submits on the way (256
 * chains of three entries at once is far beyond a loop pass). Completion
 * entries: enough for thousands of probes in flight to complete in one
 * pass without the kernel's overflow list (which it keeps anyway). */
enum {
  SQ_ENTRIES = 256,
  CQ_ENTRIES = 8192,
  REAP_BATCH = 64,
  /* Completions handled per callback of the ring's event: the loop then
   * looks at timers and other events again before the rest. */
  REAP_BUDGET = 512,
  /* Times the flush lets other active callbacks go first in one pass: a
   * task that yields forever must not hold submissions back. */
  FLUSH_POSTPONE = 8,
};
#define RETRY_USEC 1000
#define IDLE_USEC 50000
#define DRAIN_SECONDS 2.0

struct bh_uring {
  struct io_uring ring;
  struct event_base *base;
  struct event ring_ev;  /* readable: completions wait */
  struct event flush_ev; /* submit what this pass queued */
  struct event idle_ev;  /* remove ring_ev when nothing is in flight */
  struct event retry_ev; /* submit again after the kernel refused */
  bool ring_added, flush_armed, idle_armed, said_submit_error;
  unsigned postponed; /* times the armed flush waited behind others */
  unsigned pending;   /* operations whose last completion has not come */
  bh_list inflight;   /* ... listed, of bh_uring_op.link (uring.h) */
};

/* The operations the ring must have; IORING_OP_SOCKET is not among them:
 * a probe opens its socket itself, so that it has a descriptor to read
 * the peer's credentials from and the process's descriptor limit applies
 * as on the epoll path. */
static const struct {
  int op;
  const char *name;
} needed_ops[] = {
    {IORING_OP_CONNECT, "connect"},
    {IORING_OP_SEND, "send"},
    {IORING_OP_RECV, "recv"},
    {IORING_OP_CLOSE, "close"},
    {IORING_OP_ASYNC_CANCEL, "async_cancel"},
};

/* The features: no completion dropped on overflow, sockets retried by
 * polling rather than by worker threads, entries that post nothing when
 * they succeed (closes, cancels). */
static const struct {
  unsigned bit;
  const char *name;
} needed_features[] = {
    {IORING_FEAT_NODROP, "NODROP"},
    {IORING_FEAT_FAST_POLL, "FAST_POLL"},
    {IORING_FEAT_CQE_SKIP, "CQE_SKIP"},
};

static void ring_update(bh_uring *u);

/* Hand a completion to its operation. */
static void dispatch(bh_uring *u, uint64_t ud, int res, unsigned flags) {
  if (ud == 0) return; /* nobody waits for it */
  bh_uring_op *op = (bh_uring_op *)(uintptr_t)ud;
  if (!(flags & IORING_CQE_F_MORE)) {
    u->pending--;
    bh_list_remove(&op->link);
  }
  op->cb(op, res, flags);
}

/* Handle up to budget completions, a batch at a time (the batch is
 * copied out first: a callback may queue entries, even submit). */
static unsigned reap(bh_uring *u, unsigned budget) {
  unsigned done = 0;
  while (done < budget) {
    struct {
      uint64_t ud;
      int res;
      unsigned flags;
    } batch[REAP_BATCH];
    unsigned n = 0, head;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
      if (n == REAP_BATCH) break;
      batch[n].ud = cqe->user_data;
      batch[n].res = cqe->res;
      batch[n].flags = cqe->flags;
      n++;
    }
    if (n == 0) {
      /* Completions the kernel kept aside (the queue was full) come
       * into the queue when it is asked for events. */
      if (!io_uring_cq_has_overflow(&u->ring) ||
          io_uring_get_events(&u->ring) < 0 || io_uring_cq_ready(&u->ring) == 0)
        break;
      continue;
    }
    io_uring_cq_advance(&u->ring, n);
    for (unsigned i = 0; i < n; i++)
      dispatch(u, batch[i].ud, batch[i].res, batch[i].flags);
    done += n;
  }
  return done;
}

/* Submit what is queued; then handle what completed meanwhile. What
 * that queues arms the flush again, which runs after the callbacks it
 * made active (a task resumed by an answer queues its next probe): one
 * submission for all of it. */
static void submit(bh_uring *u) {
  int rc = -EINTR;
  for (int i = 0; i < 3 && rc == -EINTR; i++)
    rc = io_uring_sq_ready(&u->ring) > 0 ? io_uring_submit(&u->ring) : 0;
  if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN &&
      !u->said_submit_error) {
    bh_log(BH_LOG_WARNING, "io_uring submit: %s (retrying)", strerror(-rc));
    u->said_submit_error = true;
  }
  (void)reap(u, REAP_BUDGET);
  if (rc < 0) {
    /* Out of memory, or completions to take first (taken): try again
     * shortly. */
    struct timeval tv = {0, RETRY_USEC};
    evtimer_add(&u->retry_ev, &tv);
  }
  ring_update(u);
}

/* Submit at the end of the pass: while other callbacks are active, they
 * go first (a few times at most). */
static void on_flush(evutil_socket_t fd, short what, void *arg) {
  bh_uring *u = arg;
  if (u->postponed < FLUSH_POSTPONE &&
      event_base_get_num_events(u->base, EVENT_BASE_COUNT_ACTIVE) > 0) {
    u->postponed++;
    event_active(&u->flush_ev, EV_TIMEOUT, 1);
    return;
  }
  u->postponed = 0;
  u->flush_armed = false;
  submit(u);
}

static void on_ring(evutil_socket_t fd, short what, void *arg) {
  bh_uring *u = arg;
  (void)reap(u, REAP_BUDGET);
  ring_update(u);
}

static void on_idle(evutil_socket_t fd, short what, void *arg) {
  bh_uring *u = arg;
  u->idle_armed = false;
  if (u->pending == 0 && u->ring_added && event_del(&u->ring_ev) == 0)
    u->ring_added = false;
}

/* Watch the ring's descriptor while something is in flight; once nothing
 * is, stop a moment later (IDLE_USEC), if nothing started meanwhile. */
static void ring_update(bh_uring *u) {
  if (u->pending > 0 && !u->ring_added) {
    if (event_add(&u->ring_ev, NULL) == 0) u->ring_added = true;
  } else if (u->pending == 0 && u->ring_added && !u->idle_armed) {
    struct timeval tv = {0, IDLE_USEC};
    u->idle_armed = evtimer_add(&u->idle_ev, &tv) == 0;
  }
}

/* Why the kernel's ring will not do: NULL when it will. */
static const char *ring_lacks(struct io_uring *ring,
                              const struct io_uring_params *p, char *buf,
                              size_t cap) {
  for (size_t i = 0; i < sizeof needed_features / sizeof *needed_features; i++)
    if (!(p->features & needed_features[i].bit)) {
      (void)snprintf(buf, cap, "the kernel's io_uring lacks IORING_FEAT_%s",
                     needed_features[i].name);
      return buf;
    }
  struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
  if (probe == NULL) return "the kernel's io_uring cannot list its operations";
  const char *why = NULL;
  for (size_t i = 0; i < sizeof needed_ops / sizeof *needed_ops && !why; i++)
    if (!io_uring_opcode_supported(probe, needed_ops[i].op)) {
      (void)snprintf(buf, cap, "the kernel's io_uring has no %s operation",
                     needed_ops[i].name);
      why = buf;
    }
  io_uring_free_probe(probe);
  return why;
}

/* io_uring_queue_init with the flags this kernel takes: the newer ones
 * (5.18, 5.19) are only wanted, not needed. */
static int ring_init(struct io_uring *ring, struct io_uring_params *p) {
  static const unsigned tries[] = {
      IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
      IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_CQSIZE,
  };
  int rc = -EINVAL;
  for (size_t i = 0; i < sizeof tries / sizeof *tries && rc == -EINVAL; i++) {
    memset(p, 0, sizeof *p);
    p->flags = tries[i];
    p->cq_entries = CQ_ENTRIES;
    rc = io_uring_queue_init_params(SQ_ENTRIES, ring, p);
  }
  return rc;
}

bh_uring *bh_uring_new(struct event_base *base, bh_err *err) {
  bh_uring *u = calloc(1, sizeof *u);
  if (u == NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory for an io_uring");
    return NULL;
  }
  struct io_uring_params p;
  int rc = ring_init(&u->ring, &p);
  if (rc < 0) {
    bh_err_set(err, BH_SYSTEM, NULL, "io_uring_setup: %s", strerror(-rc));
    free(u);
    return NULL;
  }
  char buf[96];
  const char *why = ring_lacks(&u->ring, &p, buf, sizeof buf);
  if (why != NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "%s", why);
    io_uring_queue_exit(&u->ring);
    free(u);
    return NULL;
  }
  /* A forked child (bh.exec) must not share the ring's memory; entering
   * a registered ring descriptor saves a lookup per submission. Both are
   * optional. */
  (void)io_uring_ring_dontfork(&u->ring);
  (void)io_uring_register_ring_fd(&u->ring);
  u->base = base;
  bh_list_init(&u->inflight);
  event_assign(&u->ring_ev, base, u->ring.ring_fd, EV_READ | EV_PERSIST,
               on_ring, u);
  event_assign(&u->flush_ev, base, -1, 0, on_flush, u);
  evtimer_assign(&u->idle_ev, base, on_idle, u);
  evtimer_assign(&u->retry_ev, base, on_flush, u);
  return u;
}

/* Cancel everything in flight and wait for it; a ring that cannot even
 * take the cancel gives up on its entries (their owners leak, which is
 * better than the kernel writing into freed memory). */
static void drain(bh_uring *u) {
  double t0 = bh_mono_now();
  bool asked = false;
  while (u->pending > 0) {
    if (!asked && bh_uring_reserve(u, 1)) {
      struct io_uring_sqe *sqe = bh_uring_sqe(u, NULL);
      io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
      asked = true;
    }
    (void)io_uring_submit(&u->ring);
    struct __kernel_timespec ts = {0, 50000000LL}; /* 50 ms */
    struct io_uring_cqe *cqe;
    (void)io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
    (void)reap(u, UINT32_MAX);
    if (bh_mono_now() - t0 > DRAIN_SECONDS) break;
  }
  (void)io_uring_submit(&u->ring); /* the closes queued on the way */
}

void bh_uring_free(bh_uring *u) {
  if (u == NULL) return;
  drain(u);
  event_del(&u->ring_ev);
  event_del(&u->flush_ev);
  event_del(&u->idle_ev);
  event_del(&u->retry_ev);
  io_uring_queue_exit(&u->ring);
  free(u);
}

bool bh_uring_reserve(bh_uring *u, unsigned n) {
  if (io_uring_sq_space_left(&u->ring) >= n) return true;
  (void)io_uring_submit(&u->ring);
  return io_uring_sq_space_left(&u->ring) >= n;
}

struct io_uring_sqe *bh_uring_sqe(bh_uring *u, bh_uring_op *op) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (sqe == NULL) return NULL; /* bh_uring_reserve was not asked */
  /* The prep helpers set every field but these two. */
  sqe->user_data = (uint64_t)(uintptr_t)op;
  sqe->flags = 0;
  if (op == NULL) {
    sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
  } else {
    u->pending++;
    bh_list_insert_tail(&u->inflight, &op->link);
    ring_update(u);
  }
  if (!u->flush_armed) {
    u->flush_armed = true;
    event_active(&u->flush_ev, EV_TIMEOUT, 1);
  }
  return sqe;
}

void bh_uring_cancel(bh_uring *u, bh_uring_op *op) {
  if (!bh_uring_reserve(u, 1)) return; /* it ends by itself, later */
  struct io_uring_sqe *sqe = bh_uring_sqe(u, NULL);
  io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
  sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
}

void bh_uring_close(bh_uring *u, int fd) {
  if (!bh_uring_reserve(u, 1)) {
    (void)close(fd); /* a socket: nothing is lost */
    return;
  }
  struct io_uring_sqe *sqe = bh_uring_sqe(u, NULL);
  io_uring_prep_close(sqe, fd);
  sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
}

unsigned bh_uring_pending(const bh_uring *u) {
  return u->pending;
}
