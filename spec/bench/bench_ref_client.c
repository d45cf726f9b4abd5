/* The reference clients of the benchmark (never a test): the least a
 * prober can do for the same bytes as ours, on each event interface,
 * with no validation: connect, write the request, read REPLY_SIZE bytes,
 * close. Used by the driver in its own process for sequential rounds
 * (bench_ref.h) and, as bench_ref_load, in a fresh process for a batch
 * with many in flight.
 *  - epoll: a blocking connect and send (a Unix socket connects and takes
 *    a small request at once), the socket added to the epoll set (once,
 *    removed by the close), wait, read, close; no timers.
 *  - uring: one linked chain per probe: socket (a direct descriptor),
 *    connect, send, receive (all of the answer: MSG_WAITALL), close; a
 *    batch is one io_uring_enter (submit and wait).
 *  - uring-fd: socket(2), then the same chain on its descriptor (connect,
 *    send, receive, close): the socket ours opens, without the rest. */
#include "bench_ref.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct bench_ref {
  bench_ref_io io;
  bool uring; /* either of the io_uring interfaces */
  struct sockaddr_un sa;
  const uint8_t *req;
  size_t req_len, reply_len;
  int ep; /* epoll */
  struct io_uring ring;
  bool ring_made;
  unsigned slots;
  /* per slot (in flight): the receive buffer */
  uint8_t *bufs;
  size_t buf_len;
  unsigned *free_slots, nfree;
  int *fds; /* epoll, uring-fd: the socket of each slot */
  size_t *got;
};

enum { UD_CLOSE = ~0u };

static bool ref_fail(char *why, size_t cap, const char *what, int err) {
  (void)snprintf(why, cap, "%s: %s", what, strerror(err));
  return false;
}

static bool setup_uring(bench_ref *r, char *why, size_t cap) {
  struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE,
                              .cq_entries = 4 * r->slots + 64};
  unsigned sq = 8; /* a chain of 5 must fit whole */
  while (sq < 5 * r->slots && sq < 4096)
    sq <<= 1;
  int rc = io_uring_queue_init_params(sq, &r->ring, &p);
  if (rc < 0) return ref_fail(why, cap, "io_uring_setup", -rc);
  r->ring_made = true;
  if (r->io == BENCH_REF_URING_FD) return true;
  rc = io_uring_register_files_sparse(&r->ring, r->slots);
  if (rc < 0) return ref_fail(why, cap, "io_uring_register_files", -rc);
  struct io_uring_probe *probe = io_uring_get_probe_ring(&r->ring);
  bool ok = probe != NULL && io_uring_opcode_supported(probe, IORING_OP_SOCKET);
  if (probe != NULL) io_uring_free_probe(probe);
  if (!ok) return ref_fail(why, cap, "IORING_OP_SOCKET", ENOSYS);
  return true;
}

bool bench_ref_io_named(const char *name, bench_ref_io *io) {
  static const char *const names[] = {"epoll", "uring", "uring-fd"};
  for (int i = 0; i < 3; i++)
    if (strcmp(name, names[i]) == 0) {
      *io = (bench_ref_io)i;
      return true;
    }
  return false;
}

