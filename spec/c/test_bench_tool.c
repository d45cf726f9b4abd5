/* The benchmark tool works (its figures are never asserted: no timed
 * test): bench_driver's smoke plan runs every pair, the first hashes and
 * both throughput batches, prints every target with a verdict, and writes
 * JSON whose figures are the medians of the per-round figures it also
 * writes. With BH_REFPEER_DIR naming a directory of fake peers (a shell
 * script that speaks the peers' command line and serves with our own
 * responder), the peer pairs are measured; with a directory holding no
 * peers they are reported as not measured, and the run still succeeds.
 * A driver killed mid-run takes its servers with it.
 * Needs BH_BUILD_DIR (set by ctest). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net_helpers.h"
#include "testutil.h"

enum { ROUNDS = 3 }; /* of the driver's smoke plan */

static char driver[4200], bin_dir[4096], host[4200];

/* Start the driver's smoke plan with BH_REFPEER_DIR = refpeer (NULL:
 * unset) and, unless tmpdir is NULL, TMPDIR = tmpdir; its stdout goes to
 * out_path. Returns its pid (or -1). */
static pid_t start_driver(const char *refpeer, const char *tmpdir,
                          const char *out_path, const char *json_path) {
  pid_t pid = fork();
  if (pid == 0) {
    if (freopen(out_path, "w", stdout) == NULL) _exit(126);
    if (tmpdir != NULL) (void)setenv("TMPDIR", tmpdir, 1);
    if (refpeer != NULL)
      (void)setenv("BH_REFPEER_DIR", refpeer, 1);
    else
      (void)unsetenv("BH_REFPEER_DIR");
    execl(driver, driver, "--smoke", bin_dir, host, json_path, (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* Run the smoke plan (as start_driver) to its end; its exit status. */
static int run_driver(const char *refpeer, const char *out_path,
                      const char *json_path) {
  pid_t pid = start_driver(refpeer, NULL, out_path, json_path);
  int status = -1;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *slurp(const char *path) {
  static char buf[1 << 16];
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[n] = '\0';
  if (f) (void)fclose(f);
  return buf;
}

static bool is_num(json_t *j) {
  return json_is_number(j) && isfinite(json_number_value(j));
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Every median of a measured pair is the median of its rounds' figures
 * (the smoke plan has an odd number of rounds: the middle one). */
static void check_medians(json_t *mode, const char *figure) {
  json_t *all = json_object_get(mode, "rounds");
  CHECK_INT(json_array_size(all), ROUNDS);
  double v[ROUNDS];
  for (int i = 0; i < ROUNDS; i++)
    v[i] = json_number_value(json_object_get(json_array_get(all, i), figure));
  qsort(v, ROUNDS, sizeof *v, cmp_double);
  json_t *median = json_object_get(mode, figure);
  CHECK(is_num(median));
  CHECK(json_number_value(median) == v[ROUNDS / 2]);
}

/* A pair measured in both modes, figures from rounds; local pairs (this
 * process is the prober) also have CPU figures of both processes. */
static void check_pair(json_t *pairs, const char *key, bool local) {
  json_t *p = json_object_get(pairs, key);
  CHECK(json_is_true(json_object_get(p, "available")));
  CHECK_INT(json_integer_value(json_object_get(p, "failed")), 0);
  const char *modes[] = {"unpinned", "pinned"};
  for (int m = 0; m < 2; m++) {
    json_t *mode = json_object_get(p, modes[m]);
    CHECK(mode != NULL);
    check_medians(mode, "p50_us");
    check_medians(mode, "p99_us");
    check_medians(mode, "mean_wall_us");
    check_medians(mode, "cpu_prober_us");
    check_medians(mode, "cpu_responder_us");
    check_medians(mode, "cpu_both_us");
    if (local) {
      CHECK(json_number_value(json_object_get(mode, "cpu_prober_us")) > 0);
      CHECK(json_number_value(json_object_get(mode, "cpu_responder_us")) > 0);
      CHECK(is_num(json_object_get(mode, "max_us")));
    }
  }
}

static void check_absent(json_t *pairs, const char *key, const char *why) {
  json_t *p = json_object_get(pairs, key);
  CHECK(json_is_false(json_object_get(p, "available")));
  const char *got = json_string_value(json_object_get(p, "why"));
  CHECK(got != NULL && strstr(got, why) != NULL);
  if (got == NULL || strstr(got, why) == NULL)
    (void)fprintf(stderr, "  %s: why = %s\n", key, got ? got : "(none)");
}

/* Every target is there, printed with its verdict, met true/false/null. */
static void check_targets(json_t *j, const char *out, int unmeasured) {
  json_t *ts = json_object_get(j, "targets");
  CHECK_INT(json_array_size(ts), 19);
  int nulls = 0;
  for (size_t i = 0; i < json_array_size(ts); i++) {
    json_t *t = json_array_get(ts, i), *met = json_object_get(t, "met");
    const char *name = json_string_value(json_object_get(t, "name"));
    CHECK(name != NULL && strstr(out, name) != NULL);
    CHECK(json_is_boolean(met) || json_is_null(met));
    nulls += json_is_null(met);
  }
  CHECK_INT(nulls, unmeasured);
}

static void check_others(json_t *j) {
  json_t *h = json_object_get(j, "hash");
  CHECK(json_number_value(json_object_get(h, "exe_first_us")) > 0);
  CHECK(json_number_value(json_object_get(h, "file_64mib_first_ms")) > 0);
  json_t *loads = json_object_get(j, "throughput");
  CHECK_INT(json_array_size(loads), 4); /* two sizes on each I/O path */
  for (size_t i = 0; i < json_array_size(loads); i++) {
    json_t *l = json_array_get(loads, i);
    CHECK_INT(json_integer_value(json_object_get(l, "failed")), 0);
    CHECK(json_number_value(json_object_get(l, "peak_rss_mib")) > 0);
    CHECK(json_number_value(json_object_get(l, "probes_per_s")) > 0);
    /* beside each, the reference pairs of its path: the interface's
     * floor (on io_uring with a direct descriptor and with socket(2)) */
    const char *io = json_string_value(json_object_get(l, "io"));
    CHECK(io != NULL);
    bool uring = io != NULL && strcmp(io, "uring") == 0;
    json_t *refs = json_object_get(l, "reference_pairs");
    static const char *const clients[] = {"epoll", "uring", "uring-fd"};
    CHECK_INT(json_array_size(refs), uring ? 2 : 1);
    for (size_t k = 0; k < json_array_size(refs); k++) {
      json_t *ref = json_array_get(refs, k);
      CHECK_STR(json_string_value(json_object_get(ref, "client")),
                clients[uring ? 1 + k : 0]);
      CHECK(json_number_value(json_object_get(ref, "wall_s")) > 0);
      CHECK_INT(json_integer_value(json_object_get(ref, "failed")), 0);
    }
  }
  /* Many in flight: ours on each path and the two reference pairs, the
   * CPU of both processes, the medians of their rounds. */
  json_t *many = json_object_get(json_object_get(j, "many_in_flight"), "pairs");
  const char *keys[] = {"ours_e", "ours_u", "epoll", "uring"};
  for (int i = 0; i < 4; i++) {
    json_t *b = json_object_get(many, keys[i]);
    CHECK(json_is_true(json_object_get(b, "available")));
    CHECK_INT(json_integer_value(json_object_get(b, "failed")), 0);
    CHECK(json_number_value(json_object_get(b, "cpu_prober_us")) > 0);
    CHECK(json_number_value(json_object_get(b, "cpu_responder_us")) > 0);
    CHECK(json_number_value(json_object_get(b, "cpu_both_us")) > 0);
    CHECK_INT(json_array_size(json_object_get(b, "rounds")), 1);
  }
}

/* Every pair of ours (on each I/O path) and the reference pairs. */
static void check_our_pairs(json_t *pairs) {
  static const char *const keys[] = {
      "ours_e", "ours_u", "raw",   "epoll",      "uring",      "uring_fd",
      "full_e", "full_u", "lua_e", "lua_full_e", "lua_full_u", "lua_u"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    check_pair(pairs, keys[i], true);
}

/* Load the JSON a run wrote; NULL (and a failure) if it is not there. */
static json_t *load_json(const char *path) {
  json_error_t e;
  json_t *j = json_load_file(path, 0, &e);
  CHECK(j != NULL);
  if (j == NULL) (void)fprintf(stderr, "  %s: %s\n", path, e.text);
  return j;
}

static const char *peer_keys[] = {"rp410", "rp41", "ours_rp410", "ours_rp41",
                                  "rp410_ours"};

/* No BH_REFPEER_DIR: our pairs only; the peers' two targets unmeasured. */
static void test_smoke_without_peers(void) {
  char out[256], js[256];
  bh_test_path(out, sizeof out, "plain.out");
  bh_test_path(js, sizeof js, "plain.json");
  CHECK_INT(run_driver(NULL, out, js), 0);
  json_t *j = load_json(js);
  if (j == NULL) return;
  json_t *pairs = json_object_get(j, "pairs");
  check_our_pairs(pairs);
  for (int i = 0; i < 5; i++)
    check_absent(pairs, peer_keys[i], "BH_REFPEER_DIR is not set");
  CHECK_INT(
      json_integer_value(json_object_get(json_object_get(j, "plan"), "rounds")),
      ROUNDS);
  check_others(j);
  check_targets(j, slurp(out), 4); /* the rp 4.10.6 ratios, twice */
  json_decref(j);
}

/* A directory without the peers: their pairs are not measured, and why. */
static void test_smoke_with_missing_peers(void) {
  char out[256], js[256], dir[256];
  bh_test_path(dir, sizeof dir, "nopeers");
  CHECK(mkdir(dir, 0700) == 0);
  bh_test_path(out, sizeof out, "missing.out");
  bh_test_path(js, sizeof js, "missing.json");
  CHECK_INT(run_driver(dir, out, js), 0);
  json_t *j = load_json(js);
  if (j == NULL) return;
  json_t *pairs = json_object_get(j, "pairs");
  check_pair(pairs, "ours_u", true);
  check_absent(pairs, "rp410", "did not start");
  check_absent(pairs, "rp41", "did not start");
  check_absent(pairs, "ours_rp410", "connect");
  check_absent(pairs, "rp410_ours", "cannot run");
  check_targets(j, slurp(out), 4); /* the rp 4.10.6 ratios, twice */
  json_decref(j);
}

/* A fake peer: the peers' command line; `respond` serves with our own
 * responder (exec'd, so the pid the driver holds is the server) and
 * writes its identity file once that listens; `bench` prints fixed
 * figures, which the driver must report as they are. */
static void write_fake_peer(const char *dir, const char *name) {
  char path[512];
  (void)snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f == NULL) return;
  (void)fprintf(
      f,
      "#!/bin/sh\n"
      "case \"$1\" in\n"
      "respond)\n"
      "  fifo=\"$7.fifo\"; mkfifo \"$fifo\" || exit 1\n"
      "  (read -r line < \"$fifo\"; echo '{}' > \"$7.tmp\"; mv \"$7.tmp\" "
      "\"$7\"; rm -f \"$fifo\") &\n"
      "  exec '%s/bench_responder' \"$3\" > \"$fifo\" ;;\n"
      "bench) echo p50_us=123; echo p90_us=456; echo p99_us=789 ;;\n"
      "*) exit 2 ;;\n"
      "esac\n",
      bin_dir);
  CHECK(fclose(f) == 0);
  CHECK(chmod(path, 0755) == 0);
}

static void check_fixed(json_t *pairs, const char *key) {
  json_t *m = json_object_get(json_object_get(pairs, key), "unpinned");
  CHECK(json_number_value(json_object_get(m, "p50_us")) == 123);
  CHECK(json_number_value(json_object_get(m, "p90_us")) == 456);
  CHECK(json_number_value(json_object_get(m, "p99_us")) == 789);
  CHECK(json_is_null(json_object_get(m, "max_us")));
}

/* With (fake) peers every pair is measured and every target decided. */
static void test_smoke_with_fake_peers(void) {
  char out[256], js[256], dir[256];
  bh_test_path(dir, sizeof dir, "fakepeers");
  CHECK(mkdir(dir, 0700) == 0);
  write_fake_peer(dir, "rplatest");
  write_fake_peer(dir, "rp41");
  bh_test_path(out, sizeof out, "fake.out");
  bh_test_path(js, sizeof js, "fake.json");
  CHECK_INT(run_driver(dir, out, js), 0);
  json_t *j = load_json(js);
  if (j == NULL) return;
  json_t *pairs = json_object_get(j, "pairs");
  check_pair(pairs, "rp410", false);
  check_pair(pairs, "rp41", false);
  check_pair(pairs, "rp410_ours", false);
  check_pair(pairs, "ours_rp410", true);
  check_pair(pairs, "ours_rp41", true);
  check_fixed(pairs, "rp410");
  check_fixed(pairs, "rp410_ours");
  CHECK_STR(json_string_value(json_object_get(j, "refpeer_dir")), dir);
  check_targets(j, slurp(out), 0);
  json_decref(j);
}

/* The run directory (TMPDIR/bhb.XXXXXX) of a driver once its raw server
 * listens, into run; false if none appeared within 30 s. */
static bool wait_run_dir(const char *tmp, char *run, size_t cap) {
  for (int i = 0; i < 15000; i++) {
    DIR *d = opendir(tmp);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
      struct stat st;
      (void)snprintf(run, cap, "%.200s/%.40s/raw.sock", tmp, e->d_name);
      if (strncmp(e->d_name, "bhb.", 4) == 0 && stat(run, &st) == 0) {
        (void)snprintf(run, cap, "%.200s/%.40s", tmp, e->d_name);
        (void)closedir(d);
        return true;
      }
    }
    if (d != NULL) (void)closedir(d);
    (void)usleep(2000);
  }
  return false;
}

/* Does something still accept at dir/name? */
static bool accepts(const char *dir, const char *name) {
  char path[108];
  (void)snprintf(path, sizeof path, "%.90s/%.16s", dir, name);
  int fd = connect_raw(path);
  if (fd >= 0) (void)close(fd);
  return fd >= 0;
}

/* A driver killed in the middle of its run leaves no server behind: they
 * die with it (and would otherwise keep their CPU and sockets forever). */
static void test_killed_driver_takes_its_servers(void) {
  char tmp[256], out[256], js[256], run[512];
  bh_test_path(tmp, sizeof tmp, "killed");
  CHECK(mkdir(tmp, 0700) == 0);
  bh_test_path(out, sizeof out, "killed.out");
  bh_test_path(js, sizeof js, "killed.json");
  pid_t pid = start_driver(NULL, tmp, out, js);
  CHECK(pid > 0);
  bool started = pid > 0 && wait_run_dir(tmp, run, sizeof run);
  CHECK(started);
  int status = 0;
  if (pid > 0) {
    (void)kill(pid, SIGKILL);
    CHECK(waitpid(pid, &status, 0) == pid);
  }
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  if (!started) return;
  bool gone = false;
  for (int i = 0; i < 500 && !gone; i++) { /* generous: 10 s */
    gone = !accepts(run, "ours-epoll.sock") &&
           !accepts(run, "ours-uring.sock") && !accepts(run, "raw.sock");
    if (!gone) (void)usleep(20000);
  }
  CHECK(gone);
}

int main(void) {
  const char *bd = getenv("BH_BUILD_DIR");
  if (bd == NULL || strlen(bd) > 2048) {
    printf("  SKIP: BH_BUILD_DIR not set (run through ctest)\n");
    return 0;
  }
  (void)snprintf(bin_dir, sizeof bin_dir, "%.2048s/spec/bench", bd);
  (void)snprintf(driver, sizeof driver, "%s/bench_driver", bin_dir);
  (void)snprintf(host, sizeof host, "%.2048s/bhprobe-lua", bd);
  RUN(test_smoke_without_peers);
  RUN(test_smoke_with_missing_peers);
  RUN(test_smoke_with_fake_peers);
  RUN(test_killed_driver_takes_its_servers);
  return bh_test_summary();
}
