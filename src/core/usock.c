/* Socket I/O on the ring (see usock.h). Every operation of a socket has
 * its own bh_uring_op, embedded here, so that a completion says which one
 * it is; `inflight` counts those whose completion has not come. A linked
 * chain breaks at its first failure: the rest come back with -ECANCELED,
 * which the owner is not told of (it was told of the failure).
 *
 * Releasing cancels each operation still in flight. A linked operation
 * the kernel has not issued yet cannot be cancelled; it is issued when
 * the one before completes, and every completion of a released socket
 * cancels again what is still in flight, so the chain ends. */
#include "usock.h"

#include <errno.h>
#include <liburing.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A probe request is 56 bytes (634 at the W3C bounds of its trace
 * fields, which our prober never sends): copied into the socket. */
enum { INLINE_SEND = 64 };

struct bh_usock {
  bh_uring *u;
  const bh_usock_ops *ops;
  void *owner; /* NULL once released */
  int fd;      /* -1 once closed */
  unsigned inflight;
  bool in_connect, in_send, in_recv;
  bool chain_broken; /* a link failed: -ECANCELED is not news */
  bool send_closes;  /* the send in flight closes the socket after it */
  int connect_res;   /* a failed connect, told once the chain is back */
  bh_uring_op op_connect, op_send, op_recv;
  struct sockaddr_un sa;
  uint8_t *out; /* what is being sent: inline or taken over */
  size_t out_len;
  uint8_t inline_out[INLINE_SEND];
  size_t bufsize;
  uint8_t buf[]; /* the receive buffer */
};

#define SOCK_OF(op, member) \
  ((bh_usock *)((char *)(op)-offsetof(bh_usock, member)))

static void drop_out(bh_usock *s) {
  if (s->out != NULL && s->out != s->inline_out) free(s->out);
  s->out = NULL;
  s->out_len = 0;
}

/* Released and nothing in flight: close what is still open, free. */
static void usock_free(bh_usock *s) {
  if (s->fd >= 0) bh_uring_close(s->u, s->fd);
  drop_out(s);
  free(s);
}

static void cancel_inflight(bh_usock *s) {
  if (s->in_connect) bh_uring_cancel(s->u, &s->op_connect);
  if (s->in_send) bh_uring_cancel(s->u, &s->op_send);
  if (s->in_recv) bh_uring_cancel(s->u, &s->op_recv);
}

/* After a completion of a released socket: free it, or cancel again. */
static void released_completion(bh_usock *s) {
  if (s->inflight == 0)
    usock_free(s);
  else
    cancel_inflight(s);
}

/* A chain whose connect failed is back: tell the owner now. */
static void tell_connect_failure(bh_usock *s) {
  int res = s->connect_res;
  s->connect_res = 0;
  s->chain_broken = false;
  s->ops->connected(s->owner, res);
}

/* Was this completion only the tail of a broken chain? Then, once all of
 * it is back, a failed connect is told. True when nothing else is to be
 * said of it. */
static bool chain_tail(bh_usock *s, int res) {
  if (res != -ECANCELED || !s->chain_broken) return false;
  if (s->inflight == 0 && s->connect_res < 0) tell_connect_failure(s);
  return true;
}

static void on_connect(bh_uring_op *op, int res, unsigned flags) {
  bh_usock *s = SOCK_OF(op, op_connect);
  s->in_connect = false;
  s->inflight--;
  if (s->owner == NULL) {
    released_completion(s);
    return;
  }
  if (res >= 0) {
    s->ops->connected(s->owner, 0);
    return;
  }
  s->chain_broken = true;
  s->connect_res = res;
  if (s->inflight == 0) tell_connect_failure(s);
}

static void on_send(bh_uring_op *op, int res, unsigned flags) {
  bh_usock *s = SOCK_OF(op, op_send);
  size_t want = s->out_len;
  s->in_send = false;
  s->inflight--;
  drop_out(s);
  if (s->send_closes && res >= 0 && (size_t)res == want)
    s->fd = -1; /* the linked close took it */
  s->send_closes = false;
  if (s->owner == NULL) {
    released_completion(s);
    return;
  }
  if (chain_tail(s, res)) return;
  if (res < 0 || (size_t)res != want) s->chain_broken = true;
  if (res >= 0 && (size_t)res != want) res = -EPIPE; /* cut short */
  s->ops->sent(s->owner, res);
}

