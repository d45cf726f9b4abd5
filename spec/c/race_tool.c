/* An attacker's tools for spec/attack_spec.lua (built with the tests, run
 * by them; not a test itself):
 *   race_tool sock PATH
 *       leave a stale socket file at PATH (bound, never listening)
 *   race_tool exchange SECONDS A B [A B ...]
 *       swap each pair of names (renameat2 RENAME_EXCHANGE) as fast as it
 *       can for SECONDS: a directory and a symlink to a victim trade places
 *   race_tool swap SECONDS INTERVAL_MS A B
 *       the same for one pair, once every INTERVAL_MS
 *   race_tool plant SECONDS NAME TARGET
 *       for SECONDS, whenever NAME (in the working directory) exists, swap
 *       a symlink to TARGET in for it (RENAME_EXCHANGE) and remove what
 *       came out: a file root has just created there (a socket right
 *       after bind) becomes a symlink before root's next look at NAME
 *   race_tool rewrite PATH FROM DELAY_US
 *       after DELAY_US, replace PATH atomically with the bytes of FROM (a
 *       temp file in the same directory, then rename), as a daemon
 *       re-registering itself does
 *   race_tool hold HOST:PORT N SECONDS
 *       open N idle TCP connections to HOST:PORT (IPv4) and hold them for
 *       SECONDS, printing how many connected: a user filling a service's
 *       descriptor table from outside */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int make_stale_socket(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return 2;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    perror(path);
    return 1;
  }
  return close(fd) == 0 ? 0 : 1;
}

static int exchange(double seconds, int n, char **names) {
  double end = now() + seconds;
  long swaps = 0;
  while (now() < end) {
    for (int i = 0; i + 1 < n; i += 2)
      if (renameat2(AT_FDCWD, names[i], AT_FDCWD, names[i + 1],
                    RENAME_EXCHANGE) == 0)
        swaps++;
  }
  printf("%ld swaps\n", swaps);
  return 0;
}

static int swap_every(double seconds, double interval_ms, const char *a,
                      const char *b) {
  double end = now() + seconds;
  long swaps = 0;
  struct timespec d = {
      (time_t)(interval_ms / 1000),
      (long)((interval_ms / 1000 - (double)(time_t)(interval_ms / 1000)) *
             1e9)};
  while (now() < end) {
    if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0) swaps++;
    (void)nanosleep(&d, NULL);
  }
  printf("%ld swaps\n", swaps);
  return 0;
}

static int plant(double seconds, const char *name, const char *target) {
  static const char spare[] = ".race_tool-link";
  double end = now() + seconds;
  long swaps = 0;
  while (now() < end) {
    if (symlink(target, spare) != 0 && errno != EEXIST) {
      perror(spare);
      return 1;
    }
    if (renameat2(AT_FDCWD, spare, AT_FDCWD, name, RENAME_EXCHANGE) == 0) {
      swaps++;
      (void)unlink(spare); /* what root created, now under the spare name */
    }
  }
  printf("%ld swaps\n", swaps);
  return 0;
}

static int rewrite(const char *path, const char *from, long delay_us) {
  char buf[65536], tmp[4096];
  int in = open(from, O_RDONLY);
  ssize_t n = in >= 0 ? read(in, buf, sizeof buf) : -1;
  if (in >= 0) (void)close(in);
  if (n < 0) {
    perror(from);
    return 1;
  }
  (void)snprintf(tmp, sizeof tmp, "%s.daemon-tmp", path);
  int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0 || write(out, buf, (size_t)n) != n || close(out) != 0) {
    perror(tmp);
    return 1;
  }
  struct timespec d = {delay_us / 1000000, (delay_us % 1000000) * 1000};
  (void)nanosleep(&d, NULL);
  if (rename(tmp, path) != 0) {
    perror(path);
    return 1;
  }
  return 0;
}

static int hold(const char *addr, int n, double seconds) {
  char host[64];
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || (size_t)(colon - addr) >= sizeof host) return 2;
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)atoi(colon + 1))};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return 2;
  int ok = 0;
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
      ok++;
    else
      (void)close(fd);
  }
  printf("%d connected\n", ok);
  (void)fflush(stdout);
  struct timespec d = {(time_t)seconds,
                       (long)((seconds - (double)(time_t)seconds) * 1e9)};
  (void)nanosleep(&d, NULL);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "sock") == 0)
    return make_stale_socket(argv[2]);
  if (argc >= 5 && strcmp(argv[1], "exchange") == 0 && argc % 2 == 1)
    return exchange(atof(argv[2]), argc - 3, argv + 3);
  if (argc == 6 && strcmp(argv[1], "swap") == 0)
    return swap_every(atof(argv[2]), atof(argv[3]), argv[4], argv[5]);
  if (argc == 5 && strcmp(argv[1], "plant") == 0)
    return plant(atof(argv[2]), argv[3], argv[4]);
  if (argc == 5 && strcmp(argv[1], "rewrite") == 0)
    return rewrite(argv[2], argv[3], atol(argv[4]));
  if (argc == 5 && strcmp(argv[1], "hold") == 0)
    return hold(argv[2], atoi(argv[3]), atof(argv[4]));
  (void)fprintf(stderr, "usage: see the comment at the top of race_tool.c\n");
  return 2;
}
