/* Pairs of the real running-process peers (BH_REFPEER_DIR/rp41, rplatest):
 * their `respond` (one connection at a time, until --count) probed by
 * their `bench --identity FILE -n N --response-only`, which warms up by
 * itself and prints only p50_us, p90_us and p99_us. Everything else is
 * measured from outside: per round the client runs twice, with -n 1 and
 * with -n N, and the difference of the two runs' wall time and CPU time
 * (of the client, from wait4, and of the responder, from its CPU clock)
 * divided by N - 1 is the cost of one probe, start-up and warm-up
 * subtracted. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* Point fd at /dev/null in a child; false if it cannot. */
static bool to_null(int fd) {
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  return null >= 0 && dup2(null, fd) >= 0;
}

/* Start PROG respond at sock, writing its identity to id_file once it
 * listens (its log goes to /dev/null: the cheapest place for it). Returns
 * the pid, or -1 when it did not come up within 10 s. */
pid_t bench_rp_respond(const char *prog, const char *sock,
                       const char *id_file) {
  if (unlink(id_file) != 0 && errno != ENOENT) bench_die("unlink %s", id_file);
  pid_t parent = getpid(), pid = fork();
  if (pid < 0) bench_die("fork: %s", strerror(errno));
  if (pid == 0) {
    bench_die_with_parent(parent);
    if (!to_null(STDIN_FILENO) || !to_null(STDOUT_FILENO) ||
        !to_null(STDERR_FILENO))
      _exit(127);
    execl(prog, prog, "respond", "--socket", sock, "--count", "1000000000",
          "--identity-out", id_file, (char *)NULL);
    _exit(127);
  }
  struct stat st;
  for (int i = 0; i < 1000; i++) {
    if (stat(id_file, &st) == 0) return pid;
    if (waitpid(pid, NULL, WNOHANG) == pid) return -1;
    (void)usleep(10000);
  }
  bench_stop(pid);
  return -1;
}

/* One run of the peer's bench client. */
typedef struct rp_run {
  bool ok;
  double wall, cpu, rcpu; /* seconds: client's wall and CPU, responder's */
  double p50, p90, p99;   /* as the client printed them, us */
  char out[200];          /* its first line (the error when !ok) */
} rp_run;

static void rp_parse(char *text, rp_run *r) {
  (void)snprintf(r->out, sizeof r->out, "%.*s", (int)strcspn(text, "\n"), text);
  char *p50 = strstr(text, "p50_us="), *p90 = strstr(text, "p90_us="),
       *p99 = strstr(text, "p99_us=");
  r->ok = r->ok && p50 && p90 && p99;
  if (r->ok) {
    r->p50 = strtod(p50 + 7, NULL);
    r->p90 = strtod(p90 + 7, NULL);
    r->p99 = strtod(p99 + 7, NULL);
  }
}

static pid_t rp_spawn(const bench_pair *p, int n, const cpu_set_t *set,
                      int out_fd) {
  char count[16];
  (void)snprintf(count, sizeof count, "%d", n);
  pid_t parent = getpid(), pid = fork();
  if (pid < 0) bench_die("fork: %s", strerror(errno));
  if (pid == 0) {
    bench_die_with_parent(parent);
    if (sched_setaffinity(0, sizeof *set, set) != 0 ||
        dup2(out_fd, STDOUT_FILENO) < 0 || !to_null(STDERR_FILENO))
      _exit(127);
    execl(p->client, p->client, "bench", "--identity", p->id_file, "-n", count,
          "--response-only", (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* Run the client for n probes on the CPUs of set; wall time counts from
 * before fork to after its exit. */
static void rp_client(const bench_pair *p, int n, const cpu_set_t *set,
                      rp_run *r) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) bench_die("pipe: %s", strerror(errno));
  double rcpu0 = bench_cpu_of(p->responder), t0 = bench_now();
  pid_t pid = rp_spawn(p, n, set, pfd[1]);
  (void)close(pfd[1]);
  char text[1024];
  size_t len = 0;
  ssize_t got;
  while ((got = read(pfd[0], text + len, sizeof text - 1 - len)) > 0)
    len += (size_t)got;
  text[len] = '\0';
  (void)close(pfd[0]);
  int status;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) != pid) bench_die("wait4");
  r->wall = bench_now() - t0;
  r->rcpu = bench_cpu_of(p->responder) - rcpu0;
  r->cpu = bench_rusage_seconds(&ru);
  r->ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  rp_parse(text, r);
  if (!r->ok && r->out[0] == '\0')
    (void)snprintf(r->out, sizeof r->out, "cannot run %s (status %d)",
                   p->client, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* The pair of client (a peer program) and the responder process whose
 * identity file is id_file (a peer's respond, or ours). One short run
 * decides whether the pair works at all. */
void bench_pair_rp(bench_pair *p, const char *key, const char *label,
                   const char *client, const char *id_file, pid_t responder) {
  *p = (bench_pair){.key = key,
                    .label = label,
                    .kind = BENCH_RP,
                    .responder = responder,
                    .client = client,
                    .id_file = id_file};
  if (responder <= 0) {
    (void)snprintf(p->why, sizeof p->why, "its responder did not start");
    return;
  }
  cpu_set_t mine;
  if (sched_getaffinity(0, sizeof mine, &mine) != 0)
    bench_die("sched_getaffinity: %s", strerror(errno));
  rp_run r;
  rp_client(p, 1, &mine, &r);
  p->available = r.ok;
  if (!r.ok) (void)snprintf(p->why, sizeof p->why, "%s", r.out);
}

/* A round: the client with -n 1, then with -n plan->probes. */
void bench_round_rp(bench_pair *p, const bench_plan *plan, int mode,
                    bench_round *out) {
  cpu_set_t one;
  bench_cpu_only(plan->cpu, &one);
  const cpu_set_t *set = mode == BENCH_PINNED ? &one : &plan->unpinned;
  rp_run base, run;
  rp_client(p, 1, set, &base);
  rp_client(p, plan->probes, set, &run);
  if (!base.ok || !run.ok) {
    p->failed++;
    *out = (bench_round){.p50 = NAN,
                         .p90 = NAN,
                         .p99 = NAN,
                         .max = NAN,
                         .mean = NAN,
                         .cpu_prober = NAN,
                         .cpu_responder = NAN};
    return;
  }
  double n = plan->probes - 1;
  *out = (bench_round){.p50 = run.p50,
                       .p90 = run.p90,
                       .p99 = run.p99,
                       .max = NAN,
                       .mean = (run.wall - base.wall) * 1e6 / n,
                       .cpu_prober = (run.cpu - base.cpu) * 1e6 / n,
                       .cpu_responder = (run.rcpu - base.rcpu) * 1e6 / n};
}
