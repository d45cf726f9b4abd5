/* The responder (design §1.4, §4): a Unix listener on a libevent loop that
 * answers each connection's one probe request with an identity, then
 * closes. Each connection is a small heap object with plain events (read,
 * write, its own deadline, an optional reply delay) on a list owned by the
 * responder, newest first. Hostile clients only ever cost their own
 * connection: a bad request, EOF or the deadline drops it and counts it
 * as rejected.
 *
 * Floods: the listener never stops accepting because of the cap (that
 * left good probes queued in the backlog behind idle attackers until they
 * timed out). At the cap, accepting a connection evicts the oldest one
 * that has not yet sent a whole request: a real prober writes its request
 * right after connecting, so it is answered within microseconds of being
 * accepted, and what stays longest without a request is an attacker.
 * One wake-up of the listener accepts at most accept_limit connections
 * (never more than ACCEPT_BURST), then the loop runs everything else, so
 * reconnecting attackers cannot monopolise it.
 *
 * accept4 that finds the backlog empty costs as much as one that finds a
 * client (the kernel allocates the socket before it looks), so the limit
 * follows the load instead of draining the backlog to EAGAIN every time:
 * it falls to what was there when a wake-up found the backlog empty, and
 * doubles after ACCEPT_GROW wake-ups in a row that used all of it. One
 * probe at a time then costs one accept4 per probe, plus an empty one
 * every ACCEPT_GROW + 1 probes; under a flood the limit reaches the burst
 * within a few hundred connections. */
#include "respond.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "frameio.h"
#include "fsutil.h"
#include "list.h"
#include "loop.h"
#include "sockio.h"
#include "stale.h"
#include "usock.h"

enum {
  READ_CHUNK = 1024,
  /* The receive buffer of a connection on the ring: a probe request is 56
   * bytes (634 at the W3C bounds of its trace fields); a longer one takes
   * more receives. */
  URING_RECV_BUF = 256,
  LISTEN_BACKLOG = 4096,
  ACCEPT_BURST = 64,
  ACCEPT_GROW = 8
};
#define ACCEPT_PAUSE_USEC 50000

typedef struct bh_deferred conn; /* a deferred answer is its connection */
struct bh_deferred {
  bh_responder *r;
  bh_list link; /* in r->conns */
  int fd;       /* -1 once the ring closed it after the answer */
  bh_usock *us; /* the connection on the ring (io_uring path), or NULL */
  struct event io_ev;
  struct event timer_ev; /* per-connection deadline */
  struct event delay_ev; /* the hook's reply delay, then the trickle */
  bool io_added;
  bh_frame_reader reader;
  double deadline; /* bh_mono_now of the connection deadline */
  double due;      /* ... and of the delay or trickle step */
  bool handled;    /* a whole request came: no longer evicted first */
  bool deferred;   /* waiting for bh_respond_answer */
  void *defer_ctx; /* for on_abandon */
  bh_request req;  /* kept while deferred */
  bool drop;       /* the hook said drop (after the delay) */
  double trickle;  /* seconds between bytes of the answer, 0: at once */
  uint8_t *out;    /* the reply, written after the delay */
  size_t out_len, out_off;
};

struct bh_responder {
  struct event_base *base;
  bh_endpoint ep;
  bh_identity id;
  uint8_t *id_pb; /* id encoded once: the normal answer's payload tail */
  size_t id_pb_len;
  bh_respond_opts opts;
  int listen_fd;                 /* -1 once closed */
  bh_uring *ring;                /* the loop's ring, or NULL: epoll */
  struct event listen_ev;        /* readable: clients wait in the backlog */
  bool listening;                /* listen_ev is added */
  unsigned accept_limit;         /* accepts per wake-up, 1..ACCEPT_BURST */
  unsigned accept_streak;        /* wake-ups in a row that used all of it */
  struct event pause_ev;         /* re-enables accepting after EMFILE */
  const struct timeval *conn_tv; /* conn_timeout, a common timeout if any */
  struct timeval conn_tv_plain;
  int dirfd;        /* the socket file's directory, -1 until bound */
  const char *leaf; /* the socket file's name in it (inside ep.path) */
  bool have_inode;
  dev_t dev;
  ino_t ino;
  bool closed, paused, in_accept, in_closed_cb, freeing, free_requested;
  conn *in_hook; /* the connection whose hook is running, if any */
  bh_list conns; /* conn.link, newest first: the oldest is last */
  unsigned open_conns;
  uint64_t served, rejected, evicted;
};

