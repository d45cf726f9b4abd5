/* Shared pieces of the benchmark driver (run by scripts/bench, never a
 * timed test): the plan of a run, the figures of one round, the pairs
 * (a prober and a responder process) and the helpers every measurement
 * uses. Figures are in microseconds unless a name says otherwise; a figure
 * that a pair cannot give is NAN (printed "-", written as JSON null). */
#ifndef BH_BENCH_H
#define BH_BENCH_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "identity.h"

enum {
  BENCH_MAX_ROUNDS = 64,
  BENCH_MAX_PROBES = 5000,
  BENCH_MAX_PAIRS = 12,
  BENCH_MAX_LOADS = 2,
  BENCH_UNPINNED = 0,
  BENCH_PINNED = 1, /* both processes of the pair on one CPU */
  BENCH_MODES = 2
};

/* How much to measure: `rounds` rounds per pair and mode, each of
 * `warmup` unmeasured then `probes` measured sequential probes. */
typedef struct bench_plan {
  const char *name; /* "full", "quick" or "smoke" */
  int rounds, probes, warmup;
  int hash_reps;
  struct {
    int total, in_flight, runs;
  } loads[BENCH_MAX_LOADS];
  int cpu;            /* the CPU of the pinned mode */
  cpu_set_t unpinned; /* the CPUs the driver started with */
} bench_plan;

/* The figures of one round of one pair. cpu_* are per probe; cpu_both is
 * their sum, so that its median is the median of the rounds' sums. */
typedef struct bench_round {
  double p50, p90, p99, max, mean;
  double cpu_prober, cpu_responder, cpu_both;
} bench_round;

/* The figures of a round, in table order: the label the table prints, the
 * key bench.json uses, where the figure is. */
enum { BENCH_FIGURES = 8 };
typedef struct bench_figure {
  const char *label, *json;
  size_t off;
} bench_figure;
extern const bench_figure bench_figures[BENCH_FIGURES];
double bench_figure_of(const bench_round *r, int figure);

typedef enum bench_kind {
  BENCH_OURS, /* our prober in this process (response-only or full) */
  BENCH_RAW,  /* a blocking client loop in this process */
  BENCH_RP,   /* running-process's own `bench` client, a process per round */
  BENCH_LUA   /* a bhprobe-lua script (spec/bench/lua_prober.lua) */
} bench_kind;

typedef struct bench_pair {
  const char *key, *label;
  bench_kind kind;
  bool available;
  char why[512]; /* when not available */
  pid_t responder;
  pid_t prober; /* BENCH_LUA: the script's process, and its pipes */
  FILE *to, *from;
  bh_endpoint ep;        /* BENCH_OURS, BENCH_RAW: where to connect */
  bh_identity *expected; /* BENCH_OURS: NULL = response-only */
  const uint8_t *req;    /* BENCH_RAW: the request, and the reply size */
  size_t req_len, reply_len;
  const char *client; /* BENCH_RP: the peer program and identity file */
  const char *id_file;
  int failed; /* probes that failed during the rounds */
  bench_round rounds[BENCH_MODES][BENCH_MAX_ROUNDS];
  bench_round median[BENCH_MODES];
} bench_pair;

typedef struct bench_hash {
  char exe_path[4096];
  double exe_bytes, exe_us, big_ms;
} bench_hash;

typedef struct bench_load {
  int total, in_flight, runs, failed;
  long nofile; /* the prober's descriptor limit */
  char first_error[200];
  double wall_s, rate, rss_mib;
} bench_load;

typedef struct bench_results {
  const bench_plan *plan;
  char machine[512], load_start[64], load_end[64];
  const char *refpeer_dir; /* NULL when BH_REFPEER_DIR is unset */
  bench_pair pairs[BENCH_MAX_PAIRS];
  int npairs;
  bench_hash hash;
  bench_load loads[BENCH_MAX_LOADS];
  double seconds; /* how long the whole run took */
} bench_results;

/* bench_util.c */
double bench_now(void);
_Noreturn void bench_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
double bench_quantile(double *v, int n, double q); /* sorts v */
/* Fill *out with a round's figures: mean wall and CPU of both processes
 * per probe (seconds over probes), and the quantiles of the n latencies
 * of lat (microseconds; sorted here). */
void bench_round_figures(bench_round *out, int probes, double wall, double cpu,
                         double rcpu, double *lat, int n);
double bench_median(const double *v, int n); /* NAN if all NAN */
void bench_die_with_parent(pid_t parent);
pid_t bench_spawn_ready(char *const argv[]);
int bench_capture(char *const argv[], char *out, size_t cap);
void bench_stop(pid_t pid);
double bench_cpu_self(void);
struct rusage;
/* User + system seconds of a rusage. */
double bench_rusage_seconds(const struct rusage *ru);
double bench_cpu_of(pid_t pid);
void bench_set_affinity(pid_t pid, const cpu_set_t *set);
void bench_cpu_only(int cpu, cpu_set_t *set);
void bench_machine(char *buf, size_t cap);
void bench_loadavg(char *buf, size_t cap);

/* bench_pairs.c: rounds of the probers that run in this process. */
void bench_pair_ours(bench_pair *p, const char *key, const char *label,
                     const char *path, pid_t responder, bool full);
void bench_pair_raw(bench_pair *p, const char *path, pid_t server,
                    const uint8_t *req, size_t req_len, size_t reply_len);
size_t bench_raw_reply_size(const char *path, const uint8_t *req,
                            size_t req_len);
void bench_round_local(bench_pair *p, const bench_plan *plan, bench_round *out);
void bench_pair_free(bench_pair *p);

/* bench_refpeer.c: the real running-process peers. */
pid_t bench_rp_respond(const char *prog, const char *sock, const char *id_file);
void bench_pair_rp(bench_pair *p, const char *key, const char *label,
                   const char *client, const char *id_file, pid_t responder);
void bench_round_rp(bench_pair *p, const bench_plan *plan, int mode,
                    bench_round *out);

/* bench_other.c: first hashes and throughput. */
void bench_hashes(const char *exe_path, const char *dir, int reps,
                  bench_hash *out);
void bench_throughput(const char *load_bin, const char *path, bench_load *out);

/* bench_lua.c: pairs of bhprobe-lua scripts. */
typedef struct bench_lua_setup {
  const char *host;       /* the bhprobe-lua binary */
  const char *script_dir; /* where lua_prober.lua is */
  const char *path, *id_file;
  pid_t responder;
} bench_lua_setup;
void bench_pair_lua(bench_pair *p, const char *key, const char *label,
                    const bench_lua_setup *s, bool full);
void bench_round_lua(bench_pair *p, const bench_plan *plan, bench_round *out);
void bench_pair_lua_free(bench_pair *p);

/* bench_report.c */
void bench_report(const bench_results *r, const char *json_path);

#endif
