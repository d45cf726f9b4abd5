/* Helpers of the benchmark driver: clocks, statistics, child processes,
 * CPU time of another process, CPU affinity, the machine line. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

double bench_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) bench_die("clock_gettime");
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)fprintf(stderr, "bench_driver: ");
  (void)vfprintf(stderr, fmt, ap);
  (void)fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of v[0..n), nearest rank; sorts v. */
double bench_quantile(double *v, int n, double q) {
  if (n <= 0) return NAN;
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[(int)(q * (n - 1) + 0.5)];
}

void bench_round_figures(bench_round *out, int probes, double wall, double cpu,
                         double rcpu, double *lat, int n) {
  out->mean = wall * 1e6 / probes;
  out->cpu_prober = cpu * 1e6 / probes;
  out->cpu_responder = rcpu * 1e6 / probes;
  out->p50 = bench_quantile(lat, n, 0.50);
  out->p90 = bench_quantile(lat, n, 0.90);
  out->p99 = bench_quantile(lat, n, 0.99);
  out->max = n > 0 ? lat[n - 1] : NAN;
}

const bench_figure bench_figures[BENCH_FIGURES] = {
    {"p50", "p50_us", offsetof(bench_round, p50)},
    {"p90", "p90_us", offsetof(bench_round, p90)},
    {"p99", "p99_us", offsetof(bench_round, p99)},
    {"max", "max_us", offsetof(bench_round, max)},
    {"mean wall per probe", "mean_wall_us", offsetof(bench_round, mean)},
    {"CPU per probe, prober", "cpu_prober_us",
     offsetof(bench_round, cpu_prober)},
    {"CPU per probe, responder", "cpu_responder_us",
     offsetof(bench_round, cpu_responder)},
    {"CPU per probe, both", "cpu_both_us", offsetof(bench_round, cpu_both)},
};

double bench_figure_of(const bench_round *r, int figure) {
  return *(const double *)((const char *)r + bench_figures[figure].off);
}

/* The median of the figures of v that are known (not NAN). */
double bench_median(const double *v, int n) {
  double known[BENCH_MAX_ROUNDS];
  int k = 0;
  for (int i = 0; i < n && k < BENCH_MAX_ROUNDS; i++)
    if (!isnan(v[i])) known[k++] = v[i];
  if (k == 0) return NAN;
  qsort(known, (size_t)k, sizeof *known, cmp_double);
  return k % 2 ? known[k / 2] : (known[k / 2 - 1] + known[k / 2]) / 2;
}

/* In a child just forked from parent: die (SIGTERM) when the driver
 * does, however it ends, so that no server outlives a killed or crashed
 * run. The mark survives exec. */
void bench_die_with_parent(pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(127);
}

/* Start argv as a child (dying with us) whose stdout is a pipe; *out is
 * the pipe's read end. */