static void conn_free(conn *c);
static void responder_release(bh_responder *r);
static void unlink_if_ours(bh_responder *r);

bh_respond_opts bh_respond_opts_default(void) {
  return (bh_respond_opts){.mode = 0600,
                           .conn_timeout = BH_RESPOND_DEFAULT_CONN_TIMEOUT,
                           .max_conns = 1024,
                           .max_request = BH_RESPOND_DEFAULT_MAX_REQUEST};
}

/* ---- connections ------------------------------------------------------ */

/* Unlink c from its responder, stop its events, close it, tell the hook
 * a deferred answer will never be asked for (c is out of the list by
 * then, whatever the callback does), free it. */
static void conn_free(conn *c) {
  bh_responder *r = c->r;
  bh_list_remove(&c->link);
  r->open_conns--;
  if (c->io_added) event_del(&c->io_ev);
  event_del(&c->timer_ev);
  event_del(&c->delay_ev);
  if (c->us != NULL)
    bh_usock_release(c->us); /* closes it once the kernel is done */
  else
    close(c->fd);
  if (c->deferred) {
    c->deferred = false;
    if (r->opts.on_abandon)
      r->opts.on_abandon(r, c->defer_ctx, r->opts.hook_ctx);
  }
  bh_request_clear(&c->req);
  bh_frame_reader_free(&c->reader);
  free(c->out);
  free(c);
}

static void conn_reject(conn *c) {
  c->r->rejected++;
  conn_free(c);
}

/* Make room for a new connection: close the oldest one still without a
 * whole request (idle or trickling), else the oldest of all (an answer
 * stuck behind a client that does not read, a long reply delay). The
 * connection whose hook is running is never the one. */
static void evict_oldest(bh_responder *r) {
  conn *victim = NULL;
  for (int pass = 0; pass < 2 && victim == NULL; pass++) {
    for (bh_list *n = r->conns.prev; n != &r->conns; n = n->prev) {
      conn *c = bh_list_entry(n, conn, link);
      if (c != r->in_hook && (pass == 1 || !c->handled)) {
        victim = c;
        break;
      }
    }
  }
  if (victim == NULL) return;
  r->evicted++;
  conn_reject(victim);
}

static void conn_arm_io(conn *c, short what, event_callback_fn cb) {
  if (c->io_added) event_del(&c->io_ev);
  event_assign(&c->io_ev, c->r->base, c->fd, what, cb, c);
  event_add(&c->io_ev, NULL);
  c->io_added = true;
}

static void on_conn_writable(evutil_socket_t fd, short what, void *arg);

/* Wait s seconds on delay_ev, then act. */
static void conn_wait(conn *c, double s) {
  struct timeval tv = bh_timeval(s);
  c->due = bh_mono_now() + s;
  evtimer_add(&c->delay_ev, &tv);
}

/* The whole reply was written: served, closed, and the responder closes
 * itself once count answers were given. */
static void conn_served(conn *c) {
  bh_responder *r = c->r;
  r->served++;
  conn_free(c);
  if (r->opts.count > 0 && r->served >= r->opts.count) bh_respond_close(r);
}

/* Write the rest of the reply (a trickle: one byte, then wait). On the
 * ring a reply sent at once is one send linked to the close. */
static void conn_write(conn *c) {
  size_t step = c->trickle > 0 ? 1 : 0;
  if (c->us != NULL && step == 0 && c->out_off == 0) {
    /* The ring closes the descriptor: no event of the loop may be left
     * on it (its number may be another connection's by then). */
    if (c->io_added) event_del(&c->io_ev);
    c->io_added = false;
    if (bh_usock_send_close(c->us, c->out, c->out_len)) {
      c->out = NULL; /* the socket's now */
      c->fd = -1;
      return;
    }
  }
  switch (bh_sock_send(c->fd, c->out, c->out_len, &c->out_off, step)) {
    case BH_SOCK_DONE:
      break;
    case BH_SOCK_MORE:
      conn_wait(c, c->trickle);
      return;
    case BH_SOCK_AGAIN:
      conn_arm_io(c, EV_WRITE, on_conn_writable);
      return;
    default:
      conn_reject(c); /* the client went away: not an answer */
      return;
  }
  conn_served(c);
}