bench_ref *bench_ref_new(bench_ref_io io, const char *path, const uint8_t *req,
                         size_t req_len, size_t reply_len, unsigned in_flight,
                         char *why, size_t cap) {
  bench_ref *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->io = io;
  bool uring = r->uring = io != BENCH_REF_EPOLL;
  r->sa.sun_family = AF_UNIX;
  (void)snprintf(r->sa.sun_path, sizeof r->sa.sun_path, "%s", path);
  r->req = req;
  r->req_len = req_len;
  r->reply_len = reply_len;
  r->slots = in_flight;
  r->buf_len = reply_len;
  r->bufs = malloc(in_flight * reply_len + 1);
  r->free_slots = malloc(in_flight * sizeof *r->free_slots);
  r->fds = malloc(in_flight * sizeof *r->fds);
  r->got = calloc(in_flight, sizeof *r->got);
  r->ep = -1;
  bool ok = r->bufs && r->free_slots && r->fds && r->got;
  if (!ok) (void)ref_fail(why, cap, "malloc", ENOMEM);
  if (ok && uring) ok = setup_uring(r, why, cap);
  if (ok && !uring && (r->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
    ok = ref_fail(why, cap, "epoll_create1", errno);
  for (unsigned i = 0; i < in_flight; i++)
    r->free_slots[r->nfree++] = i;
  if (!ok) {
    bench_ref_free(r);
    return NULL;
  }
  return r;
}

void bench_ref_free(bench_ref *r) {
  if (r == NULL) return;
  if (r->ring_made) io_uring_queue_exit(&r->ring);
  if (r->ep >= 0) (void)close(r->ep);
  free(r->bufs);
  free(r->free_slots);
  free(r->fds);
  free(r->got);
  free(r);
}

/* ---- io_uring ---------------------------------------------------------- */

static struct io_uring_sqe *sqe(bench_ref *r) {
  struct io_uring_sqe *s = io_uring_get_sqe(&r->ring);
  if (s == NULL) {
    (void)io_uring_submit(&r->ring);
    s = io_uring_get_sqe(&r->ring);
  }
  return s;
}

/* Mark an entry of a probe's chain, after its prep helper (which clears
 * the flags): on a direct descriptor when fixed is IOSQE_FIXED_FILE,
 * linked to the next when link, its completion posted only on failure
 * when it is nobody's (UD_CLOSE). */
static void chain_mark(struct io_uring_sqe *s, unsigned fixed, bool link,
                       uint64_t data) {
  s->flags |= fixed | (link ? IOSQE_IO_LINK : 0);
  if (data == UD_CLOSE) s->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(s, data);
}

/* Queue the chain of one probe in slot i: on io_uring, a socket opened as
 * the direct descriptor of slot i, then connect, send, receive, close; on
 * uring-fd, the same after socket(2), on its descriptor. A chain that
 * breaks cancels its close: bench_ref_run closes a socket of socket(2) on
 * the receive's completion (a slot is taken over by its next socket). */
static bool uring_start(bench_ref *r, unsigned i) {
  if (io_uring_sq_space_left(&r->ring) < 5) (void)io_uring_submit(&r->ring);
  bool direct = r->io == BENCH_REF_URING;
  unsigned fixed = direct ? IOSQE_FIXED_FILE : 0;
  int fd = (int)i;
  struct io_uring_sqe *s;
  if (direct) {
    s = sqe(r);
    io_uring_prep_socket_direct(s, AF_UNIX, SOCK_STREAM, 0, i, 0);
    chain_mark(s, 0, true, UD_CLOSE);
  } else {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    r->fds[i] = fd;
  }
  s = sqe(r);
  io_uring_prep_connect(s, fd, (struct sockaddr *)&r->sa, sizeof r->sa);
  chain_mark(s, fixed, true, UD_CLOSE);
  s = sqe(r);
  io_uring_prep_send(s, fd, r->req, r->req_len, MSG_NOSIGNAL);
  chain_mark(s, fixed, true, UD_CLOSE);
  s = sqe(r);
  io_uring_prep_recv(s, fd, r->bufs + (size_t)i * r->buf_len, r->buf_len,
                     MSG_WAITALL);
  chain_mark(s, fixed, true, i);
  s = sqe(r);
  if (direct)
    io_uring_prep_close_direct(s, i);
  else
    io_uring_prep_close(s, fd);
  chain_mark(s, 0, false, UD_CLOSE);
  return true;
}

/* ---- epoll -------------------------------------------------------------- */

static bool epoll_start(bench_ref *r, unsigned i) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  if (connect(fd, (struct sockaddr *)&r->sa, sizeof r->sa) < 0 ||
      send(fd, r->req, r->req_len, MSG_NOSIGNAL) != (ssize_t)r->req_len) {
    (void)close(fd);
    return false;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    (void)close(fd);
    return false;
  }
  r->fds[i] = fd;
  r->got[i] = 0;
  return true;
}

/* Slot i is readable: read; true when it is over (done or failed, in
 * *ok), its socket closed. */
static bool epoll_read(bench_ref *r, unsigned i, bool *ok) {
  uint8_t *buf = r->bufs + (size_t)i * r->buf_len;
  ssize_t n = recv(r->fds[i], buf + r->got[i], r->buf_len - r->got[i], 0);
  if (n > 0) r->got[i] += (size_t)n;
  if (n > 0 && r->got[i] < r->buf_len) return false;
  if (n < 0 && errno == EAGAIN) return false;
  *ok = r->got[i] == r->buf_len;
  (void)close(r->fds[i]); /* leaves the epoll set with it */
  return true;
}

/* ---- batches ------------------------------------------------------------ */

long bench_ref_run(bench_ref *r, long total, unsigned in_flight) {
  long started = 0, finished = 0, failed = 0;
  if (in_flight > r->slots) in_flight = r->slots;
  while (finished < total) {
    while (started < total && started - finished < (long)in_flight &&
           r->nfree > 0) {
      unsigned i = r->free_slots[--r->nfree];
      started++;
      if (!(r->uring ? uring_start(r, i) : epoll_start(r, i))) {
        failed++;
        finished++;
        r->free_slots[r->nfree++] = i;
      }
    }
    if (r->uring) {
      (void)io_uring_submit_and_wait(&r->ring, 1);
      struct io_uring_cqe *cqe;
      unsigned head, n = 0;
      io_uring_for_each_cqe(&r->ring, head, cqe) {
        n++;
        if (cqe->user_data == UD_CLOSE) continue;
        unsigned i = (unsigned)cqe->user_data;
        if (cqe->res != (int)r->reply_len) {
          failed++;
          /* the chain broke before its close */
          if (r->io == BENCH_REF_URING_FD) (void)close(r->fds[i]);
        }
        finished++;
        r->free_slots[r->nfree++] = i;
      }
      io_uring_cq_advance(&r->ring, n);
    } else {
      struct epoll_event evs[256];
      int n = epoll_wait(r->ep, evs, 256, -1);
      for (int k = 0; k < n; k++) {
        unsigned i = evs[k].data.u32;
        bool ok = false;
        if (!epoll_read(r, i, &ok)) continue;
        if (!ok) failed++;
        finished++;
        r->free_slots[r->nfree++] = i;
      }
    }
  }
  return failed;
}
