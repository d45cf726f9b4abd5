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

#include "bench_ref.h"
#include "identity.h"

enum {
  BENCH_MAX_ROUNDS = 64,
  BENCH_MAX_PROBES = 5000,
  BENCH_MAX_PAIRS = 20,
  BENCH_MAX_LOADS = 2,
  BENCH_MAX_REFS = 2, /* reference clients beside a throughput run */
  BENCH_MAX_BATCHES = 4,
  BENCH_PATHS = 2, /* I/O paths: 0 epoll, 1 io_uring (loop.h) */
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
  int batches;        /* rounds of the batches with many in flight */
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
  BENCH_LUA,  /* a bhprobe-lua script (spec/bench/lua_prober.lua) */
  BENCH_REF   /* a reference client in this process (bench_ref.h) */
} bench_kind;

struct bench_ref;
struct bh_expected;

typedef struct bench_pair {
  const char *key, *label;
  bench_kind kind;
  bool available;
  char why[512]; /* when not available */
  pid_t responder;
  pid_t prober; /* BENCH_LUA: the script's process, and its pipes */
  FILE *to, *from;
  bh_endpoint ep;               /* BENCH_OURS, BENCH_RAW: where to connect */
  struct bh_expected *prepared; /* BENCH_OURS: NULL = answers not compared */
  bool full;                    /* BENCH_OURS: a full probe */
  bool uring;            /* BENCH_OURS, BENCH_REF: on io_uring, not epoll */
  struct bench_ref *ref; /* BENCH_REF */
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
  /* The reference pairs of the same path (bench_ref_load against
   * bench_ref_server: no validation, no timers), a run of each after each
   * of ours: the floor of the interface on this machine. On io_uring
   * two: a direct descriptor (IORING_OP_SOCKET) and socket(2), as ours.
   * NAN: not run. */
  int nrefs;
  const char *ref_name[BENCH_MAX_REFS];
  double ref_wall_s[BENCH_MAX_REFS];
  int ref_failed[BENCH_MAX_REFS];
} bench_load;

/* A prober (in a fresh process) and a responder with many probes in
 * flight: ours (bench_load, against bench_responder) or a reference pair
 * (bench_ref_load, against bench_ref_server), on one I/O path. Per
 * round: the CPU per probe of each process, and the wall time. */
typedef struct bench_batch {
  const char *key, *label;
  bool ours, uring;
  bool available;
  char why[256];
  pid_t responder;
  const char *path, *id_file; /* id_file: ours, the responder's identity */
  int failed;
  double prober[BENCH_MAX_ROUNDS], responder_cpu[BENCH_MAX_ROUNDS],
      both[BENCH_MAX_ROUNDS], wall[BENCH_MAX_ROUNDS];
  double med_prober, med_responder, med_both, med_wall; /* us per probe, s */
} bench_batch;

typedef struct bench_results {
  const bench_plan *plan;
  char machine[512], load_start[64], load_end[64];
  const char *refpeer_dir; /* NULL when BH_REFPEER_DIR is unset */
  bench_pair pairs[BENCH_MAX_PAIRS];
  int npairs;
  bench_hash hash;
  bench_load loads[BENCH_PATHS][BENCH_MAX_LOADS];
  bench_batch batches[BENCH_MAX_BATCHES];
  int nbatches;
  int batch_total, batch_in_flight;
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
struct rusage;
/* bench_capture, and the child's resources (wait4) in *ru. */
int bench_capture_ru(char *const argv[], char *out, size_t cap,
                     struct rusage *ru);
/* Run fn(arg) with BH_IO set to "uring" or "epoll" (what loops made and
 * processes started meanwhile get), then as it was. */
void bench_with_io(bool uring, void (*fn)(void *arg), void *arg);
void bench_stop(pid_t pid);
double bench_cpu_self(void);
struct rusage;
/* User + system seconds of a rusage. */
double bench_rusage_seconds(const struct rusage *ru);
double bench_cpu_of(pid_t pid);
const char *bench_io_name(bool uring); /* "uring", "epoll" */
void bench_set_affinity(pid_t pid, const cpu_set_t *set);
void bench_cpu_only(int cpu, cpu_set_t *set);
void bench_machine(char *buf, size_t cap);
void bench_loadavg(char *buf, size_t cap);

/* bench_pairs.c: rounds of the probers that run in this process. */
void bench_pair_ours(bench_pair *p, const char *key, const char *label,
                     const char *path, pid_t responder, bool full, bool uring,
                     bool compare);
void bench_pair_ref(bench_pair *p, const char *key, const char *label,
                    const char *path, pid_t server, bench_ref_io io,
                    const uint8_t *req, size_t req_len, size_t reply_len);
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
/* out->runs batches of bench_load against the responder at path, each
 * answer compared with the identity in id_file (NULL: validated only);
 * after each, a batch of each of the out->nrefs reference clients,
 * ref_argv[k] the bench_ref_load command line of the k-th. */
void bench_throughput(const char *load_bin, const char *path,
                      const char *id_file, char *const *const *ref_argv,
                      bench_load *out);
/* A round of a batch: one run of its prober, total probes with in_flight
 * at a time (bin_dir holds bench_load and bench_ref_load; req and
 * reply_len are the bytes of the reference pairs). */
void bench_batch_round(bench_batch *b, int round, const char *bin_dir,
                       int total, int in_flight, const char *req_hex,
                       size_t reply_len);
void bench_batch_medians(bench_batch *b, int rounds);

/* bench_lua.c: pairs of bhprobe-lua scripts. */
typedef struct bench_lua_setup {
  bool uring;             /* the scripts' I/O path */
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
