/* The prober's exchange with an endpoint (probe_int.h): the owner check,
 * the request from its template with a fresh nonce, a socket of our own,
 * then on the epoll path connect (retried on EAGAIN until the deadline),
 * write and read one frame through the probe's events, or on the ring
 * connect, send and receive as one linked chain (usock.h). Either way a
 * whole frame goes to bh_probe_validate. */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "access.h"
#include "clock.h"
#include "frameio.h"
#include "probe_int.h"
#include "random.h"
#include "sockio.h"

static void probe_connect(bh_probe *p);
static void probe_write(bh_probe *p);

/* Close the probe's socket, the one place that does: on the epoll path
 * after its event is gone (removing the event of a closed descriptor is
 * a failing system call); on the ring, what is in flight is cancelled and
 * the socket closed once the kernel is done with it. */
void bh_probe_close_socket(bh_probe *p) {
  if (p->io_assigned) event_del(&p->io_ev);
  p->io_assigned = false;
  if (p->us != NULL)
    bh_usock_release(p->us);
  else if (p->fd >= 0)
    (void)close(p->fd); /* a socket: nothing is lost */
  p->us = NULL;
  p->fd = -1;
}

/* Fail with "OP PATH: strerror(errnum)". */
void bh_probe_fail(bh_probe *p, bh_status code, const char *op, int errnum) {
  if (code == BH_CONNECT) p->connect_errno = errnum;
  bh_err_set(&p->result.err, code, NULL, "%s %s: %s", op, p->ep.path,
             strerror(errnum));
  bh_probe_finish(p);
}

/* (Re)point the I/O event at fd/what/cb; the event is never pending when
 * reassigned. */
static void probe_arm_io(bh_probe *p, short what, event_callback_fn cb) {
  if (p->io_assigned) event_del(&p->io_ev);
  event_assign(&p->io_ev, p->base, p->fd, what, cb, p);
  p->io_assigned = true;
  event_add(&p->io_ev, NULL);
}

/* What receiving gave, on either path; errnum for BH_SOCK_FAILED. True
 * when the probe is finished (and freed). Trailing bytes after the first
 * frame are ignored (one request, one response). */
static bool probe_received(bh_probe *p, bh_sock_io io, const uint8_t *body,
                           size_t len, int errnum) {
  switch (io) {
    case BH_SOCK_DONE:
      if (p->io_assigned) /* one frame: the rest is not read */
        event_del(&p->io_ev);
      bh_probe_validate(p, body, len);
      return true;
    case BH_SOCK_EOF:
      bh_err_set(&p->result.err, BH_IO, NULL,
                 "%s: peer closed after %zu bytes, before a whole frame",
                 p->ep.path, p->bytes_read);
      bh_probe_finish(p);
      return true;
    case BH_SOCK_BAD_FRAME:
      bh_probe_finish(p);
      return true;
    case BH_SOCK_FAILED:
      bh_probe_fail(p, BH_IO, "read from", errnum);
      return true;
    default: /* more to come */
      return false;
  }
}

/* Readable: drain what is there into the frame reader; more comes with
 * the next edge. */
static void on_readable(evutil_socket_t fd, short what, void *arg) {
  bh_probe *p = arg;
  /* A response is a few hundred bytes: one read takes it whole, and it is
   * validated where it was read; a larger one takes more reads. */
  uint8_t buf[4096];
  bh_frame_view f = {NULL, 0};
  bh_sock_io io = bh_frame_recv(p->fd, &p->reader, buf, sizeof buf, &f,
                                &p->bytes_read, &p->result.err);
  (void)probe_received(p, io, f.body, f.len, errno);
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
  probe_write(arg);
}

/* Write what is left of the request; wait for writability on a short
 * write; then switch to reading. */
static void probe_write(bh_probe *p) {
  bh_sock_io io = bh_sock_send(p->fd, p->req, p->req_len, &p->req_off, 0);
  if (io == BH_SOCK_AGAIN) {
    probe_arm_io(p, EV_WRITE, on_writable);
    return;
  }
  if (io != BH_SOCK_DONE) {
    bh_probe_fail(p, BH_IO, "write to", errno);
    return;
  }
  /* Edge-triggered: on_readable reads until EAGAIN or a whole frame, so
   * no readiness is lost, and a loop with thousands of probes ready is
   * not made to poll again the ones it has not reached yet. */
  probe_arm_io(p, EV_READ | EV_PERSIST | EV_ET, on_readable);
}

/* Connected: record the peer's credentials (and, for a probe that holds
 * the verified process or checks a listener, its pidfd). */
static void probe_peer(bh_probe *p) {
  p->t_connected = bh_mono_now();
  if (p->via_fd >= 0) (void)close(p->via_fd); /* connected through it */
  p->via_fd = -1;
  bool held = p->result.proc.pid != 0;
  /* Only when someone looks at it: a system call per probe. */
  if (p->opts.peer_cred || held || p->listener)
    (void)bh_peer_cred(p->fd, &p->result.peer);
  if (held || p->listener) p->peer_pidfd = bh_peer_pidfd(p->fd);
}

/* Connected on the epoll path: the peer, then the request. */
static void probe_connected(bh_probe *p) {
  probe_peer(p);
  probe_write(p);
}

static void on_connect_retry(evutil_socket_t fd, short what, void *arg) {
  probe_connect(arg);
}

