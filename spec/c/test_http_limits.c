/* The HTTP endpoint of the real bhprobe-lua host against what anyone who
 * reaches its port can do (docs/hostile-peers.md, "A local user against
 * the service", rows of --listen): floods of idle connections at the
 * descriptor limit, accepts that fail for lack of descriptors, slowloris
 * requests, /probe requests abandoned by their clients. The host runs in
 * its own process (its descriptor limit set as the shipped unit sets it),
 * the attackers in forked children; every figure is measured from
 * outside (/proc, the host's stderr, HTTP answers).
 *
 * BH_LONG_FLOODS=1 adds the figures of the issue at full size: 8,000
 * slowloris connections trickling a byte every 20 s, 45 s. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child_helpers.h"
#include "testutil.h"

/* ---- the host ------------------------------------------------------------ */

typedef struct host {
  pid_t pid;
  int port;
  char err_path[128];
  char stop_path[128];
} host;

/* Start bhprobe-lua (args: NULL-terminated, after the program) with
 * RLIMIT_NOFILE nofile; its first stdout line must be "at HOST:PORT". */
static bool host_start(host *h, rlim_t nofile, const char *const *args) {
  char bin[512];
  const char *build = getenv("BH_BUILD_DIR");
  (void)snprintf(bin, sizeof bin, "%s/bhprobe-lua", build ? build : ".");
  bh_test_path(h->err_path, sizeof h->err_path, "host.err");
  bh_test_path(h->stop_path, sizeof h->stop_path, "stop");
  (void)unlink(h->stop_path);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return false;
  h->pid = fork();
  if (h->pid == 0) {
    struct rlimit rl = {nofile, nofile};
    int efd = open(h->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || efd < 0 || dup2(out[1], 1) < 0 ||
        dup2(efd, 2) < 0 || chdir(bh_test_tmpdir()))
      _exit(127);
    const char *argv[16] = {bin};
    for (int i = 0; args[i] != NULL && i < 14; i++)
      argv[i + 1] = args[i];
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(out[1]);
  char line[128] = {0};
  size_t got = 0;
  while (got < sizeof line - 1 && memchr(line, '\n', got) == NULL &&
         ch_read_within(out[0], line + got, 1, 10))
    got++;
  close(out[0]);
  char *colon = strrchr(line, ':');
  h->port = colon != NULL && strncmp(line, "at ", 3) == 0 ? atoi(colon + 1) : 0;
  if (h->port <= 0) {
    fprintf(stderr, "  host did not say where it listens: '%s'\n", line);
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    return false;
  }
  return true;
}

/* Let the host's script end (it waits for the stop file), or kill it;
 * returns its exit status (-1 when it had to be killed). */
static int host_stop(host *h) {
  int fd = open(h->stop_path, O_WRONLY | O_CREAT, 0600);
  if (fd >= 0) close(fd);
  int ws = 0;
  for (int i = 0; i < 200; i++) {
    if (waitpid(h->pid, &ws, WNOHANG) == h->pid)
      return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    usleep(50000);
  }
  kill(h->pid, SIGKILL);
  waitpid(h->pid, &ws, 0);
  return -1;
}

static long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Open descriptors of pid. */
static int fd_count(pid_t pid) {
  char path[64];
  (void)snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (d == NULL) return -1;
  int n = 0;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n - 2;
}

/* CPU seconds pid has used (user + system). */
static double cpu_seconds(pid_t pid) {
  char path[64], buf[1024];
  (void)snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (p == NULL || sscanf(p + 2,
                          "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                          "%lu %lu",
                          &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- clients ------------------------------------------------------------- */

static int tcp_connect(int port, bool nonblock) {
  int fd = socket(
      AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

/* GET path and return the status code of the answer (within max_s), or
 * -1; body (may be NULL) gets the start of the body. */
static int http_get(int port, const char *path, double max_s, char *body,
                    size_t cap) {
  int fd = tcp_connect(port, false);
  if (fd < 0) return -1;
  struct timeval tv = {(time_t)max_s,
                       (suseconds_t)((max_s - (int)max_s) * 1e6)};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  char req[512], buf[4096];
  int n =
      snprintf(req, sizeof req,
               "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
  size_t got = 0;
  if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
    ssize_t r;
    while (got < sizeof buf - 1 &&
           (r = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
      got += (size_t)r;
  }
  close(fd);
  buf[got] = '\0';
  int code = -1;
  if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1) code = -1;
  const char *b = strstr(buf, "\r\n\r\n");
  if (body != NULL) (void)snprintf(body, cap, "%s", b != NULL ? b + 4 : "");
  return code;
}

/* ---- attackers (forked children) --------------------------------------- */

/* What a flood saw, reported by the flooder child. */
typedef struct flood_report {
  int opened;          /* connections that got established */
  int closed;          /* ... that the host closed */
  int open_at_end;     /* still open when the flood ended */
  double longest_life; /* seconds from open to the host's close (max) */
} flood_report;

typedef struct flood_spec {
  int port, n;
  double seconds;
  double trickle; /* > 0: send one request byte every trickle seconds */
} flood_spec;

/* Open spec->n connections and hold them for spec->seconds, trickling a
 * request one byte at a time when asked; never reconnect. */
static void flooder(void *arg, int wfd) {
  const flood_spec *spec = arg;
  static const char req[] =
      "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Slow: "
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  struct rlimit rl = {(rlim_t)spec->n + 64, (rlim_t)spec->n + 64};
  (void)setrlimit(RLIMIT_NOFILE, &rl);
  struct pollfd *p = calloc((size_t)spec->n, sizeof *p);
  double *born = calloc((size_t)spec->n, sizeof *born);
  size_t *sent = calloc((size_t)spec->n, sizeof *sent);
  flood_report rep = {0};
  double start = bh_test_now(), next_byte = start;
  for (int i = 0; i < spec->n; i++) {
    /* in batches, so that the host's backlog (128) is not what delays
     * them: a dropped SYN comes back only a second later */
    if (i % 100 == 99) usleep(20000);
    p[i].fd = tcp_connect(spec->port, true);
    p[i].events = POLLIN;
    born[i] = bh_test_now();
    if (p[i].fd >= 0) rep.opened++;
  }
  while (bh_test_now() - start < spec->seconds) {
    double now = bh_test_now();
    if (spec->trickle > 0 && now >= next_byte) {
      for (int i = 0; i < spec->n; i++)
        if (p[i].fd >= 0 && sent[i] < sizeof req - 1 &&
            send(p[i].fd, req + sent[i], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
          sent[i]++;
      next_byte = now + spec->trickle;
    }
    if (poll(p, (nfds_t)spec->n, 50) <= 0) continue;
    for (int i = 0; i < spec->n; i++) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      char b[512];
      ssize_t r = recv(p[i].fd, b, sizeof b, MSG_DONTWAIT);
      if (r > 0 || (r < 0 && errno == EAGAIN)) continue;
      double life = bh_test_now() - born[i];
      if (life > rep.longest_life) rep.longest_life = life;
      rep.closed++;
      close(p[i].fd);
      p[i].fd = -1;
    }
  }
  for (int i = 0; i < spec->n; i++)
    if (p[i].fd >= 0) {
      rep.open_at_end++;
      double life = bh_test_now() - born[i];
      if (life > rep.longest_life) rep.longest_life = life;
    }
  ch_report(wfd, &rep, sizeof rep);
}

/* ---- the host's scripts -------------------------------------------------- */

/* Says where the host's --listen is, then waits for the stop file. */
static const char host_waits[] =
    "print('at ' .. bh.options.listen_address) io.stdout:flush() "
    "while not io.open('stop') do bh.sleep(0.05) end";

/* row 4: 1,100 idle connections against a host whose descriptor limit is
 * the shipped unit's (1024). Before: evhttp took connections until
 * accept failed with EMFILE, then spun on the listener (79 % of a core),
 * logging each failure (124.7 MB of stderr). Now at most 64 are kept,
 * the rest evicted, and /-/healthy answers throughout. */
static void test_idle_flood_at_the_descriptor_limit(void) {
  host h;
  const char *args[] = {"--listen", "127.0.0.1:0", "-e", host_waits, NULL};
  if (!host_start(&h, 1024, args)) {
    CHECK(false);
    return;
  }
  flood_spec spec = {h.port, 1100, 4.0, 0};
  int rfd;
  pid_t fl = ch_spawn(flooder, &spec, &rfd);
  CHECK(fl > 0);
  usleep(1000000); /* the flood is in place */
  double cpu0 = cpu_seconds(h.pid), t0 = bh_test_now();
  int healthy = 0, most_fds = 0;
  for (int i = 0; i < 20; i++) {
    if (http_get(h.port, "/-/healthy", 1.0, NULL, 0) == 200) healthy++;
    int n = fd_count(h.pid);
    if (n > most_fds) most_fds = n;
    usleep(100000);
  }
  double cpu = (cpu_seconds(h.pid) - cpu0) / (bh_test_now() - t0);
  flood_report rep = {0};
  CHECK(ch_collect(fl, rfd, &rep, sizeof rep, 30));
  CHECK_INT(host_stop(&h), 0);
  long err_bytes = file_size(h.err_path);
  printf(
      "  idle flood: %d connections, %d closed by the host; /-/healthy "
      "%d of 20; host %.0f %% of a core, at most %d descriptors, %ld "
      "bytes of stderr\n",
      rep.opened, rep.closed, healthy, cpu * 100, most_fds, err_bytes);
  CHECK(rep.opened >= 1000);
  CHECK(healthy >= 19);
  CHECK(most_fds <= 64 + 32); /* the cap, and what the host has besides */
  CHECK(cpu <= 0.25);
  CHECK(err_bytes >= 0 && err_bytes <= 4096);
}

/* row 4: accepting when the host has no descriptor left (its script holds
 * them all). Before: libevent retried at once on every wake-up, logging
 * "Error from accept() call: Too many open files" each time. Now the
 * listener pauses (10 ms, doubling to 1 s), a few lines are logged, and
 * once descriptors are free again the endpoint answers. */
static void test_accept_errors_back_off(void) {
  host h;
  static const char script[] =
      "print('at ' .. bh.options.listen_address) io.stdout:flush() "
      "local held, release = {}, bh.now() + 4 " /* no descriptor is left */
      "while bh.now() < release do "            /* to look for a file */
      "  local f = io.open('/dev/null') if f then held[#held + 1] = f end "
      "  bh.sleep(f and 0 or 0.05) end "
      "for _, f in ipairs(held) do f:close() end held = nil "
      "while not io.open('stop') do bh.sleep(0.05) end";
  const char *args[] = {"--listen", "127.0.0.1:0", "-e", script, NULL};
  if (!host_start(&h, 128, args)) {
    CHECK(false);
    return;
  }
  usleep(500000); /* the script has taken every descriptor */
  flood_spec spec = {h.port, 50, 3.0, 0};
  int rfd;
  pid_t fl = ch_spawn(flooder, &spec, &rfd);
  usleep(500000);
  double cpu0 = cpu_seconds(h.pid), t0 = bh_test_now();
  usleep(2000000);
  double cpu = (cpu_seconds(h.pid) - cpu0) / (bh_test_now() - t0);
  long err_bytes = file_size(h.err_path);
  flood_report rep = {0};
  CHECK(ch_collect(fl, rfd, &rep, sizeof rep, 30));
  int code = -1; /* the script lets its descriptors go 4 s after start */
  for (int i = 0; i < 50 && code != 200; i++) {
    usleep(100000);
    code = http_get(h.port, "/-/healthy", 2.0, NULL, 0);
  }
  CHECK_INT(host_stop(&h), 0);
  printf(
      "  out of descriptors: host %.0f %% of a core over 2 s of a flood "
      "of %d, %ld bytes of stderr; /-/healthy %d once freed\n",
      cpu * 100, rep.opened, err_bytes, code);
  CHECK(cpu <= 0.25);
  CHECK(err_bytes >= 0 && err_bytes <= 4096);
  CHECK_INT(code, 200);
}

/* row 5: slowloris. A server of bh.metrics.serve with request_timeout 1
 * (the host's --listen has 10 s: BH_LONG_FLOODS measures that one) and
 * 300 clients trickling one request byte every 0.3 s: each is closed
 * within its deadline, never more than 64 are open at once. Before: no
 * deadline for a whole request (the idle timeout restarts with every
 * byte): open for as long as the client likes. */
static void slowloris(bool full) {
  host h;
  static const char serve[] =
      "local s = bh.metrics.serve{listen = '127.0.0.1:0', request_timeout = 1} "
      "print('at ' .. s.address) io.stdout:flush() "
      "while not io.open('stop') do bh.sleep(0.05) end";
  const char *args_short[] = {"-e", serve, NULL};
  const char *args_full[] = {"--listen", "127.0.0.1:0", "-e", host_waits, NULL};
  if (!host_start(&h, 1024, full ? args_full : args_short)) {
    CHECK(false);
    return;
  }
  flood_spec spec = {h.port, full ? 8000 : 300, full ? 45.0 : 3.0,
                     full ? 20.0 : 0.3};
  int rfd;
  pid_t fl = ch_spawn(flooder, &spec, &rfd);
  int most_fds = 0, healthy = 0, asked = 0;
  double end = bh_test_now() + spec.seconds - 0.5;
  while (bh_test_now() < end) {
    int n = fd_count(h.pid);
    if (n > most_fds) most_fds = n;
    asked++;
    if (http_get(h.port, "/-/healthy", 1.0, NULL, 0) == 200) healthy++;
    usleep(200000);
  }
  flood_report rep = {0};
  CHECK(ch_collect(fl, rfd, &rep, sizeof rep, spec.seconds + 30));
  char status[256];
  (void)snprintf(status, sizeof status, "/proc/%d/status", (int)h.pid);
  long hwm = -1;
  FILE *f = fopen(status, "re");
  char line[256];
  while (f != NULL && fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &hwm) == 1) break;
  if (f != NULL) fclose(f);
  CHECK_INT(host_stop(&h), 0);
  double deadline = full ? 10.0 : 1.0;
  printf(
      "  slowloris (%d clients, a byte every %.1f s, %.0f s): %d closed, "
      "%d open at the end, longest open %.1f s (deadline %.0f s); at most "
      "%d descriptors; /-/healthy %d of %d; peak RSS %.1f MiB\n",
      rep.opened, spec.trickle, spec.seconds, rep.closed, rep.open_at_end,
      rep.longest_life, deadline, most_fds, healthy, asked, hwm / 1024.0);
  CHECK(rep.opened >= spec.n * 9 / 10);
  CHECK(rep.longest_life <= deadline + 1.0);
  CHECK(most_fds <= 64 + 32);
  CHECK(healthy >= asked * 9 / 10);
}

static void test_slowloris(void) {
  slowloris(false);
  if (getenv("BH_LONG_FLOODS") != NULL) slowloris(true);
}

/* row 6: 40 /probe requests whose clients leave at once, then 8 good
 * ones. Before: the 40 kept the 8 slots (max_probes) until their probes
 * ended, and the good ones got 503. Now each abandoned request gives its
 * slot back and its probe task is cancelled. */
static void test_abandoned_probes(void) {
  host h;
  static const char serve[] =
      "local active = 0 "
      "local s = bh.metrics.serve{listen = '127.0.0.1:0', max_probes = 8, "
      "  probe = function(path) "
      "    if path:match('^/count/') then return nil, 'active ' .. active, 404 "
      "    end "
      "    active = active + 1 "
      "    local _ <close> = setmetatable({}, {__close = function() "
      "      active = active - 1 end}) "
      "    bh.sleep(2) "
      "    return {verdict = 'verified', service = 's', elapsed_ms = 1, "
      "            endpoint = {namespace_id = 'n', path = '/p.sock'}} "
      "  end} "
      "print('at ' .. s.address) io.stdout:flush() "
      "while not io.open('stop') do bh.sleep(0.05) end";
  const char *args[] = {"-e", serve, NULL};
  if (!host_start(&h, 1024, args)) {
    CHECK(false);
    return;
  }
  static const char req[] =
      "GET /probe?manifest=/a/.running-process-manifest.pb HTTP/1.1\r\n"
      "Host: t\r\n\r\n";
  for (int i = 0; i < 40; i++) { /* send, and go away at once */
    int fd = tcp_connect(h.port, false);
    if (fd >= 0 && send(fd, req, sizeof req - 1, MSG_NOSIGNAL) > 0) {
      usleep(2000);
      close(fd);
    } else if (fd >= 0) {
      close(fd);
    }
  }
  usleep(300000);
  char body[256] = "";
  int code =
      http_get(h.port, "/probe?manifest=/count/.running-process-manifest.pb",
               2.0, body, sizeof body);
  int running = -1;
  if (code == 404) (void)sscanf(body, "active %d", &running);
  /* 8 good requests at once, each in a child */
  pid_t kids[8];
  for (int i = 0; i < 8; i++) {
    kids[i] = fork();
    if (kids[i] == 0)
      _exit(http_get(h.port, "/probe?manifest=/a/.running-process-manifest.pb",
                     8.0, NULL, 0) == 200
                ? 0
                : 1);
  }
  int ok = 0;
  for (int i = 0; i < 8; i++) {
    int ws = 0;
    if (kids[i] > 0 && waitpid(kids[i], &ws, 0) == kids[i] && WIFEXITED(ws) &&
        WEXITSTATUS(ws) == 0)
      ok++;
  }
  CHECK_INT(host_stop(&h), 0);
  printf(
      "  40 /probe requests abandoned: %d probes still running after "
      "0.3 s; then %d of 8 good requests answered 200\n",
      running, ok);
  CHECK_INT(running, 0);
  CHECK_INT(ok, 8);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(test_idle_flood_at_the_descriptor_limit);
  RUN(test_accept_errors_back_off);
  RUN(test_slowloris);
  RUN(test_abandoned_probes);
  return bh_test_summary();
}