static void on_conn_writable(evutil_socket_t fd, short what, void *arg) {
  conn_write(arg);
}

/* Act on the hook's decision (now, or when the delay ran out). */
static void conn_act(conn *c) {
  if (c->drop)
    conn_reject(c);
  else
    conn_write(c);
}

/* The reply delay or a trickle's step ran out (re-checked: the loop's
 * coarse clock may fire it early, loop.h). */
static void on_conn_delay(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  if (!bh_timer_due(&c->delay_ev, c->due)) return;
  conn_act(c);
}

/* The connection's deadline, re-checked: the loop's coarse clock may
 * fire it early (loop.h). */
static void on_conn_deadline(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  if (!bh_timer_due(&c->timer_ev, c->deadline)) return;
  conn_reject(c);
}

/* Turn the hook's reply into bytes now (the identity and raw bytes are
 * only borrowed for the duration of the hook). */
static bh_status conn_prepare(conn *c, const bh_request *req,
                              const bh_reply *reply) {
  bh_responder *r = c->r;
  switch (reply->kind) {
    case BH_REPLY_DROP:
      c->drop = true;
      return BH_OK;
    case BH_REPLY_RAW:
      c->out = malloc(reply->raw_len ? reply->raw_len : 1);
      if (c->out == NULL) return BH_SYSTEM;
      if (reply->raw_len) memcpy(c->out, reply->raw, reply->raw_len);
      c->out_len = reply->raw_len;
      return BH_OK;
    case BH_REPLY_HOSTILE:
      return bh_hostile_build(reply->hostile, req,
                              reply->identity ? reply->identity : &r->id,
                              &c->out, &c->out_len, NULL);
    case BH_REPLY_IDENTITY:
      if (reply->identity != NULL)
        return bh_probe_response_build(req, reply->identity, &c->out,
                                       &c->out_len, NULL);
      break; /* no identity given: answer normally */
    case BH_REPLY_NORMAL:
    case BH_REPLY_DEFER: /* never asked to prepare (see conn_handle) */
    default:
      break;
  }
  return bh_probe_response_build_raw(req, r->id_pb, r->id_pb_len, &c->out,
                                     &c->out_len, NULL);
}

/* A connection waiting for its answer (deferred or delayed) became
 * readable: its client went away (EOF or an error) or sent more than its one
 * request, which is ignored. */
