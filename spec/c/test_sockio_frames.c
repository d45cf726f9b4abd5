/* The socket helpers of src/core/sockio.c on real socketpairs: a send
 * that fills the socket stops with AGAIN and finishes later, a trickle
 * sends one step per call, a frame split over many writes is received
 * whole, and EOF, a framing error and a too-long path are told apart. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frameio.h"
#include "sockio.h"
#include "testutil.h"

static void nonblocking_pair(int sv[2]) {
  CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

static void test_sockaddr(void) {
  struct sockaddr_un sa;
  CHECK(bh_sockaddr_un(&sa, "/run/x.sock"));
  CHECK_INT(sa.sun_family, AF_UNIX);
  CHECK_STR(sa.sun_path, "/run/x.sock");
  char fits[sizeof sa.sun_path], too_long[sizeof sa.sun_path + 1];
  memset(fits, 'a', sizeof fits - 1);
  fits[sizeof fits - 1] = '\0';
  CHECK(bh_sockaddr_un(&sa, fits));
  memset(too_long, 'a', sizeof too_long - 1);
  too_long[sizeof too_long - 1] = '\0';
  errno = 0;
  CHECK(!bh_sockaddr_un(&sa, too_long));
  CHECK_INT(errno, ENAMETOOLONG);
}

/* More than a socket buffer holds: AGAIN with *off where it stopped, the
 * rest sent once the peer reads; all bytes arrive in order. */
static void test_send_fills_then_finishes(void) {
  int sv[2];
  nonblocking_pair(sv);
  size_t len = 4 << 20;
  uint8_t *buf = malloc(len), *in = malloc(len);
  CHECK(buf != NULL && in != NULL);
  if (buf == NULL || in == NULL) return;
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t)(i * 7);
  size_t off = 0, got = 0;
  CHECK_INT(bh_sock_send(sv[0], buf, len, &off, 0), BH_SOCK_AGAIN);
  CHECK(off > 0 && off < len);
  bh_sock_io io = BH_SOCK_AGAIN;
  while (io == BH_SOCK_AGAIN) {
    ssize_t n = read(sv[1], in + got, len - got);
    if (n > 0) got += (size_t)n;
    io = bh_sock_send(sv[0], buf, len, &off, 0);
  }
  CHECK_INT(io, BH_SOCK_DONE);
  CHECK_INT(off, len);
  while (got < len) {
    ssize_t n = read(sv[1], in + got, len - got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  CHECK_INT(got, len);
  CHECK(memcmp(buf, in, len) == 0);
  close(sv[0]);
  close(sv[1]);
  free(buf);
  free(in);
}

static void test_send_trickle_and_closed_peer(void) {
  int sv[2];
  nonblocking_pair(sv);
  const uint8_t msg[] = "abc";
  size_t off = 0;
  CHECK_INT(bh_sock_send(sv[0], msg, 3, &off, 1), BH_SOCK_MORE);
  CHECK_INT(off, 1);
  CHECK_INT(bh_sock_send(sv[0], msg, 3, &off, 1), BH_SOCK_MORE);
  CHECK_INT(bh_sock_send(sv[0], msg, 3, &off, 1), BH_SOCK_DONE);
  CHECK_INT(off, 3);
  close(sv[1]);
  off = 0;
  /* No SIGPIPE (it would end this test): EPIPE instead. */
  errno = 0;
  CHECK_INT(bh_sock_send(sv[0], msg, 3, &off, 0), BH_SOCK_FAILED);
  CHECK_INT(errno, EPIPE);
  close(sv[0]);
}

static size_t frame(uint8_t *out, const char *body) {
  size_t n = strlen(body);
  bh_frame_header((uint32_t)n, out);
  memcpy(out + BH_FRAME_HEADER_LEN, body, n);
  return BH_FRAME_HEADER_LEN + n;
}

static void test_recv_split_frame_eof_and_garbage(void) {
  int sv[2];
  nonblocking_pair(sv);
  uint8_t f[64];
  size_t len = frame(f, "hello");
  bh_frame_reader r;
  bh_frame_reader_init(&r);
  size_t got = 0;
  bh_err err;
  uint8_t buf[64];
  bh_frame_view v = {NULL, 0};
#define RECV() bh_frame_recv(sv[1], &r, buf, sizeof buf, &v, &got, &err)
  CHECK_INT(RECV(), BH_SOCK_AGAIN);
  for (size_t i = 0; i + 1 < len; i++) {
    CHECK_INT(write(sv[0], f + i, 1), 1);
    CHECK_INT(RECV(), BH_SOCK_AGAIN);
  }
  CHECK_INT(write(sv[0], f + len - 1, 1), 1);
  CHECK_INT(RECV(), BH_SOCK_DONE);
  CHECK_INT(got, len);
  CHECK_INT(v.len, 5);
  CHECK(v.body == r.body); /* it came in pieces: in the reader */
  CHECK(memcmp(v.body, "hello", 5) == 0);
  bh_frame_reader_free(&r);

  /* A whole frame in one read is taken where it was read: no copy. */
  bh_frame_reader_init(&r);
  got = 0;
  CHECK_INT(write(sv[0], f, len), (long long)len);
  CHECK_INT(RECV(), BH_SOCK_DONE);
  CHECK_INT(v.len, 5);
  CHECK(v.body == buf + BH_FRAME_HEADER_LEN);
  CHECK(r.body == NULL);
  CHECK(memcmp(v.body, "hello", 5) == 0);
  bh_frame_reader_free(&r);

  /* Half a frame, then the peer closes. */
  bh_frame_reader_init(&r);
  got = 0;
  CHECK_INT(write(sv[0], f, 3), 3);
  close(sv[0]);
  CHECK_INT(RECV(), BH_SOCK_EOF);
  CHECK_INT(got, 3);
  bh_frame_reader_free(&r);
  close(sv[1]);

  /* A wrong version byte is the frame reader's error, not the socket's. */
  nonblocking_pair(sv);
  bh_frame_reader_init(&r);
  f[0] = 9;
  CHECK_INT(write(sv[0], f, len), (long long)len);
  CHECK_INT(RECV(), BH_SOCK_BAD_FRAME);
#undef RECV
  bh_frame_reader_free(&r);
  close(sv[0]);
  close(sv[1]);
}

int main(void) {
  RUN(test_sockaddr);
  RUN(test_send_fills_then_finishes);
  RUN(test_send_trickle_and_closed_peer);
  RUN(test_recv_split_frame_eof_and_garbage);
  return bh_test_summary();
}