static pid_t spawn_piped(char *const argv[], int *out) {
  int pfd[2];
  pid_t parent = getpid();
  if (pipe(pfd) < 0) bench_die("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) bench_die("fork: %s", strerror(errno));
  if (pid == 0) {
    bench_die_with_parent(parent);
    if (dup2(pfd[1], STDOUT_FILENO) < 0) _exit(127);
    (void)close(pfd[0]);
    (void)close(pfd[1]);
    execv(argv[0], argv);
    _exit(127);
  }
  (void)close(pfd[1]);
  *out = pfd[0];
  return pid;
}

/* Start argv as a child whose stdout is a pipe, and wait for its "ready"
 * line (every benchmark server of ours prints one once it listens). */
pid_t bench_spawn_ready(char *const argv[]) {
  int fd;
  pid_t pid = spawn_piped(argv, &fd);
  char line[16] = {0};
  ssize_t n = read(fd, line, sizeof line - 1);
  (void)close(fd);
  if (n <= 0 || strncmp(line, "ready", 5) != 0)
    bench_die("%s did not start", argv[0]);
  return pid;
}

/* Run argv to its end with its stdout read into out (NUL-terminated);
 * returns its exit status, or -1 when it did not exit normally. */
int bench_capture(char *const argv[], char *out, size_t cap) {
  int fd;
  pid_t pid = spawn_piped(argv, &fd);
  size_t len = 0;
  ssize_t n;
  while (len + 1 < cap && (n = read(fd, out + len, cap - 1 - len)) > 0)
    len += (size_t)n;
  out[len] = '\0';
  (void)close(fd);
  int status;
  if (waitpid(pid, &status, 0) != pid) bench_die("waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int bench_capture_ru(char *const argv[], char *out, size_t cap,
                     struct rusage *ru) {
  int fd;
  pid_t pid = spawn_piped(argv, &fd);
  size_t len = 0;
  ssize_t n;
  while (len + 1 < cap && (n = read(fd, out + len, cap - 1 - len)) > 0)
    len += (size_t)n;
  out[len] = '\0';
  (void)close(fd);
  int status;
  if (wait4(pid, &status, 0, ru) != pid) bench_die("wait4");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void bench_with_io(bool uring, void (*fn)(void *arg), void *arg) {
  const char *was = getenv("BH_IO");
  char saved[16] = "";
  if (was != NULL) (void)snprintf(saved, sizeof saved, "%s", was);
  if (setenv("BH_IO", bench_io_name(uring), 1) != 0) bench_die("setenv");
  fn(arg);
  if (was != NULL ? setenv("BH_IO", saved, 1) : unsetenv("BH_IO"))
    bench_die("setenv");
}

const char *bench_io_name(bool uring) {
  return uring ? "uring" : "epoll";
}

void bench_stop(pid_t pid) {
  if (pid <= 0) return;
  if (kill(pid, SIGTERM) != 0) bench_die("kill: %s", strerror(errno));
  if (waitpid(pid, NULL, 0) < 0) bench_die("waitpid: %s", strerror(errno));
}

double bench_rusage_seconds(const struct rusage *ru) {
  return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
         (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
}

/* CPU seconds (user + system) this process has used. */
double bench_cpu_self(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) bench_die("getrusage");
  return bench_rusage_seconds(&ru);
}

/* CPU seconds (user + system, every thread) of a live process. Its
 * process CPU clock counts in nanoseconds, where /proc/PID/stat counts in
 * ticks of 10 ms, too coarse for a round of a few hundred probes. */
double bench_cpu_of(pid_t pid) {
  clockid_t clk;
  struct timespec ts;
  if (clock_getcpuclockid(pid, &clk) != 0 || clock_gettime(clk, &ts) != 0)
    bench_die("cannot read the CPU clock of pid %d", (int)pid);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Set the affinity of every thread of pid (0: this process). A thread
 * started later inherits the mask of the thread that starts it. */
void bench_set_affinity(pid_t pid, const cpu_set_t *set) {
  char dir[64];
  (void)snprintf(dir, sizeof dir, "/proc/%d/task", pid ? (int)pid : getpid());
  DIR *d = opendir(dir);
  if (d == NULL) bench_die("%s: %s", dir, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    pid_t tid = (pid_t)strtol(e->d_name, NULL, 10);
    if (tid > 0 && sched_setaffinity(tid, sizeof *set, set) != 0 &&
        errno != ESRCH)
      bench_die("sched_setaffinity(%d): %s", (int)tid, strerror(errno));
  }
  (void)closedir(d);
}

void bench_cpu_only(int cpu, cpu_set_t *set) {
  CPU_ZERO(set);
  CPU_SET(cpu, set);
}

/* "2 cores, AMD EPYC, Linux 6.1.0": what the figures were measured on. */
void bench_machine(char *buf, size_t cap) {
  char model[128] = "unknown CPU", line[256];
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
      (void)snprintf(model, sizeof model, "%s", colon + 2);
      model[strcspn(model, "\n")] = '\0';
      break;
    }
  }
  if (f != NULL) (void)fclose(f);
  struct utsname u;
  if (uname(&u) != 0) bench_die("uname");
  (void)snprintf(buf, cap, "%ld cores, %s, %s %s",
                 sysconf(_SC_NPROCESSORS_ONLN), model, u.sysname, u.release);
}

/* The three load averages of /proc/loadavg. */
void bench_loadavg(char *buf, size_t cap) {
  char line[128] = "";
  FILE *f = fopen("/proc/loadavg", "r");
  bool ok = f != NULL && fgets(line, sizeof line, f) != NULL;
  if (f != NULL) (void)fclose(f);
  /* "0.52 0.58 0.59 1/467 12345": the first three fields */
  char *end = line;
  for (int i = 0; ok && i < 3; i++)
    end = strchr(end + 1, ' ');
  if (!ok || end == NULL)
    (void)snprintf(buf, cap, "unknown");
  else
    (void)snprintf(buf, cap, "%.*s", (int)(end - line), line);
}