static void on_conn_waiting(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  uint8_t buf[READ_CHUNK];
  ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n == 0 ||
      (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
    conn_reject(c);
}

/* Reply to req (now, or once the delay ran out). */
static void conn_reply(conn *c, const bh_request *req, const bh_reply *reply) {
  bh_status st = c->r->closed ? BH_SYSTEM : conn_prepare(c, req, reply);
  if (st != BH_OK) {
    conn_reject(c);
    return;
  }
  c->trickle = reply->trickle > 0 ? reply->trickle : 0;
  if (reply->delay > 0) {
    conn_wait(c, reply->delay);
    conn_arm_io(c, EV_READ | EV_PERSIST, on_conn_waiting);
    return;
  }
  conn_act(c);
}

/* A whole frame arrived (f, valid during the call): validate, ask the
 * hook, reply (maybe later). */
static void conn_handle(conn *c, const bh_frame_view *f) {
  bh_responder *r = c->r;
  if (c->io_added) event_del(&c->io_ev);
  c->handled = true;
  c->io_added = false;
  bh_request req = {0};
  if (bh_probe_request_validate(f->body, f->len, &req, NULL) != BH_OK) {
    bh_request_clear(&req);
    conn_reject(c);
    return;
  }
  bh_reply reply = {.kind = BH_REPLY_NORMAL, .deferred = c};
  if (r->opts.hook != NULL) {
    r->in_hook = c;
    r->opts.hook(r, &req, &reply, r->opts.hook_ctx);
    r->in_hook = NULL;
  }
  if (reply.kind == BH_REPLY_DEFER) {
    c->req = req; /* kept until the answer */
    c->deferred = true;
    c->defer_ctx = reply.defer_ctx;
    if (r->closed) {
      conn_reject(c); /* closed from inside the hook: abandoned */
      return;
    }
    conn_arm_io(c, EV_READ | EV_PERSIST, on_conn_waiting);
    return;
  }
  conn_reply(c, &req, &reply);
  bh_request_clear(&req);
}

void bh_respond_answer(bh_deferred *c, const bh_reply *reply) {
  if (c == NULL || !c->deferred) return;
  c->deferred = false;
  if (c->io_added) event_del(&c->io_ev);
  c->io_added = false;
  if (reply->kind == BH_REPLY_DEFER) {
    conn_reject(c);
    return;
  }
  conn_reply(c, &c->req, reply);
}

static void on_conn_readable(evutil_socket_t fd, short what, void *arg);

/* A receive on the ring ended (usock.h). */
static void on_c_received(void *owner, const uint8_t *data, int res) {
  conn *c = owner;
  bh_frame_view f;
  bh_sock_io io = res > 0
                      ? bh_frame_take(&c->reader, data, (size_t)res, &f, NULL)
                      : BH_SOCK_EOF; /* the client closed, or failed */
  if (io == BH_SOCK_DONE)
    conn_handle(c, &f);
  else if (io != BH_SOCK_AGAIN || !bh_usock_recv(c->us))
    conn_reject(c);
}

/* The answer's send (linked to the close) ended. */
static void on_c_sent(void *owner, int res) {
  if (res >= 0)
    conn_served(owner);
  else
    conn_reject(owner); /* the client went away: not an answer */
}

static void on_c_connected(void *owner, int res) {} /* never connects */

static const bh_usock_ops conn_usock_ops = {on_c_connected, on_c_sent,
                                            on_c_received};

/* Feed the frame reader with what is there; wait for more (arming the
 * read event only then; on the ring, a receive). EOF or a framing error
 * before a whole request drops the connection. */
static void conn_read(conn *c) {
  if (c->us != NULL) {
    if (!bh_usock_recv(c->us)) conn_reject(c);
    return;
  }
  size_t got = 0;
  uint8_t buf[READ_CHUNK];
  bh_frame_view f;
  switch (bh_frame_recv(c->fd, &c->reader, buf, sizeof buf, &f, &got, NULL)) {
    case BH_SOCK_DONE:
      conn_handle(c, &f);
      return;
    case BH_SOCK_AGAIN:
      if (!c->io_added) conn_arm_io(c, EV_READ | EV_PERSIST, on_conn_readable);
      return;
    default:
      conn_reject(c);
      return;
  }
}

static void on_conn_readable(evutil_socket_t fd, short what, void *arg) {
  conn_read(arg);
}

/* A client was accepted as fd. */
static void on_accept(bh_responder *r, int fd) {
  if (!r->closed && r->open_conns >= r->opts.max_conns) evict_oldest(r);
  conn *c = calloc(1, sizeof *c);
  if (c == NULL || r->closed) {
    free(c);
    close(fd);
    r->rejected++;
    return;
  }
  c->r = r;
  c->fd = fd;
  bh_frame_reader_init(&c->reader);
  /* A request is small and W3C bounds its trace fields: a client cannot
   * make us hold (or reflect back) more than max_request bytes. */
  bh_frame_reader_limit(&c->reader, r->opts.max_request, "max_request");
  bh_list_insert_head(&r->conns, &c->link);
  r->open_conns++;
  evtimer_assign(&c->timer_ev, r->base, on_conn_deadline, c);
  evtimer_assign(&c->delay_ev, r->base, on_conn_delay, c);
  c->deadline = bh_mono_now() + r->opts.conn_timeout;
  evtimer_add(&c->timer_ev, r->conn_tv);
  if (r->ring != NULL)
    c->us = bh_usock_new(r->ring, fd, URING_RECV_BUF, &conn_usock_ops, c);
  /* The request usually came with the connection: read it now, saving a
   * trip through the loop. On the ring, a receive goes with this pass's
   * submission instead (a prober on the ring has often not sent it yet
   * when its connect woke us: its send is the link after the connect).
   * Last: this may close (even free) r. */
  conn_read(c);
}

/* ---- accepting -------------------------------------------------------- */

/* Accept while open and not paused after a descriptor shortage;
 * otherwise leave new clients in the backlog. The connection cap does not
 * stop accepting: on_accept evicts instead. */
static void responder_update_accepting(bh_responder *r) {
  bool want = r->listen_fd >= 0 && !r->closed && !r->paused;
  if (want == r->listening) return;
  if (want ? event_add(&r->listen_ev, NULL) == 0
           : event_del(&r->listen_ev) == 0)
    r->listening = want;
}

static void on_pause_over(evutil_socket_t fd, short what, void *arg) {
  bh_responder *r = arg;
  r->paused = false;
  responder_update_accepting(r);
}

/* accept4 failed with errnum. Out of descriptors: the pending client
 * stays in the backlog and the listener stays readable, so stop accepting
 * for a moment instead of spinning. Anything else (a client that gave up,
 * ECONNABORTED) concerns that client only. */
static void on_accept_error(bh_responder *r, int errnum) {
  if (errnum != EMFILE && errnum != ENFILE && errnum != ENOBUFS &&
      errnum != ENOMEM)
    return;
  r->paused = true;
  responder_update_accepting(r);
  struct timeval tv = {0, ACCEPT_PAUSE_USEC};
  evtimer_add(&r->pause_ev, &tv);
}

/* The next wake-up's limit, from this one's: it accepted n and found the
 * backlog empty (drained) or used the whole limit. */
static void adapt_accept_limit(bh_responder *r, unsigned n, bool drained) {
  if (drained) {
    r->accept_limit = n > 0 ? n : 1;
    r->accept_streak = 0;
  } else if (++r->accept_streak >= ACCEPT_GROW) {
    r->accept_streak = 0;
    r->accept_limit =
        r->accept_limit * 2 < ACCEPT_BURST ? r->accept_limit * 2 : ACCEPT_BURST;
  }
}

/* The listener is readable. Each connection is handled before the next is
 * accepted; handling one may close the responder (count reached, a hook)
 * or ask for it to be freed, which waits for this loop to end. */
static void on_listen_readable(evutil_socket_t lfd, short what, void *arg) {
  bh_responder *r = arg;
  unsigned n = 0;
  bool drained = false;
  r->in_accept = true;
  while (n < r->accept_limit && !r->closed && !r->paused) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      drained = errno == EAGAIN || errno == EWOULDBLOCK;
      if (!drained) on_accept_error(r, errno);
      break;
    }
    n++;
    on_accept(r, fd);
  }
  r->in_accept = false;
  if (r->free_requested && !r->in_closed_cb) {
    responder_release(r);
    return;
  }
  adapt_accept_limit(r, n, drained);
}

