/* The figures that are not rounds of a pair: the first (uncached) hash of
 * our executable and of a 64 MiB file (both digests), and throughput (many
 * probes in flight, each batch in a fresh bench_load process). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "digest.h"

/* Median of reps uncached digests of path (SHA-256 and BLAKE3 in one
 * pass, as an identity of a live process takes them), in seconds. The
 * file was just written or read, so this is the CPU cost of hashing, not
 * of the disk. */
static double hash_seconds(const char *path, int reps) {
  double s[BENCH_MAX_ROUNDS];
  for (int r = 0; r < reps && r < BENCH_MAX_ROUNDS; r++) {
    bh_digests d;
    bh_err err;
    double t0 = bench_now();
    if (bh_digest_file_uncached(path, BH_ALGS_ALL, &d, &err) != BH_OK)
      bench_die("%s", err.message);
    s[r] = bench_now() - t0;
  }
  return bench_median(s, reps < BENCH_MAX_ROUNDS ? reps : BENCH_MAX_ROUNDS);
}

static void write_big(const char *path, int mib) {
  static uint8_t chunk[1 << 20];
  for (size_t i = 0; i < sizeof chunk; i++)
    chunk[i] = (uint8_t)(i * 2654435761u >> 13);
  FILE *out = fopen(path, "wb");
  if (out == NULL) bench_die("cannot create %s", path);
  for (int i = 0; i < mib; i++)
    if (fwrite(chunk, 1, sizeof chunk, out) != sizeof chunk)
      bench_die("cannot write %s", path);
  if (fclose(out) != 0) bench_die("cannot write %s", path);
}

void bench_hashes(const char *exe_path, const char *dir, int reps,
                  bench_hash *out) {
  enum { BIG_MIB = 64 };
  struct stat st;
  if (stat(exe_path, &st) != 0) bench_die("%s: %s", exe_path, strerror(errno));
  (void)snprintf(out->exe_path, sizeof out->exe_path, "%s", exe_path);
  out->exe_bytes = (double)st.st_size;
  out->exe_us = hash_seconds(exe_path, reps) * 1e6;
  char big[4096];
  (void)snprintf(big, sizeof big, "%s/big.bin", dir);
  write_big(big, BIG_MIB);
  out->big_ms = hash_seconds(big, reps) * 1e3;
  if (unlink(big) != 0) bench_die("unlink %s", big);
}

/* One bench_load run; false when it did not report. */
static bool load_once(const char *load_bin, const char *path,
                      const char *id_file, bench_load *l, double *wall,
                      long *failed, double *rss_kib, char *error,
                      size_t error_cap) {
  char total[16], in_flight[16], line[512];
  (void)snprintf(total, sizeof total, "%d", l->total);
  (void)snprintf(in_flight, sizeof in_flight, "%d", l->in_flight);
  char *const argv[] = {(char *)load_bin, (char *)path,    total,
                        in_flight,        (char *)id_file, NULL};
  if (bench_capture(argv, line, sizeof line) != 0) return false;
  char *p = line, *end;
  *wall = strtod(p, &end);
  if (end == p) return false;
  *failed = strtol(p = end, &end, 10);
  *rss_kib = strtod(end, &end);
  l->nofile = strtol(end, &end, 10);
  (void)snprintf(error, error_cap, "%.*s", (int)strcspn(end + 1, "\n"),
                 *end ? end + 1 : "");
  return *end == ' ';
}

/* One run of the reference pair: its wall time, NAN when it did not
 * report; its failures added to *failed. */
static double ref_once(char *const *argv, int *failed) {
  char line[512], *end;
  if (bench_capture(argv, line, sizeof line) != 0) return NAN;
  double wall = strtod(line, &end);
  if (end == line) return NAN;
  *failed += (int)strtol(end, NULL, 10);
  return wall;
}

/* out->runs batches of out->total probes, out->in_flight at a time, each
 * followed by one of each reference client: medians of wall time and peak
 * RSS, failures summed. */