static void on_recv(bh_uring_op *op, int res, unsigned flags) {
  bh_usock *s = SOCK_OF(op, op_recv);
  s->in_recv = false;
  s->inflight--;
  if (s->owner == NULL) {
    released_completion(s);
    return;
  }
  if (chain_tail(s, res)) return;
  s->ops->received(s->owner, s->buf, res);
}

bh_usock *bh_usock_new(bh_uring *u, int fd, size_t bufsize,
                       const bh_usock_ops *ops, void *owner) {
  bh_usock *s = malloc(sizeof *s + bufsize);
  if (s == NULL) return NULL;
  memset(s, 0, sizeof *s);
  s->u = u;
  s->ops = ops;
  s->owner = owner;
  s->fd = fd;
  s->bufsize = bufsize;
  s->op_connect.cb = on_connect;
  s->op_send.cb = on_send;
  s->op_recv.cb = on_recv;
  return s;
}

/* Queue a receive into the buffer; link: another entry follows it. */
static void queue_recv(bh_usock *s) {
  struct io_uring_sqe *sqe = bh_uring_sqe(s->u, &s->op_recv);
  io_uring_prep_recv(sqe, s->fd, s->buf, s->bufsize, 0);
  s->in_recv = true;
  s->inflight++;
}

/* Queue a send of s->out; MSG_WAITALL makes a short send go on (or fail,
 * which breaks a link) instead of passing as done. */
static struct io_uring_sqe *queue_send(bh_usock *s) {
  struct io_uring_sqe *sqe = bh_uring_sqe(s->u, &s->op_send);
  io_uring_prep_send(sqe, s->fd, s->out, s->out_len,
                     MSG_NOSIGNAL | MSG_WAITALL);
  s->in_send = true;
  s->inflight++;
  return sqe;
}

bool bh_usock_exchange(bh_usock *s, const struct sockaddr_un *sa,
                       const uint8_t *data, size_t len) {
  if (!bh_uring_reserve(s->u, 3)) return false;
  if (len <= sizeof s->inline_out) {
    s->out = s->inline_out;
  } else if ((s->out = malloc(len)) == NULL) {
    return false;
  }
  memcpy(s->out, data, len);
  s->out_len = len;
  s->sa = *sa;
  s->chain_broken = false;
  struct io_uring_sqe *sqe = bh_uring_sqe(s->u, &s->op_connect);
  io_uring_prep_connect(sqe, s->fd, (const struct sockaddr *)&s->sa,
                        sizeof s->sa);
  sqe->flags |= IOSQE_IO_LINK;
  s->in_connect = true;
  s->inflight++;
  queue_send(s)->flags |= IOSQE_IO_LINK;
  queue_recv(s);
  return true;
}

bool bh_usock_recv(bh_usock *s) {
  if (!bh_uring_reserve(s->u, 1)) return false;
  queue_recv(s);
  return true;
}

bool bh_usock_send_close(bh_usock *s, uint8_t *data, size_t len) {
  if (!bh_uring_reserve(s->u, 2)) return false;
  s->out = data;
  s->out_len = len;
  s->chain_broken = false;
  queue_send(s)->flags |= IOSQE_IO_LINK;
  s->send_closes = true;
  struct io_uring_sqe *sqe = bh_uring_sqe(s->u, NULL);
  io_uring_prep_close(sqe, s->fd);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  return true;
}

int bh_usock_fd(const bh_usock *s) {
  return s->send_closes ? -1 : s->fd;
}

bool bh_usock_busy(const bh_usock *s) {
  return s->inflight > 0;
}

void bh_usock_release(bh_usock *s) {
  if (s == NULL) return;
  s->owner = NULL;
  released_completion(s);
}

size_t bh_usock_heap(const bh_usock *s) {
  size_t n = sizeof *s + s->bufsize;
  if (s->out != NULL && s->out != s->inline_out) n += s->out_len;
  return n;
}
