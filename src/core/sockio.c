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