void bench_throughput(const char *load_bin, const char *path,
                      const char *id_file, char *const *const *ref_argv,
                      bench_load *out) {
  double wall[BENCH_MAX_ROUNDS] = {0}, rss[BENCH_MAX_ROUNDS] = {0},
         ref_wall[BENCH_MAX_REFS][BENCH_MAX_ROUNDS] = {{0}};
  int runs = out->runs < BENCH_MAX_ROUNDS ? out->runs : BENCH_MAX_ROUNDS;
  int nrefs = out->nrefs < BENCH_MAX_REFS ? out->nrefs : BENCH_MAX_REFS;
  out->failed = 0;
  (void)snprintf(out->first_error, sizeof out->first_error, "-");
  for (int k = 0; k < nrefs; k++)
    out->ref_failed[k] = 0;
  for (int r = 0; r < runs; r++) {
    long failed = 0;
    double kib = 0;
    char e[200];
    if (!load_once(load_bin, path, id_file, out, &wall[r], &failed, &kib, e,
                   sizeof e))
      bench_die("bench_load did not report (%d probes, %d in flight)",
                out->total, out->in_flight);
    rss[r] = kib / 1024.0;
    if (failed > 0 && out->failed == 0)
      (void)snprintf(out->first_error, sizeof out->first_error, "%s", e);
    out->failed += (int)failed;
    for (int k = 0; k < nrefs; k++)
      ref_wall[k][r] = ref_once(ref_argv[k], &out->ref_failed[k]);
  }
  out->wall_s = bench_median(wall, runs);
  out->rate = out->total / out->wall_s;
  out->rss_mib = bench_median(rss, runs);
  for (int k = 0; k < nrefs; k++) {
    bool ok = true;
    for (int r = 0; r < runs; r++)
      ok = ok && !isnan(ref_wall[k][r]);
    out->ref_wall_s[k] = ok ? bench_median(ref_wall[k], runs) : NAN;
  }
}

/* ---- many in flight ------------------------------------------------------ */

/* One run of b's prober in a fresh process: its CPU from wait4, the
 * responder's from its CPU clock around it. */
void bench_batch_round(bench_batch *b, int round, const char *bin_dir,
                       int total, int in_flight, const char *req_hex,
                       size_t reply_len) {
  /* ours compares each answer with the responder's identity */
  char bin[4096], tot[16], inf[16], reply[32], line[512];
  (void)snprintf(tot, sizeof tot, "%d", total);
  (void)snprintf(inf, sizeof inf, "%d", in_flight);
  (void)snprintf(reply, sizeof reply, "%zu", reply_len);
  char *const ours[] = {bin, (char *)b->path,    tot,
                        inf, (char *)b->id_file, NULL};
  char *const ref[] = {bin,
                       (char *)bench_io_name(b->uring),
                       (char *)b->path,
                       (char *)req_hex,
                       reply,
                       tot,
                       inf,
                       NULL};
  (void)snprintf(bin, sizeof bin, "%s/%s", bin_dir,
                 b->ours ? "bench_load" : "bench_ref_load");
  struct rusage ru;
  double r0 = bench_cpu_of(b->responder);
  int st = bench_capture_ru(b->ours ? ours : ref, line, sizeof line, &ru);
  double rcpu = bench_cpu_of(b->responder) - r0;
  char *end;
  double wall = strtod(line, &end);
  long failed = strtol(end, &end, 10);
  if (st != 0 || end == line) {
    b->available = false;
    (void)snprintf(b->why, sizeof b->why, "%.100s exited %d: %.100s", bin, st,
                   line);
    return;
  }
  b->failed += (int)failed;
  b->prober[round] = bench_rusage_seconds(&ru) * 1e6 / total;
  b->responder_cpu[round] = rcpu * 1e6 / total;
  b->both[round] = b->prober[round] + b->responder_cpu[round];
  b->wall[round] = wall;
}

void bench_batch_medians(bench_batch *b, int rounds) {
  b->med_prober = bench_median(b->prober, rounds);
  b->med_responder = bench_median(b->responder_cpu, rounds);
  b->med_both = bench_median(b->both, rounds);
  b->med_wall = bench_median(b->wall, rounds);
}
