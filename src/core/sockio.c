/* Unix stream socket helpers (see sockio.h). */
#include "sockio.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

bool bh_sockaddr_un(struct sockaddr_un *sa, const char *path) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (n >= sizeof sa->sun_path) {
    errno = ENAMETOOLONG;
    return false;
  }
  memcpy(sa->sun_path, path, n + 1);
  return true;
}

bh_sock_io bh_sock_send(int fd, const uint8_t *buf, size_t len, size_t *off,
                        size_t step) {
  while (*off < len) {
    size_t left = len - *off;
    ssize_t n = send(fd, buf + *off, step > 0 && step < left ? step : left,
                     MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return BH_SOCK_AGAIN;
    if (n < 0) return BH_SOCK_FAILED;
    *off += (size_t)n;
    if (step > 0 && *off < len) return BH_SOCK_MORE;
  }
  return BH_SOCK_DONE;
}

bh_sock_io bh_sock_take_frame(bh_frame_reader *r, const uint8_t *data, size_t n,
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

bh_sock_io bh_sock_recv_frame(int fd, bh_frame_reader *r, uint8_t *buf,
                              size_t cap, bh_frame_view *f, size_t *got,
                              bh_err *err) {
  for (;;) {
    ssize_t n = recv(fd, buf, cap, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return BH_SOCK_AGAIN;
    if (n < 0) return BH_SOCK_FAILED;
    if (n == 0) return BH_SOCK_EOF;
    *got += (size_t)n;
    bh_sock_io io = bh_sock_take_frame(r, buf, (size_t)n, f, err);
    if (io != BH_SOCK_AGAIN) return io;
  }
}