/* ---- binding ---------------------------------------------------------- */

/* Make room at ep->path: absent is fine, a stale socket is removed, a live
 * one or anything that is not a socket is an error. */
static bh_status clear_path(const char *path, bh_err *err) {
  bh_stale_result sr;
  bh_status st = bh_fs_remove_stale_socket(path, &sr, err);
  if (st != BH_OK) return st;
  if (sr.existed && !sr.is_socket)
    return bh_err_set(err, BH_IN_USE, NULL,
                      "%s exists and is %s; it is never removed", path,
                      sr.kind);
  if (sr.live)
    return bh_err_set(err, BH_IN_USE, NULL, "%s already has a live listener",
                      path);
  return BH_OK;
}

/* Bind fd to name in dirfd: through /proc/self/fd/DIRFD/NAME, the
 * directory opened without following symlinks, so that no directory
 * swapped in on the way can move the socket elsewhere; a name too long
 * for that form (sun_path is 108 bytes) is bound by its path. */
static int bind_at(int fd, int dirfd, const char *name, const char *path) {
  struct sockaddr_un sa;
  char via[sizeof sa.sun_path];
  int n = snprintf(via, sizeof via, "/proc/self/fd/%d/%s", dirfd, name);
  bool fits = n >= 0 && (size_t)n < sizeof via;
  (void)bh_sockaddr_un(&sa, fits ? via : path); /* path fits: checked */
  return bind(fd, (struct sockaddr *)&sa, sizeof sa);
}

