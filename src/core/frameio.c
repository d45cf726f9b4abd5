/* Frames received on a socket (see frameio.h). */
#include "frameio.h"

#include <errno.h>
#include <sys/socket.h>

bh_sock_io bh_frame_take(bh_frame_reader *r, const uint8_t *data, size_t n,
                         bh_frame_view *f, bh_err *err) {
  size_t used = 0;
  const uint8_t *body;
  switch (bh_frame_reader_take(r, data, n, &used, &body, err)) {
    case BH_READ_ERROR:
      return BH_SOCK_BAD_FRAME;
    case BH_READ_DONE:
      f->body = body;
      f->len = r->body_len;
      return BH_SOCK_DONE;
    default:
      return BH_SOCK_AGAIN;
  }
}

bh_sock_io bh_frame_recv(int fd, bh_frame_reader *r, uint8_t *buf, size_t cap,
                         bh_frame_view *f, size_t *got, bh_err *err) {
  for (;;) {
    ssize_t n = recv(fd, buf, cap, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return BH_SOCK_AGAIN;
    if (n < 0) return BH_SOCK_FAILED;
    if (n == 0) return BH_SOCK_EOF;
    *got += (size_t)n;
    bh_sock_io io = bh_frame_take(r, buf, (size_t)n, f, err);
    if (io != BH_SOCK_AGAIN) return io;
  }
}
