/* The raw baseline server: plain blocking syscalls, no validation. For
 * each connection: accept, read one request frame (header, then body),
 * write REPLY_SIZE bytes, close. Usage: bench_raw_server PATH REPLY_SIZE */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Read exactly n bytes; false on EOF or error. */
static int read_full(int fd, uint8_t *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0) return 0;
    got += (size_t)r;
  }
  return 1;
}

static void serve_one(int cfd, const uint8_t *reply, size_t reply_len) {
  uint8_t buf[4096];
  if (!read_full(cfd, buf, 5)) return;
  uint32_t len = (uint32_t)buf[1] | (uint32_t)buf[2] << 8 |
                 (uint32_t)buf[3] << 16 | (uint32_t)buf[4] << 24;
  if (len > sizeof buf || !read_full(cfd, buf, len)) return;
  if (write(cfd, reply, reply_len) != (ssize_t)reply_len)
    perror("bench_raw_server: write");
}

int main(int argc, char **argv) {
  if (argc != 3) {
    (void)fprintf(stderr, "usage: bench_raw_server PATH REPLY_SIZE\n");
    return 2;
  }
  size_t reply_len = strtoul(argv[2], NULL, 10);
  uint8_t *reply = calloc(1, reply_len ? reply_len : 1);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  (void)snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[1]);
  if (unlink(argv[1]) != 0 && errno != ENOENT) {
    perror("bench_raw_server: unlink");
    return 1;
  }
  if (reply == NULL || lfd < 0 ||
      bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      listen(lfd, 4096) < 0) {
    perror("bench_raw_server");
    return 1;
  }
  if (printf("ready\n") < 0 || fflush(stdout) != 0) return 1;
  for (;;) {
    int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd < 0) continue;
    serve_one(cfd, reply, reply_len);
    if (close(cfd) != 0) perror("bench_raw_server: close");
  }
}
