/* The reference servers of the benchmark (never a test): the least a
 * server can do for the same bytes as ours, without validation, on each
 * event interface, so that ours is measured against the limit of its I/O
 * path and not only against blocking calls. For each connection: read
 * one request frame (header, then body), write REPLY_SIZE bytes, close.
 *  - epoll: a level-triggered listener; each accepted connection is read
 *    at once, and added to the epoll set (once, removed by the close)
 *    only when its request has not come yet; no timers.
 *  - uring: a multishot accept armed on the listener; each connection's
 *    receive, then its send linked to its close, on the ring; one
 *    io_uring_enter per batch (submit and wait).
 * Prints "ready" once it listens; serves until killed.
 * Usage: bench_ref_server epoll|uring PATH REPLY_SIZE */
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { MAX_REQUEST = 1024, EVENTS = 256 };

static uint8_t *reply;
static size_t reply_len;

/* A connection: what it has of its request. */
typedef struct conn {
  int fd;
  size_t got;
  uint8_t buf[MAX_REQUEST + 5];
} conn;

static _Noreturn void die(const char *what) {
  (void)fprintf(stderr, "bench_ref_server: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Has c a whole request frame? */
static int whole(const conn *c) {
  if (c->got < 5) return 0;
  uint32_t len = (uint32_t)c->buf[1] | (uint32_t)c->buf[2] << 8 |
                 (uint32_t)c->buf[3] << 16 | (uint32_t)c->buf[4] << 24;
  return len <= MAX_REQUEST && c->got >= 5 + (size_t)len;
}

static int listener(const char *path) {
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  (void)snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (unlink(path) != 0 && errno != ENOENT) die("unlink");
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      listen(lfd, 4096) < 0)
    die("listen");
  return lfd;
}

/* ---- epoll ----------------------------------------------------------------
 */

/* Read what is there; answer and close once the request is whole. False
 * when the connection is over (answered or gone). */
static int epoll_read(conn *c) {
  for (;;) {
    ssize_t n = recv(c->fd, c->buf + c->got, sizeof c->buf - c->got, 0);
    if (n < 0 && errno == EAGAIN) return 1;
    if (n <= 0) break;
    c->got += (size_t)n;
    if (whole(c)) {
      (void)send(c->fd, reply, reply_len, MSG_NOSIGNAL);
      break;
    }
    if (c->got == sizeof c->buf) break;
  }
  (void)close(c->fd); /* leaves the epoll set with it */
  free(c);
  return 0;
}

static void serve_epoll(int lfd) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll");
  struct epoll_event evs[EVENTS];
  for (;;) {
    int n = epoll_wait(ep, evs, EVENTS, -1);
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c != NULL) {
        (void)epoll_read(c);
        continue;
      }
      for (int k = 0; k < 64; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        c = calloc(1, sizeof *c);
        if (c == NULL) die("calloc");
        c->fd = fd;
        if (!epoll_read(c)) continue;
        struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) die("epoll_ctl");
      }
    }
  }
}

/* ---- io_uring --------------------------------------------------------------
 */

/* user_data: the connection (receive), the connection | 1 (send), 0 (the
 * accept: multishot), 2 (closes: nothing to do). */
enum { UD_ACCEPT = 0, UD_CLOSE = 2 };

static struct io_uring_sqe *sqe_of(struct io_uring *ring) {
  struct io_uring_sqe *s = io_uring_get_sqe(ring);
  if (s == NULL) {
    (void)io_uring_submit(ring);
    s = io_uring_get_sqe(ring);
  }
  if (s == NULL) die("io_uring_get_sqe");
  return s;
}

static void arm_accept(struct io_uring *ring, int lfd) {
  struct io_uring_sqe *s = sqe_of(ring);
  io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, UD_ACCEPT);
}

static void arm_recv(struct io_uring *ring, conn *c) {
  struct io_uring_sqe *s = sqe_of(ring);
  io_uring_prep_recv(s, c->fd, c->buf + c->got, sizeof c->buf - c->got, 0);
  io_uring_sqe_set_data(s, c);
}

static void close_now(struct io_uring *ring, conn *c) {
  struct io_uring_sqe *s = sqe_of(ring);
  io_uring_prep_close(s, c->fd);
  io_uring_sqe_set_data64(s, UD_CLOSE);
  s->flags |= IOSQE_CQE_SKIP_SUCCESS;
  free(c);
}

static void answer(struct io_uring *ring, conn *c) {
  if (io_uring_sq_space_left(ring) < 2) (void)io_uring_submit(ring);
  struct io_uring_sqe *s = sqe_of(ring);
  io_uring_prep_send(s, c->fd, reply, reply_len, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)c | 1);
  s->flags |= IOSQE_IO_LINK;
  s = sqe_of(ring);
  io_uring_prep_close(s, c->fd);
  io_uring_sqe_set_data64(s, UD_CLOSE);
  s->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void completion(struct io_uring *ring, int lfd, uint64_t ud, int res,
                       unsigned flags) {
  if (ud == UD_CLOSE) return;
  if (ud == UD_ACCEPT) {
    if (!(flags & IORING_CQE_F_MORE)) arm_accept(ring, lfd);
    if (res < 0) return;
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) die("calloc");
    c->fd = res;
    arm_recv(ring, c);
    return;
  }
  conn *c = (conn *)(uintptr_t)(ud & ~(uint64_t)1);
  if (ud & 1) { /* the send: its linked close took the socket */
    if (res != (int)reply_len)
      close_now(ring, c); /* the close was not run */
    else
      free(c);
    return;
  }
  if (res <= 0) {
    close_now(ring, c);
    return;
  }
  c->got += (size_t)res;
  if (whole(c))
    answer(ring, c);
  else if (c->got == sizeof c->buf)
    close_now(ring, c);
  else
    arm_recv(ring, c);
}

static void serve_uring(int lfd) {
  struct io_uring ring;
  struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE, .cq_entries = 8192};
  int rc = io_uring_queue_init_params(256, &ring, &p);
  if (rc < 0) {
    errno = -rc;
    die("io_uring_setup");
  }
  arm_accept(&ring, lfd);
  for (;;) {
    (void)io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *cqe;
    unsigned head;
    io_uring_for_each_cqe(&ring, head, cqe) {
      uint64_t ud = cqe->user_data;
      int res = cqe->res;
      unsigned flags = cqe->flags;
      io_uring_cq_advance(&ring, 1); /* the callback may submit */
      completion(&ring, lfd, ud, res, flags);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 4 ||
      (strcmp(argv[1], "epoll") != 0 && strcmp(argv[1], "uring") != 0)) {
    (void)fprintf(stderr,
                  "usage: bench_ref_server epoll|uring PATH REPLY_SIZE\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  reply_len = strtoul(argv[3], NULL, 10);
  reply = calloc(1, reply_len ? reply_len : 1);
  if (reply == NULL) die("calloc");
  int lfd = listener(argv[2]);
  if (printf("ready\n") < 0 || fflush(stdout) != 0) return 1;
  if (strcmp(argv[1], "epoll") == 0)
    serve_epoll(lfd);
  else
    serve_uring(lfd);
  return 0;
}