/* A connect in progress became writable: SO_ERROR says how it ended. */
static void on_connect_done(evutil_socket_t fd, short what, void *arg) {
  bh_probe *p = arg;
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
  if (soerr == 0) {
    probe_connected(p);
    return;
  }
  bh_probe_fail(p, BH_CONNECT, "connect to", soerr);
}

/* A full backlog (EAGAIN): connect again after a short pause, bounded by
 * the deadline. */
static void probe_retry_connect(bh_probe *p) {
  struct timeval tv = {0, CONNECT_RETRY_USEC};
  evtimer_assign(&p->start_ev, p->base, on_connect_retry, p);
  evtimer_add(&p->start_ev, &tv);
}

/* ---- the exchange on the ring (usock.h) ---- */

static void on_u_connected(void *owner, int res) {
  bh_probe *p = owner;
  if (res == 0)
    probe_peer(p);
  else if (res == -EAGAIN)
    probe_retry_connect(p);
  else
    bh_probe_fail(p, BH_CONNECT, "connect to", -res);
}

static void on_u_sent(void *owner, int res) {
  if (res < 0) bh_probe_fail(owner, BH_IO, "write to", -res);
}

static void on_u_received(void *owner, const uint8_t *data, int res) {
  bh_probe *p = owner;
  bh_frame_view f = {NULL, 0};
  bh_sock_io io = BH_SOCK_FAILED;
  if (res == 0) {
    io = BH_SOCK_EOF;
  } else if (res > 0) {
    p->bytes_read += (size_t)res;
    io = bh_frame_take(&p->reader, data, (size_t)res, &f, &p->result.err);
  }
  if (probe_received(p, io, f.body, f.len, -res)) return;
  if (!bh_usock_recv(p->us))
    bh_probe_fail(p, BH_SYSTEM, "receive (the ring is full) from", EBUSY);
}

static const bh_usock_ops probe_usock_ops = {on_u_connected, on_u_sent,
                                             on_u_received};

/* Connect, send and receive as one linked chain on the ring. False when
 * the ring cannot take it now (then the epoll path does it). */
static bool probe_connect_ring(bh_probe *p, const struct sockaddr_un *sa) {
  bh_uring *ring = p->pr != NULL ? p->pr->ring : NULL;
  if (ring == NULL || !bh_uring_reserve(ring, 3)) return false;
  if (p->us == NULL)
    p->us = bh_usock_new(ring, p->fd, URING_RECV_BUF, &probe_usock_ops, p);
  return p->us != NULL && bh_usock_exchange(p->us, sa, p->req, p->req_len);
}

/* Try to connect: by path, or through the descriptor of the socket the
 * owner check approved; on the ring, with the send and the receive. A
 * full backlog (EAGAIN) is retried after a short pause, bounded by the
 * deadline; anything else but success fails at once. */
static void probe_connect(bh_probe *p) {
  struct sockaddr_un sa;
  char via[64];
  if (p->via_fd >= 0)
    (void)snprintf(via, sizeof via, "/proc/self/fd/%d", p->via_fd);
  (void)bh_sockaddr_un(&sa, p->via_fd >= 0 ? via : p->ep.path); /* fits */
  if (probe_connect_ring(p, &sa)) return;
  int rc;
  do {
    rc = connect(p->fd, (struct sockaddr *)&sa, sizeof sa);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    probe_connected(p);
  } else if (errno == EAGAIN) {
    probe_retry_connect(p);
  } else if (errno == EINPROGRESS) {
    probe_arm_io(p, EV_WRITE, on_connect_done);
  } else {
    bh_probe_fail(p, BH_CONNECT, "connect to", errno);
  }
}

/* With an owner (probe.h): may it connect to the endpoint? Leaves the
 * checked socket's descriptor in via_fd. False with result.err set. */
static bool owner_may_connect(bh_probe *p) {
  uid_t owner = p->opts.owner;
  if (!p->opts.has_owner || owner == 0 || owner == geteuid()) return true;
  if (bh_access_open_socket(owner, p->ep.path, &p->via_fd, &p->result.err) ==
      BH_OK)
    return true;
  p->connect_errno = p->result.err.sys_errno;
  return false;
}

/* The active exchange: check the owner may connect, build the request
 * with a fresh nonce, open the socket, connect. */
void bh_probe_exchange(bh_probe *p) {
  p->t_exchange = bh_mono_now();
  if (!owner_may_connect(p)) {
    bh_probe_finish(p);
    return;
  }
  bh_err rerr;
  if (bh_random_bytes(p->nonce, sizeof p->nonce, &rerr) != BH_OK) {
    bh_err_sys(&p->result.err, BH_SYSTEM, rerr.sys_errno,
               "getrandom gave no nonce for a probe of %s: %s", p->ep.path,
               strerror(rerr.sys_errno));
    bh_probe_finish(p);
    return;
  }
  p->request_id = bh_request_id_from_nonce(p->nonce);
  p->req_len = bh_probe_request_write(p->nonce, p->req);
  p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd < 0) {
    int e = errno;
    p->connect_errno = e;
    bool out = e == EMFILE || e == ENFILE;
    bh_err_set(&p->result.err, BH_CONNECT, NULL, "connect to %s: %s%s",
               p->ep.path,
               out ? "this process ran out of file descriptors: " : "socket: ",
               strerror(e));
    bh_probe_finish(p);
    return;
  }
  probe_connect(p);
}