/* The socket file just bound at name in dirfd: opened O_PATH without
 * following (another user who can write the directory may already have
 * put a symlink in its place), checked to be a socket, given exactly the
 * mode asked for when the umask narrowed it (chmod of the descriptor's
 * own inode through /proc, never of a name), and its inode recorded so
 * that close unlinks only our own file. */
static bh_status own_socket_file(bh_responder *r, bh_err *err) {
  const char *path = r->ep.path;
  struct stat sb;
  int pfd = openat(r->dirfd, r->leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (pfd < 0 || fstat(pfd, &sb) != 0) {
    bh_status st = bh_err_set(err, BH_SYSTEM, NULL, "%s after bind: %s", path,
                              strerror(errno));
    if (pfd >= 0) (void)close(pfd);
    return st;
  }
  bh_status st = BH_OK;
  char via[64];
  (void)snprintf(via, sizeof via, "/proc/self/fd/%d", pfd);
  if (!S_ISSOCK(sb.st_mode)) {
    st = bh_err_set(err, BH_SYSTEM, NULL,
                    "%s was replaced by %s right after bind; left alone", path,
                    bh_file_kind(sb.st_mode));
  } else {
    r->have_inode = true;
    r->dev = sb.st_dev;
    r->ino = sb.st_ino;
    if ((sb.st_mode & 07777) != r->opts.mode && chmod(via, r->opts.mode) != 0)
      st = bh_err_set(err, BH_SYSTEM, NULL, "chmod %s: %s", path,
                      strerror(errno));
  }
  (void)close(pfd);
  return st;
}

/* Bind, set the mode, listen, with no lookup of the path after bind (a
 * user who can write the socket's directory could swap the new file for
 * a symlink to one of root's files, and a chmod of the path would then
 * change that file's mode). The mode is set on the socket before bind, so
 * the file is created with it (less the umask); what comes after goes
 * through the directory's descriptor. Until listen nobody can connect, so
 * nothing is served through a wider mode. */
static bh_status bind_listen(bh_responder *r, int *out_fd, bh_err *err) {
  const char *path = r->ep.path;
  bh_status st = BH_SYSTEM;
  st = bh_fs_open_parent(path, &r->dirfd, &r->leaf, BH_SYSTEM, err);
  if (st != BH_OK) return st;
  st = BH_SYSTEM;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "socket for %s: %s", path,
                      strerror(errno));
  if (fchmod(fd, r->opts.mode) != 0) {
    st = bh_err_set(err, BH_SYSTEM, NULL, "fchmod of the socket for %s: %s",
                    path, strerror(errno));
    goto fail;
  }
  if (bind_at(fd, r->dirfd, r->leaf, path) < 0) {
    st = bh_err_set(err, errno == EADDRINUSE ? BH_IN_USE : BH_SYSTEM, NULL,
                    "bind %s: %s", path, strerror(errno));
    goto fail;
  }
  if (own_socket_file(r, err) != BH_OK) goto fail;
  if (listen(fd, LISTEN_BACKLOG) < 0) {
    st = bh_err_set(err, BH_SYSTEM, NULL, "listen %s: %s", path,
                    strerror(errno));
    goto fail;
  }
  *out_fd = fd;
  return BH_OK;
fail:
  unlink_if_ours(r); /* bound, but not to be served */
  close(fd);
  return st;
}

/* Unlink the socket file only if it is still the one we created, through
 * the directory it was bound in (never a path lookup). */
static void unlink_if_ours(bh_responder *r) {
  struct stat sb;
  if (!r->have_inode) return;
  r->have_inode = false;
  if (fstatat(r->dirfd, r->leaf, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
      sb.st_dev == r->dev && sb.st_ino == r->ino && S_ISSOCK(sb.st_mode))
    (void)unlinkat(r->dirfd, r->leaf, 0);
}

static void responder_release(bh_responder *r) {
  if (r->listen_fd >= 0) (void)close(r->listen_fd); /* never listened */
  if (r->dirfd >= 0) (void)close(r->dirfd);
  bh_endpoint_clear(&r->ep);
  bh_identity_clear(&r->id);
  free(r->id_pb);
  free(r);
}

bh_responder *bh_respond_start(struct event_base *base, const bh_endpoint *ep,
                               const bh_identity *id,
                               const bh_respond_opts *opts, bh_err *err) {
  bh_responder *r = calloc(1, sizeof *r);
  int fd = -1;
  if (r == NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory for a responder");
    return NULL;
  }
  bh_list_init(&r->conns);
  r->base = base;
  r->opts = opts ? *opts : bh_respond_opts_default();
  if (r->opts.mode == 0) r->opts.mode = 0600;
  if (r->opts.conn_timeout <= 0)
    r->opts.conn_timeout = BH_RESPOND_DEFAULT_CONN_TIMEOUT;
  if (r->opts.max_conns == 0) r->opts.max_conns = 1024;
  if (r->opts.max_request == 0)
    r->opts.max_request = BH_RESPOND_DEFAULT_MAX_REQUEST;
  bh_identity_init(&r->id);
  r->listen_fd = -1;
  r->dirfd = -1;
  r->accept_limit = 1;
  evtimer_assign(&r->pause_ev, base, on_pause_over, r);
  /* Every connection gets the same deadline: as a common timeout, adding
   * and removing it is a queue operation, not a heap one. */
  r->conn_tv_plain = bh_timeval(r->opts.conn_timeout);
  r->conn_tv = event_base_init_common_timeout(base, &r->conn_tv_plain);
  if (r->conn_tv == NULL) r->conn_tv = &r->conn_tv_plain;
  if (bh_endpoint_check(ep, err) != BH_OK ||
      bh_endpoint_copy(&r->ep, ep, err) != BH_OK ||
      bh_identity_copy(&r->id, id, err) != BH_OK ||
      bh_identity_encode(&r->id, BH_FORM_ANSWER, &r->id_pb, &r->id_pb_len,
                         err) != BH_OK ||
      clear_path(r->ep.path, err) != BH_OK || bind_listen(r, &fd, err) != BH_OK)
    goto fail;
  r->listen_fd = fd;
  event_assign(&r->listen_ev, base, fd, EV_READ | EV_PERSIST,
               on_listen_readable, r);
  r->ring = bh_loop_ring(base);
  responder_update_accepting(r);
  if (!r->listening) {
    bh_err_set(err, BH_SYSTEM, NULL, "cannot watch the listener of %s",
               r->ep.path);
    unlink_if_ours(r);
    goto fail;
  }
  return r;
fail:
  responder_release(r);
  return NULL;
}

/* ---- closing ---------------------------------------------------------- */

void bh_respond_close(bh_responder *r) {
  if (r == NULL || r->closed) return;
  r->closed = true;
  event_del(&r->pause_ev);
  responder_update_accepting(r);
  (void)close(r->listen_fd); /* a listener: nothing is lost */
  r->listen_fd = -1;
  unlink_if_ours(r);
  /* The connection whose hook is running is freed by conn_handle. */
  bh_list *n = r->conns.next;
  while (n != &r->conns) {
    conn *c = bh_list_entry(n, conn, link);
    n = n->next;
    if (c != r->in_hook) conn_free(c);
  }
  if (r->opts.on_closed) {
    r->in_closed_cb = true;
    r->opts.on_closed(r, r->opts.closed_ctx);
    r->in_closed_cb = false;
    if (r->free_requested && !r->freeing && !r->in_accept) responder_release(r);
  }
}

void bh_respond_free(bh_responder *r) {
  if (r == NULL || r->freeing) return;
  if (r->in_closed_cb) {
    r->free_requested = true; /* released when on_closed returns */
    return;
  }
  if (r->in_accept) {
    bh_respond_close(r);
    r->free_requested = true; /* released when the accept loop ends */
    return;
  }
  r->freeing = true;
  bh_respond_close(r);
  responder_release(r);
}

bool bh_respond_is_closed(const bh_responder *r) {
  return r->closed;
}
uint64_t bh_respond_served(const bh_responder *r) {
  return r->served;
}
uint64_t bh_respond_rejected(const bh_responder *r) {
  return r->rejected;
}
uint64_t bh_respond_evicted(const bh_responder *r) {
  return r->evicted;
}
unsigned bh_respond_open_conns(const bh_responder *r) {
  return r->open_conns;
}
